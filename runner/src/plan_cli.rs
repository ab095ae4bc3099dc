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

/// Loads files as a system, without the environment (plans compare files, not deployments).
fn load(files: &[PathBuf]) -> Result<Vec<LoadedPipeline>, String> {
    config::load_system(files, &[], &LoadOptions::default()).map_err(|d| d.to_string())
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
    let (new, old) = match (load(&new_files), load(&old_files)) {
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
    if let Some(url) = &args.target {
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
        match verdict {
            Verdict::Unchanged => println!("  {service}: unchanged"),
            Verdict::Live(summary) => println!("~ {service}: applied live — {summary}"),
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

/// The hash of the file each running service has in force.
fn running_hashes(url: &str) -> Result<BTreeMap<String, String>, String> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| e.to_string())?;
    let url = format!("{}/api/runtime/config", url.trim_end_matches('/'));
    let answer: serde_json::Value = runtime.block_on(async {
        let client = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().map_err(|e| e.to_string())?;
        let response = client.get(&url).send().await.map_err(|e| e.to_string())?;
        let response = response.error_for_status().map_err(|e| e.to_string())?;
        response.json::<serde_json::Value>().await.map_err(|e| e.to_string())
    })?;
    let services = answer["services"].as_array().ok_or("the answer has no `services` list")?;
    Ok(services
        .iter()
        .filter_map(|s| Some((s["service"].as_str()?.to_string(), s["hash"].as_str()?.to_string())))
        .collect())
}
