//! `kubernetes/` holds together with the pipelines: the generated files (KafkaTopics,
//! PrometheusRule) are fresh, and the rendered overlays (`kubectl kustomize`, kubectl from
//! `RUNNER_TEST_KUBECTL`, which scripts/test installs, else from PATH) give every pipeline a
//! Deployment and a Service whose ports and probes match its listen address, every topic a
//! KafkaTopic, Istio subsets that match the Deployments' labels, one relay, and Secrets only by
//! reference. Schema validation and the security scan run in `scripts/kubernetes check`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::Command;

use runner::config::{self, LoadOptions, LoadedPipeline};
use yaml_rust2::{Yaml, YamlLoader};

use crate::support::repository;

/// The shipped pipelines, as the generated files are made from them.
fn shipped() -> Vec<LoadedPipeline> {
    let files = config::pipeline_files(&repository().join("pipelines")).unwrap();
    config::load_system(&files, &[], &LoadOptions::default()).unwrap_or_else(|d| panic!("{d}"))
}

/// Panics unless the committed file is what the command generates now.
fn assert_fresh(relative: &str, generated: &str, command: &str) {
    let path = repository().join(relative);
    let committed = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    assert!(
        committed == generated,
        "{relative} is out of date; run `cargo run -p runner -- {command} --write {relative}`"
    );
}

#[test]
fn generated_topics_and_rules_are_fresh() {
    let pipelines: Vec<_> = shipped().into_iter().map(|l| l.pipeline).collect();
    let topics = runner::deploy::system_topics(&pipelines);
    let layout = runner::deploy::TopicLayout { partitions: 12, replicas: 3 };
    assert_fresh(
        "kubernetes/kafka/topics.yaml",
        &runner::deploy::strimzi_topics(&topics, layout),
        "topics --format strimzi",
    );
    let objectives: Vec<_> = pipelines.iter().flat_map(|p| p.slo.clone()).collect();
    let rules = runner::slo::prometheus_rules(&objectives);
    assert_fresh(
        "kubernetes/monitoring/slo-rules.yaml",
        &runner::deploy::prometheus_rule(&rules),
        "slo rules --prometheus-rule",
    );
}

fn kubectl() -> PathBuf {
    std::env::var_os("RUNNER_TEST_KUBECTL").map_or_else(|| PathBuf::from("kubectl"), PathBuf::from)
}

/// The objects of `kubectl kustomize kubernetes/<dir>`.
fn render(dir: &str) -> Vec<Yaml> {
    let output = Command::new(kubectl())
        .arg("kustomize")
        .arg(repository().join("kubernetes").join(dir))
        .output()
        .unwrap_or_else(|e| panic!("cannot run kubectl ({e}); scripts/test installs it (scripts/kubernetes install)"));
    assert!(output.status.success(), "kubectl kustomize {dir}: {}", String::from_utf8_lossy(&output.stderr));
    YamlLoader::load_from_str(&String::from_utf8(output.stdout).unwrap()).unwrap()
}

fn kind_of<'a>(objects: &'a [Yaml], kind: &str) -> Vec<&'a Yaml> {
    objects.iter().filter(|o| o["kind"].as_str() == Some(kind)).collect()
}

fn named<'a>(objects: &'a [Yaml], kind: &str, name: &str) -> &'a Yaml {
    kind_of(objects, kind)
        .into_iter()
        .find(|o| o["metadata"]["name"].as_str() == Some(name))
        .unwrap_or_else(|| panic!("no {kind} {name} in the rendered manifests"))
}

fn strings(yaml: &Yaml) -> Vec<String> {
    yaml.as_vec().map(|v| v.iter().filter_map(|s| s.as_str().map(str::to_string)).collect()).unwrap_or_default()
}

/// A pod template's labels.
fn labels(map: &Yaml) -> BTreeMap<String, String> {
    map.as_hash()
        .map(|h| {
            h.iter()
                .filter_map(|(k, v)| {
                    Some((k.as_str()?.to_string(), v.as_str().map_or_else(|| format!("{v:?}"), str::to_string)))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Every scalar of an object, with its path, for the checks that look everywhere.
fn walk(yaml: &Yaml, path: String, out: &mut Vec<(String, String)>) {
    match yaml {
        Yaml::Hash(h) => {
            for (k, v) in h {
                walk(v, format!("{path}.{}", k.as_str().unwrap_or("?")), out);
            }
        }
        Yaml::Array(a) => {
            for (i, v) in a.iter().enumerate() {
                walk(v, format!("{path}[{i}]"), out);
            }
        }
        Yaml::String(s) => out.push((path, s.clone())),
        _ => {}
    }
}

#[test]
fn every_pipeline_is_deployed_with_its_port_probes_topics_and_secrets() {
    let objects = render("overlays/production");
    let root = render("");
    assert_eq!(objects.len(), root.len(), "`kubectl apply -k kubernetes/` deploys the production overlay");

    let mut ports = BTreeSet::new();
    for loaded in shipped() {
        let pipeline = &loaded.pipeline;
        let file = loaded.path.file_name().unwrap().to_str().unwrap().to_string();
        let port = i64::from(pipeline.listen.port());
        assert!(ports.insert(port), "two pipelines listen on {port}");
        let deployment = named(&objects, "Deployment", &pipeline.service);
        let pod = &deployment["spec"]["template"]["spec"];
        let container = &pod["containers"][0];
        let args = strings(&container["args"]);
        assert!(
            args.iter().any(|a| a.ends_with(&format!("/{file}"))),
            "{}: the container runs {file}: {args:?}",
            pipeline.service
        );
        let http = container["ports"]
            .as_vec()
            .unwrap()
            .iter()
            .find(|p| p["name"].as_str() == Some("http"))
            .unwrap_or_else(|| panic!("{}: no container port named http", pipeline.service));
        assert_eq!(http["containerPort"].as_i64(), Some(port), "{}: container port = listen port", pipeline.service);
        for (probe, path) in [("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")] {
            let get = &container[probe]["httpGet"];
            assert_eq!(get["path"].as_str(), Some(path), "{}: {probe}", pipeline.service);
            let on_port = get["port"].as_i64() == Some(port) || get["port"].as_str() == Some("http");
            assert!(on_port, "{}: {probe} on the listen port: {:?}", pipeline.service, get["port"]);
        }
        let grace = pod["terminationGracePeriodSeconds"].as_i64().unwrap_or(30);
        assert!(
            grace > pipeline.shutdown_grace.as_secs() as i64,
            "{}: terminationGracePeriodSeconds {grace} must exceed shutdown_grace {:?}",
            pipeline.service,
            pipeline.shutdown_grace
        );
        let service = named(&objects, "Service", &pipeline.service);
        let service_port = &service["spec"]["ports"][0];
        let target =
            service_port["targetPort"].as_i64() == Some(port) || service_port["targetPort"].as_str() == Some("http");
        assert!(target, "{}: the Service reaches the listen port", pipeline.service);
        let selector = labels(&service["spec"]["selector"]);
        let pod_labels = labels(&deployment["spec"]["template"]["metadata"]["labels"]);
        assert!(
            !selector.is_empty() && selector.iter().all(|(k, v)| pod_labels.get(k) == Some(v)),
            "{}: the Service selects the pods: {selector:?} vs {pod_labels:?}",
            pipeline.service
        );
        if pipeline.relay.is_some() {
            assert_eq!(deployment["spec"]["replicas"].as_i64(), Some(1), "one relay: one replication slot");
        }
    }
    let runners = kind_of(&objects, "Deployment")
        .into_iter()
        .filter(|d| strings(&d["spec"]["template"]["spec"]["containers"][0]["args"]).iter().any(|a| a == "--pipeline"))
        .count();
    assert_eq!(runners, ports.len(), "one runner Deployment per pipeline");

    // Every topic the pipelines need has its KafkaTopic.
    let pipelines: Vec<_> = shipped().into_iter().map(|l| l.pipeline).collect();
    let declared: BTreeSet<String> = kind_of(&objects, "KafkaTopic")
        .iter()
        .filter_map(|t| t["spec"]["topicName"].as_str().map(str::to_string))
        .collect();
    for topic in runner::deploy::system_topics(&pipelines) {
        assert!(declared.contains(&topic.name), "no KafkaTopic for {}", topic.name);
    }

    // Secrets by reference only: no Secret objects, no token or database URL written out.
    assert!(kind_of(&objects, "Secret").is_empty(), "the production overlay creates no Secret; reference them");
    let mut scalars = Vec::new();
    for (i, object) in objects.iter().enumerate() {
        walk(object, format!("{}#{i}", object["kind"].as_str().unwrap_or("?")), &mut scalars);
    }
    for (path, value) in &scalars {
        // The pipeline files in their ConfigMaps carry the development token; the pods get a
        // real one from a Secret (below). Anywhere else it is a leak.
        let in_a_file = path.starts_with("ConfigMap#") && path.contains(".data.");
        assert!(in_a_file || !value.contains("local-dev-token-change-me"), "the development token at {path}");
        assert!(!value.starts_with("postgres://"), "a database URL written out at {path}");
    }
    // Every token name a pipeline file sets is overridden from a Secret in its pod.
    for loaded in shipped() {
        let deployment = named(&objects, "Deployment", &loaded.pipeline.service);
        let env = deployment["spec"]["template"]["spec"]["containers"][0]["env"].as_vec().cloned().unwrap_or_default();
        for name in loaded.spec.admin.iter().flat_map(|a| a.tokens.keys()) {
            let var = format!("RUNNER_ADMIN__TOKENS__{}", name.to_uppercase());
            let set = env.iter().find(|e| e["name"].as_str() == Some(var.as_str()));
            assert!(
                set.is_some_and(|e| !e["valueFrom"]["secretKeyRef"]["name"].is_badvalue()),
                "{}: {var} overrides the file's token from a Secret",
                loaded.pipeline.service
            );
        }
    }
    for deployment in kind_of(&objects, "Deployment") {
        for env in deployment["spec"]["template"]["spec"]["containers"][0]["env"].as_vec().into_iter().flatten() {
            let name = env["name"].as_str().unwrap_or_default();
            if name == "RUNNER_DATABASE_URL" || name.starts_with("RUNNER_ADMIN__TOKENS__") {
                assert!(
                    !env["valueFrom"]["secretKeyRef"]["name"].is_badvalue(),
                    "{}: {name} comes from a Secret",
                    deployment["metadata"]["name"].as_str().unwrap_or("?")
                );
            }
        }
    }
}

#[test]
fn the_istio_subsets_match_the_payment_deployments() {
    let objects = render("overlays/istio");
    let rule = named(&objects, "DestinationRule", "payment-svc");
    let mut subsets = BTreeMap::new();
    for subset in rule["spec"]["subsets"].as_vec().unwrap() {
        subsets.insert(subset["name"].as_str().unwrap().to_string(), labels(&subset["labels"]));
    }
    assert_eq!(subsets.keys().collect::<Vec<_>>(), ["canary", "stable"]);
    for (deployment, subset) in [("payment-svc", "stable"), ("payment-svc-canary", "canary")] {
        let pod_labels = labels(&named(&objects, "Deployment", deployment)["spec"]["template"]["metadata"]["labels"]);
        let wanted = &subsets[subset];
        assert!(
            wanted.iter().all(|(k, v)| pod_labels.get(k) == Some(v)),
            "subset {subset} ({wanted:?}) selects {deployment} ({pod_labels:?})"
        );
    }
    let other = labels(&named(&objects, "Deployment", "payment-svc")["spec"]["template"]["metadata"]["labels"]);
    assert!(!subsets["canary"].iter().all(|(k, v)| other.get(k) == Some(v)), "the canary subset excludes stable pods");
    let service = named(&objects, "VirtualService", "payment-svc");
    let weights: Vec<(String, i64)> = service["spec"]["http"][0]["route"]
        .as_vec()
        .unwrap()
        .iter()
        .map(|r| (r["destination"]["subset"].as_str().unwrap().to_string(), r["weight"].as_i64().unwrap()))
        .collect();
    assert_eq!(weights, [("stable".to_string(), 90), ("canary".to_string(), 10)]);
    let namespace = kind_of(&objects, "Namespace");
    assert_eq!(namespace.len(), 1);
    assert_eq!(namespace[0]["metadata"]["labels"]["istio-injection"].as_str(), Some("enabled"));
}

#[test]
fn the_dev_overlay_is_one_runner_up() {
    let objects = render("overlays/dev");
    let deployments = kind_of(&objects, "Deployment");
    assert_eq!(deployments.len(), 1, "one pod runs the whole system");
    let args = strings(&deployments[0]["spec"]["template"]["spec"]["containers"][0]["args"]);
    assert_eq!(args.first().map(String::as_str), Some("up"), "{args:?}");
    assert!(kind_of(&objects, "Kafka").is_empty() && kind_of(&objects, "Cluster").is_empty(), "no operators in dev");
}

/// The files a kustomization's ConfigMap generators list (`key=file` gives `file`).
fn generated_from(kustomization: &str) -> BTreeSet<String> {
    let path = repository().join(kustomization);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let doc = &YamlLoader::load_from_str(&text).unwrap()[0];
    doc["configMapGenerator"]
        .as_vec()
        .unwrap()
        .iter()
        .flat_map(|generator| strings(&generator["files"]))
        .map(|entry| entry.rsplit_once('=').map_or(entry.clone(), |(_, file)| file.to_string()))
        .collect()
}

/// The files of `folder` (relative to `base`) whose names end with `suffix`, as `folder/name`.
fn files_in(base: &str, folder: &str, suffix: &str) -> BTreeSet<String> {
    std::fs::read_dir(repository().join(base).join(folder))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|name| name.ends_with(suffix))
        .map(|name| if folder.is_empty() { name } else { format!("{folder}/{name}") })
        .collect()
}

/// kustomize takes no wildcards: the ConfigMaps list their files by hand, so a pipeline,
/// scenario, schema or dashboard added without its line would silently miss the cluster.
#[test]
fn the_config_maps_hold_every_pipeline_scenario_schema_and_dashboard() {
    let pipelines = generated_from("pipelines/kustomization.yaml");
    let mut wanted = files_in("pipelines", "", ".toml");
    wanted.extend(files_in("pipelines", "gamedays", ".toml"));
    assert_eq!(pipelines, wanted, "pipelines/kustomization.yaml lists every pipeline and scenario file");
    assert_eq!(
        generated_from("schemas/kustomization.yaml"),
        files_in("schemas", "events", ".schema.json"),
        "schemas/kustomization.yaml lists every event schema"
    );
    let dashboards = generated_from("dashboards/kustomization.yaml");
    for board in files_in("dashboards", "grafana", ".json") {
        assert!(dashboards.contains(&board), "dashboards/kustomization.yaml has no ConfigMap for {board}");
    }
    assert!(dashboards.contains("otel-collector.yaml"), "the collector's config");
}
