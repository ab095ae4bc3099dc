//! `dashboards/otel-collector.yaml` holds together: OTLP over HTTP on the port the runners
//! send to, every component a pipeline names is defined (connectors on both ends), span
//! metrics reach the Prometheus exporter, and `dashboards/prometheus.yml` scrapes it.
//! (No collector binary is packaged for this machine; this checks the file's wiring.)

use std::collections::BTreeSet;

use yaml_rust2::{Yaml, YamlLoader};

use crate::support::repository;

fn load(name: &str) -> Yaml {
    let path = repository().join("dashboards").join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    YamlLoader::load_from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}")).remove(0)
}

/// The names defined in a top-level section (`receivers`, `exporters`, …).
fn defined(config: &Yaml, section: &str) -> BTreeSet<String> {
    config[section]
        .as_hash()
        .map_or_else(BTreeSet::new, |h| h.keys().filter_map(|k| k.as_str().map(String::from)).collect())
}

fn names(list: &Yaml) -> Vec<String> {
    list.as_vec().map_or_else(Vec::new, |v| v.iter().filter_map(|n| n.as_str().map(String::from)).collect())
}

#[test]
fn the_collector_config_is_wired_end_to_end() {
    let config = load("otel-collector.yaml");
    let http = config["receivers"]["otlp"]["protocols"]["http"]["endpoint"].as_str().expect("an OTLP/HTTP receiver");
    assert!(http.ends_with(":4318"), "the runners send OTLP/HTTP to 4318 by convention: {http}");
    assert_eq!(runner::traces::traces_url("http://otel-collector:4318"), "http://otel-collector:4318/v1/traces");

    let connectors = defined(&config, "connectors");
    let pipelines = config["service"]["pipelines"].as_hash().expect("service.pipelines");
    assert!(!pipelines.is_empty());
    let mut problems = Vec::new();
    let mut fed_connectors = BTreeSet::new();
    let mut read_connectors = BTreeSet::new();
    for (name, pipeline) in pipelines {
        let name = name.as_str().unwrap_or_default();
        for (role, section) in [("receivers", "receivers"), ("processors", "processors"), ("exporters", "exporters")] {
            let listed = names(&pipeline[role]);
            if role != "processors" && listed.is_empty() {
                problems.push(format!("pipeline {name} has no {role}"));
            }
            for component in listed {
                // `type/name` components are defined under their full key.
                let is_connector = connectors.contains(&component) && role != "processors";
                if is_connector {
                    let ends = if role == "exporters" { &mut fed_connectors } else { &mut read_connectors };
                    ends.insert(component.clone());
                } else if !defined(&config, section).contains(&component) {
                    problems.push(format!("pipeline {name} names {role} `{component}`, which is not defined"));
                }
            }
        }
    }
    for connector in &connectors {
        if !fed_connectors.contains(connector) || !read_connectors.contains(connector) {
            problems
                .push(format!("connector `{connector}` must be an exporter of one pipeline and a receiver of another"));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));

    // Spans in, metrics out to Prometheus.
    let traces = &config["service"]["pipelines"]["traces"];
    assert!(names(&traces["receivers"]).contains(&"otlp".to_string()));
    assert!(names(&traces["exporters"]).contains(&"spanmetrics".to_string()), "span metrics made from the traces");
    let metrics = &config["service"]["pipelines"]["metrics"];
    assert!(names(&metrics["receivers"]).contains(&"spanmetrics".to_string()));
    assert!(names(&metrics["exporters"]).contains(&"prometheus".to_string()));
    let exporter = config["exporters"]["prometheus"]["endpoint"].as_str().expect("the prometheus exporter's endpoint");
    let port = exporter.rsplit(':').next().unwrap();

    // Prometheus scrapes the collector's exporter.
    let prometheus = load("prometheus.yml");
    let scraped: Vec<String> = prometheus["scrape_configs"]
        .as_vec()
        .unwrap()
        .iter()
        .filter(|job| job["job_name"].as_str() == Some("otel-collector"))
        .flat_map(|job| job["static_configs"].as_vec().cloned().unwrap_or_default())
        .flat_map(|c| names(&c["targets"]))
        .collect();
    assert!(
        scraped.iter().any(|t| t.ends_with(&format!(":{port}"))),
        "prometheus.yml's otel-collector job scrapes port {port}: {scraped:?}"
    );
}
