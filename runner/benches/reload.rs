//! Hot-reload benchmark: how long from writing a pipeline file to the change being in effect.
//!
//! Starts the shipped system on SQLite from a temporary copy of `pipelines/`, then 100 times
//! writes a new canary percentage into `orchestrator.toml` and polls the running canary
//! (`/api/runtime/canary`, every millisecond) until it reports the new value. Prints p50, p90,
//! p99 and max. Run: `cargo bench -p runner --bench reload [-- ROUNDS]`.

use std::path::Path;
use std::time::{Duration, Instant};

use runner::config::{self, Defaults, LoadOptions, Overrides};

fn copy_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &to.join(entry.file_name()))?;
        } else {
            std::fs::copy(entry.path(), to.join(entry.file_name()))?;
        }
    }
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // `cargo bench` adds `--bench` to the arguments.
    let rounds: usize = std::env::args().skip(1).find(|a| a != "--bench").and_then(|a| a.parse().ok()).unwrap_or(100);
    let root = std::env::temp_dir().join(format!("reload-bench-{}", std::process::id()));
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    copy_dir(&source.join("pipelines"), &root.join("pipelines"))?;
    copy_dir(&source.join("schemas"), &root.join("schemas"))?;
    let database = format!("sqlite://{}", root.join("bench.db").display());
    let options = LoadOptions {
        defaults: Defaults {
            brokers: Some("embedded".into()),
            database_url: Some(database),
            chaos_enabled: Some(false),
        },
        overrides: Overrides::default(),
        use_environment: false,
    };
    let files = config::pipeline_files(&root.join("pipelines"))?;
    let loaded = config::load_system(&files, &[], &options).map_err(|d| d.to_string())?;
    let running = runner::runtime::start_watched(loaded, "127.0.0.1:0".parse()?, options).await?;
    let canary_url = format!("http://{}/api/runtime/canary", running.addr);
    // One connection per request, as a script polling with curl would.
    let client = reqwest::Client::builder().pool_max_idle_per_host(0).build()?;
    let file = root.join("pipelines/orchestrator.toml");
    let original = std::fs::read_to_string(&file)?;
    let mut samples = Vec::with_capacity(rounds);
    for round in 0..rounds {
        let percent = (round % 99 + 1) as f64;
        let text = original.replacen("percent = 0", &format!("percent = {percent}"), 1);
        let written = Instant::now();
        std::fs::write(&file, text)?;
        loop {
            let view: serde_json::Value = client.get(&canary_url).send().await?.json().await?;
            if view["canaries"][0]["percent"].as_f64() == Some(percent) {
                break;
            }
            if written.elapsed() > Duration::from_secs(10) {
                return Err(format!("round {round}: the change was not in effect after 10 s").into());
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        samples.push(written.elapsed());
        // Let the watcher go quiet so rounds do not merge.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    samples.sort();
    let at = |q: f64| samples[((samples.len() as f64 * q).ceil() as usize).clamp(1, samples.len()) - 1];
    println!("reloads: {rounds} (file write -> canary percentage in effect)");
    for (name, value) in [("p50", at(0.5)), ("p90", at(0.9)), ("p99", at(0.99)), ("max", at(1.0))] {
        println!("  {name}: {:.1} ms", value.as_secs_f64() * 1000.0);
    }
    running.stop().await;
    let _ = std::fs::remove_dir_all(&root);
    Ok(())
}
