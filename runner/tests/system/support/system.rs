//! A system of pipelines started in this process, and what tests ask of it over HTTP: JSON
//! reads, calls with a token, metrics, orders posted, sagas and the relay waited for.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use runner::config::{self, Defaults, LoadOptions, Overrides, Pipeline};
use runner::runtime::{self, Running};
use runner::store::Store;
use serde_json::Value;
use sqlx::Row;

use super::{eventually, ADMIN_TOKEN};

pub struct System {
    pub running: Running,
    pub base: String,
    pub client: reqwest::Client,
    /// The bootstrap list of an external broker the pipelines name (none: embedded).
    external_brokers: Option<String>,
}

impl System {
    pub async fn start(pipelines: Vec<Pipeline>) -> System {
        let external_brokers = pipelines.iter().find_map(|p| match &p.broker.brokers {
            runner::transport::Brokers::List(list) => Some(list.clone()),
            runner::transport::Brokers::Embedded => None,
        });
        let running = runtime::start(pipelines, SocketAddr::from(([127, 0, 0, 1], 0))).await.expect("start the system");
        System { external_brokers, ..System::serving(running) }
    }

    /// Every pipeline file of `dir` on `database_url` and the embedded broker, chaos on unless
    /// a file says otherwise, each file reloaded when it changes (as `runner up` runs them).
    pub async fn start_watched(dir: &Path, database_url: &str) -> System {
        let options = LoadOptions {
            defaults: Defaults { brokers: Some("embedded".into()), database_url: None, chaos_enabled: Some(true) },
            overrides: Overrides {
                database_url: Some(database_url.into()),
                brokers: Some("embedded".into()),
                listen: None,
            },
            use_environment: false,
        };
        let files = config::pipeline_files(dir).unwrap();
        let loaded = config::load_system(&files, &[], &options).unwrap_or_else(|d| panic!("{d}"));
        let running = runtime::start_watched(loaded, "127.0.0.1:0".parse().unwrap(), options).await.unwrap();
        System::serving(running)
    }

    fn serving(running: Running) -> System {
        System {
            base: format!("http://{}", running.addr),
            running,
            client: reqwest::Client::new(),
            external_brokers: None,
        }
    }

    pub fn store(&self) -> &Store {
        &self.running.store
    }

    /// The address of the broker: the one this process hosts, or the external one the
    /// pipelines name.
    pub fn bootstrap(&self) -> String {
        match &self.running.embedded_broker {
            Some(embedded) => embedded.bootstrap_servers().to_string(),
            None => self.external_brokers.clone().expect("an embedded broker or a broker list"),
        }
    }

    /// The JSON document at `path`.
    pub async fn get(&self, path: &str) -> Value {
        self.client.get(format!("{}{path}", self.base)).send().await.unwrap().json().await.unwrap()
    }

    /// The Prometheus exposition at `/metrics`.
    pub async fn metrics(&self) -> String {
        self.client.get(format!("{}/metrics", self.base)).send().await.unwrap().text().await.unwrap()
    }

    /// A request with an optional bearer token and JSON body: the status and the JSON answer
    /// (`null` when the answer is not JSON).
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut request = self.client.request(method, format!("{}{path}", self.base));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// Posts an order and returns its id; panics unless the answer is 202.
    pub async fn post_order(&self, body: &Value) -> String {
        let response =
            self.client.post(format!("{}/api/orders", self.base)).json(body).send().await.expect("POST /api/orders");
        assert_eq!(response.status(), 202, "posting {body}");
        let answer: Value = response.json().await.unwrap();
        answer["orderId"].as_str().unwrap().to_string()
    }

    /// Posts orders `at_once` at a time; returns their ids in the order of `bodies`.
    pub async fn post_orders(&self, bodies: impl IntoIterator<Item = Value>, at_once: usize) -> Vec<String> {
        let bodies: Vec<Value> = bodies.into_iter().collect();
        let mut ids = Vec::with_capacity(bodies.len());
        for wave in bodies.chunks(at_once) {
            ids.extend(futures::future::join_all(wave.iter().map(|body| self.post_order(body))).await);
        }
        ids
    }

    /// Waits until no order is PENDING; returns the statuses by order id. On timeout the
    /// failure says where each pending order stands (saga state, its outbox rows).
    pub async fn wait_all_terminal(&self, expected: usize, timeout: Duration) -> Vec<(String, String)> {
        eventually(timeout, Duration::from_millis(250), async || {
            let rows = sqlx::query("SELECT id, status FROM orders").fetch_all(self.store().pool()).await.unwrap();
            let statuses: Vec<(String, String)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
            let pending: Vec<&String> = statuses.iter().filter(|(_, s)| s == "PENDING").map(|(id, _)| id).collect();
            if statuses.len() >= expected && pending.is_empty() {
                Ok(statuses)
            } else {
                let mut report =
                    format!("{} of {} orders still PENDING after {timeout:?}", pending.len(), statuses.len());
                for id in pending.iter().take(3) {
                    report.push_str(&format!("\n  {id}: {}", self.where_order_stands(id).await));
                }
                if !pending.is_empty() {
                    let relay = self.client.get(format!("{}/api/relay/status", self.base)).send().await;
                    if let Ok(relay) = relay {
                        report.push_str(&format!("\n  relay: {}", relay.text().await.unwrap_or_default()));
                    }
                }
                Err(report)
            }
        })
        .await
    }

    /// The saga state and outbox rows of one order, for failure messages.
    async fn where_order_stands(&self, id: &str) -> String {
        let pool = self.store().pool();
        let saga = sqlx::query("SELECT state, status FROM sagas WHERE id = $1")
            .bind(id)
            .fetch_optional(pool)
            .await
            .ok()
            .flatten()
            .map(|r| format!("saga {}/{}", r.get::<String, _>(0), r.get::<String, _>(1)))
            .unwrap_or_else(|| "no saga".to_string());
        let outbox = sqlx::query(
            "SELECT type, CASE WHEN published_at_ms IS NULL THEN 'unpublished' ELSE 'published' END \
             FROM outbox WHERE aggregateid = $1 ORDER BY seq",
        )
        .bind(id)
        .fetch_all(pool)
        .await
        .map(|rows| {
            rows.iter().map(|r| format!("{}:{}", r.get::<String, _>(0), r.get::<String, _>(1))).collect::<Vec<_>>()
        })
        .unwrap_or_default();
        format!("{saga}; outbox {outbox:?}")
    }

    /// Waits until chaos-svc knows `service` (announced on the control topic), so a rule
    /// may name it; a service in another process announces itself once it runs.
    pub async fn wait_announced(&self, service: &str) {
        eventually(Duration::from_secs(15), Duration::from_millis(50), async || {
            let catalog = self.get("/api/chaos/catalog").await;
            let known = catalog["services"].as_array().unwrap().iter().any(|s| s["service"] == service);
            if known {
                Ok(())
            } else {
                Err(format!("chaos-svc does not know {service}: {catalog}"))
            }
        })
        .await
    }

    /// Creates a chaos rule through chaos-svc with the development token; panics unless `201`.
    pub async fn create_rule(&self, rule: &Value) {
        let (status, answer) = self.call(Method::POST, "/api/chaos/rules", Some(ADMIN_TOKEN), Some(rule.clone())).await;
        assert_eq!(status, 201, "creating {rule}: {answer}");
    }

    /// Polls `/api/relay/status` until `check` holds (30 s at most); returns that status.
    pub async fn wait_relay(&self, what: &str, check: impl Fn(&Value) -> bool) -> Value {
        eventually(Duration::from_secs(30), Duration::from_millis(50), async || {
            let status = self.get("/api/relay/status").await;
            if check(&status) {
                Ok(status)
            } else {
                Err(format!("{what}; relay status: {status}"))
            }
        })
        .await
    }

    /// Waits until the relay runs in `mode` and, in WAL mode, streams from its slot.
    pub async fn wait_relay_ready(&self, mode: &str) -> Value {
        self.wait_relay("relay not ready", |s| {
            s["mode"] == mode && (mode == "polling" || !s["startToStreamingMs"].is_null())
        })
        .await
    }

    pub async fn stop(self) {
        self.running.stop().await;
    }
}
