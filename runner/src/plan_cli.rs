//! `runner plan NEW… --against DIR [--target URL]`: what applying edited pipeline files would
//! do, before anything is saved — per service, unchanged, applied live (and what is rebuilt),
//! or refused by the running service because it needs a restart (and which keys), as
//! `terraform plan` shows infrastructure changes. DIR holds the files in force (the folder
//! the system runs from); with `--target`, the running system's `GET /api/runtime/config`
//! says whether it really runs those files (by their hash).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use runner::config::{self, diff, LoadOptions, LoadedPipeline};

/// What `runner plan` was asked.
pub struct PlanArgs {
    pub new: Vec<PathBuf>,
    pub against: PathBuf,
    pub target: Option<String>,
}

/// One service's fate.
#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    Unchanged,
    Live(String),
    Restart(Vec<String>),
    Added,
    Removed,
}

/// Loads files as a system (checked with `context`, the other files in force), without the
/// environment: plans compare files, not deployments.
fn load(files: &[PathBuf], context: &[PathBuf]) -> Result<Vec<LoadedPipeline>, String> {
    config::load_system(files, context, &LoadOptions::default()).map_err(|d| d.to_string())
}

fn by_service(loaded: Vec<LoadedPipeline>) -> BTreeMap<String, LoadedPipeline> {
    loaded.into_iter().map(|l| (l.pipeline.service.clone(), l)).collect()
}

/// Runs the plan; exit 0 when every change applies live (or nothing changes), 1 when a
/// service must be restarted for it, 2 when a file cannot be loaded or the target differs.
pub fn run(args: PlanArgs) -> ExitCode {
    let new_files = match crate::toml_files(&args.new) {
        Ok(files) if !files.is_empty() => files,
        Ok(_) => {
            eprintln!("no pipeline files (*.toml) to plan; name the edited files or their folder");
            return ExitCode::from(2);
        }
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let old_files = match crate::toml_files(std::slice::from_ref(&args.against)) {
        Ok(files) => files,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    // The edited files are checked with the rest of the system in force around them (a
    // saga's topics need their services), not alone.
    let around: Vec<PathBuf> =
        old_files.iter().filter(|f| !new_files.iter().any(|n| n.file_name() == f.file_name())).cloned().collect();
    let (new, old) = match (load(&new_files, &around), load(&old_files, &[])) {
        (Ok(new), Ok(old)) => (by_service(new), by_service(old)),
        (Err(problems), _) => {
            println!("{problems}");
            eprintln!("the edited files do not load: nothing would be applied; fix them first");
            return ExitCode::from(2);
        }
        (_, Err(problems)) => {
            println!("{problems}");
            eprintln!("the files in force ({}) do not load", args.against.display());
            return ExitCode::from(2);
        }
    };
    let mut target_differs = false;
    let mut in_flight: BTreeMap<String, serde_json::Value> = BTreeMap::new();
    if let Some(url) = &args.target {
        match get_json(url, "/api/runtime/sagas/in-flight") {
            Ok(answer) => {
                for saga in answer["sagas"].as_array().into_iter().flatten() {
                    if let Some(service) = saga["service"].as_str() {
                        in_flight.insert(service.to_string(), saga["inFlight"].clone());
                    }
                }
            }
            Err(e) => eprintln!("cannot read {url}/api/runtime/sagas/in-flight ({e}); sagas in flight not counted"),
        }
        match running_hashes(url) {
            Ok(running) => {
                for (service, loaded) in &old {
                    match running.get(service) {
                        Some(hash) if *hash == loaded.hash => {}
                        Some(hash) => {
                            target_differs = true;
                            println!(
                                "! {service}: the system runs a file with hash {hash}, not {} ({}); plan against the files it runs",
                                loaded.hash,
                                loaded.path.display()
                            );
                        }
                        None => println!("! {service}: not running at {url}"),
                    }
                }
            }
            Err(e) => {
                eprintln!("cannot read {url}/api/runtime/config: {e}");
                return ExitCode::from(2);
            }
        }
    }
    // Only the services of the edited files are planned; every other stays as it is.
    let mut verdicts: BTreeMap<String, Verdict> = BTreeMap::new();
    for (service, edited) in &new {
        let verdict = match old.get(service) {
            None => Verdict::Added,
            Some(current) if current.hash == edited.hash => Verdict::Unchanged,
            Some(current) => match diff::diff(&current.spec, &edited.spec) {
                Ok(changes) if changes.is_empty() => Verdict::Unchanged,
                Ok(changes) => Verdict::Live(changes.summary()),
                Err(keys) => Verdict::Restart(keys),
            },
        };
        verdicts.insert(service.clone(), verdict);
    }
    // A folder planned against a folder: a service in force with no edited file is removed.
    if args.new.iter().all(|p| p.is_dir()) {
        for service in old.keys().filter(|s| !new.contains_key(*s)) {
            verdicts.insert(service.clone(), Verdict::Removed);
        }
    }
    let mut restarts = 0;
    for (service, verdict) in &verdicts {
        // What a new saga definition does to the instances in flight (with --target).
        let fate = match (in_flight.get(service), old.get(service), new.get(service)) {
            (Some(counts), Some(before), Some(after)) if saga_changed(before, after) => {
                Some(in_flight_fate(counts, after))
            }
            _ => None,
        };
        match verdict {
            Verdict::Unchanged => println!("  {service}: unchanged"),
            Verdict::Live(summary) => match &fate {
                Some((_, stranded)) if *stranded > 0 => {
                    restarts += 1;
                    println!(
                        "! {service}: refused — {stranded} saga(s) in flight wait on steps the edited file removes"
                    );
                }
                _ => println!("~ {service}: applied live — {summary}"),
            },
            Verdict::Restart(keys) => {
                restarts += 1;
                println!(
                    "! {service}: needs a restart — {} changed; a running service refuses this file and keeps its config",
                    keys.join(", ")
                );
            }
            Verdict::Added => println!("+ {service}: new service; start it (runner --pipeline FILE)"),
            Verdict::Removed => println!("- {service}: no file any more; stop it"),
        }
        for line in fate.map(|(lines, _)| lines).unwrap_or_default() {
            println!("    {line}");
        }
    }
    let live = verdicts.values().filter(|v| matches!(v, Verdict::Live(_))).count();
    println!("{} service(s): {live} applied live, {restarts} need a restart", verdicts.len());
    if target_differs {
        ExitCode::from(2)
    } else if restarts > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// Whether the saga's definition (or its step mappings) differs between two files.
fn saga_changed(before: &LoadedPipeline, after: &LoadedPipeline) -> bool {
    let version = |l: &LoadedPipeline| l.pipeline.saga.as_ref().map(|s| (s.definition.hash(), s.step_mapping.clone()));
    version(before) != version(after)
}

/// What becomes of the sagas in flight (`counts`: `GET /api/runtime/sagas/in-flight`) when
/// `after`'s saga is put in force: each finishes on the definition it started on, except
/// those waiting on a step `after` no longer has — moved where a step mapping says, or
/// stranded (the change is refused). Returns the lines and the stranded count.
fn in_flight_fate(counts: &serde_json::Value, after: &LoadedPipeline) -> (Vec<String>, u64) {
    let Some(saga) = &after.pipeline.saga else { return (Vec::new(), 0) };
    let new_hash = saga.definition.hash();
    let total = counts["total"].as_u64().unwrap_or(0);
    let (mut staying, mut stranded) = (0u64, 0u64);
    let mut details = Vec::new();
    for definition in counts["definitions"].as_array().into_iter().flatten() {
        let hash = definition["hash"].as_str().unwrap_or("?");
        let on_new = hash == new_hash;
        for (step, by_phase) in definition["byStep"].as_object().into_iter().flatten() {
            let count: u64 = by_phase.as_object().into_iter().flatten().filter_map(|(_, n)| n.as_u64()).sum();
            if on_new {
                staying += count;
                continue;
            }
            match runner::saga::versions::fate(step, &saga.definition, &saga.step_mapping) {
                runner::saga::versions::Fate::Stays => staying += count,
                runner::saga::versions::Fate::Moves { to } => details.push(format!(
                    "{count} at `{step}` (definition {hash}) move to the new definition at `{to}` (step mapping)"
                )),
                runner::saga::versions::Fate::Stranded => {
                    stranded += count;
                    details.push(format!(
                        "{count} at `{step}` (definition {hash}) wait on a step the edited file removes: \
                         add [[saga.step_mapping]] from = \"{step}\" to say where they continue, or apply it once they finish"
                    ));
                }
            }
        }
    }
    let mut lines = vec![format!(
        "{total} saga(s) in flight{}: {staying} finish on the definition they started on; new sagas start on definition {new_hash}",
        if counts["truncated"].as_bool() == Some(true) { " (counted up to the first 100,000)" } else { "" }
    )];
    lines.extend(details);
    (lines, stranded)
}

/// GET `path` on the running system, as JSON.
fn get_json(url: &str, path: &str) -> Result<serde_json::Value, String> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| e.to_string())?;
    let url = format!("{}{path}", url.trim_end_matches('/'));
    runtime.block_on(async {
        let client = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().map_err(|e| e.to_string())?;
        let response = client.get(&url).send().await.map_err(|e| e.to_string())?;
        let response = response.error_for_status().map_err(|e| e.to_string())?;
        response.json::<serde_json::Value>().await.map_err(|e| e.to_string())
    })
}

/// The hash of the file each running service has in force.
fn running_hashes(url: &str) -> Result<BTreeMap<String, String>, String> {
    let answer = get_json(url, "/api/runtime/config")?;
    let services = answer["services"].as_array().ok_or("the answer has no `services` list")?;
    Ok(services
        .iter()
        .filter_map(|s| Some((s["service"].as_str()?.to_string(), s["hash"].as_str()?.to_string())))
        .collect())
}
