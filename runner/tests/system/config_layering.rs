//! Where settings come from: built-in defaults < the pipeline file < `RUNNER_*` environment
//! variables < command-line flags. One test: environment variables are process-wide.

use std::path::Path;

use runner::config::{load_text, Defaults, LoadOptions, Overrides};
use runner::transport::Brokers;

const FILE: &str = r#"
[service]
name = "layered"
listen = "127.0.0.1:9000"
[broker]
partitions = 2
[store]
url = "sqlite://from-file.db"
[relay]
"#;

fn load(defaults: Defaults, overrides: Overrides, use_environment: bool) -> runner::config::Pipeline {
    let options = LoadOptions { defaults, overrides, use_environment };
    load_text(Path::new("layered.toml"), FILE, &options).unwrap_or_else(|d| panic!("{d}")).pipeline
}

#[test]
fn each_layer_overrides_the_one_below() {
    let defaults = Defaults {
        brokers: Some("default-broker:9092".into()),
        database_url: Some("sqlite://default.db".into()),
        chaos_enabled: None,
    };

    // The file beats the defaults where it speaks; the defaults fill the rest.
    let p = load(defaults.clone(), Overrides::default(), false);
    assert_eq!(p.store.url, "sqlite://from-file.db");
    assert_eq!(p.broker.brokers, Brokers::List("default-broker:9092".into()));
    assert_eq!(p.broker.partitions, 2);

    // The environment beats the file.
    std::env::set_var("RUNNER_DATABASE_URL", "postgres://env-host/db");
    std::env::set_var("RUNNER_BROKERS", "env-broker:9092");
    std::env::set_var("RUNNER_BROKER__PARTITIONS", "8");
    std::env::set_var("RUNNER_UNRELATED_SETTING", "ignored");
    let p = load(defaults.clone(), Overrides::default(), true);
    assert_eq!(p.store.url, "postgres://env-host/db");
    assert_eq!(p.broker.brokers, Brokers::List("env-broker:9092".into()));
    assert_eq!(p.broker.partitions, 8);
    assert_eq!(p.listen.to_string(), "127.0.0.1:9000");

    // Flags beat the environment.
    let flags = Overrides {
        brokers: Some("embedded".into()),
        database_url: Some("sqlite://flag.db".into()),
        listen: Some("127.0.0.1:9100".into()),
    };
    let p = load(defaults, flags, true);
    assert_eq!(p.store.url, "sqlite://flag.db");
    assert_eq!(p.broker.brokers, Brokers::Embedded);
    assert_eq!(p.listen.to_string(), "127.0.0.1:9100");
    assert_eq!(p.broker.partitions, 8);

    // A bad value from the environment is reported with where it came from.
    std::env::set_var("RUNNER_BROKER__PARTITIONS", "many");
    let error =
        load_text(Path::new("layered.toml"), FILE, &LoadOptions { use_environment: true, ..LoadOptions::default() })
            .err()
            .expect("a non-numeric partitions value is refused")
            .to_string();
    assert!(error.to_lowercase().contains("broker.partitions") && error.contains("RUNNER_"), "{error}");
    for key in ["RUNNER_DATABASE_URL", "RUNNER_BROKERS", "RUNNER_BROKER__PARTITIONS", "RUNNER_UNRELATED_SETTING"] {
        std::env::remove_var(key);
    }
}

/// A deployment of separate processes tells gameday-svc where each API answers through the
/// environment (`RUNNER_GAMEDAY__*`); a value that is no http(s) URL is refused by its key.
/// (Its own process under nextest: the variables are this test's alone.)
#[test]
fn the_game_days_apis_are_placed_by_the_environment() {
    const GAMEDAY: &str = r#"
[service]
name = "gameday-svc"
[gameday]
system_url = "http://entry:8080"
[admin]
tokens = { operator = "a-token-for-the-test-only" }
"#;
    let options = LoadOptions { use_environment: true, ..LoadOptions::default() };
    std::env::set_var("RUNNER_GAMEDAY__CHAOS_URL", "http://chaos-svc:8087/");
    std::env::set_var("RUNNER_GAMEDAY__RUNTIME_URL", "http://orchestrator:8082");
    std::env::set_var("RUNNER_GAMEDAY__SCENARIOS", "/etc/chaos-symphony/gamedays");
    let loaded = load_text(Path::new("gameday.toml"), GAMEDAY, &options).unwrap_or_else(|d| panic!("{d}"));
    let gameday = loaded.pipeline.gameday.expect("a [gameday] section");
    assert_eq!(gameday.system_url.as_deref(), Some("http://entry:8080"));
    assert_eq!(gameday.endpoints.chaos.as_deref(), Some("http://chaos-svc:8087"));
    assert_eq!(gameday.endpoints.runtime.as_deref(), Some("http://orchestrator:8082"));
    assert_eq!(gameday.endpoints.orders, None, "order-api stays at the system's URL");
    assert!(gameday.scenarios_dir.ends_with("etc/chaos-symphony/gamedays"), "{:?}", gameday.scenarios_dir);

    std::env::set_var("RUNNER_GAMEDAY__DLQ_URL", "javascript:alert(1)");
    let error = load_text(Path::new("gameday.toml"), GAMEDAY, &options).err().expect("refused").to_string();
    assert!(error.contains("dlq_url") && error.contains("is not an http(s) URL"), "{error}");
}
