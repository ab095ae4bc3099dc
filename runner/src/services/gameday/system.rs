//! The game day's calls into the system under test, over its public APIs: chaos rules and the
//! canary percentage through chaos-svc (each with a lease), injection counts, the canary in
//! force. Orders go through order-api by [`crate::load`].

use std::time::Duration;

use serde_json::{json, Value};

use crate::chaos::RuleSpec;

/// How long one call may take: a system that does not answer must not hold a rollback up.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Clone)]
pub struct SystemClient {
    http: reqwest::Client,
    /// `http://host:port` of order-api (the load goes there).
    pub orders: String,
    chaos: String,
    dlq: String,
    runtime: String,
    token: String,
}

impl SystemClient {
    /// Calls every API at `base` but those `endpoints` place elsewhere.
    pub fn new(base: &str, endpoints: &super::Endpoints, token: &str) -> Self {
        let http = reqwest::Client::builder().timeout(CALL_TIMEOUT).build().unwrap_or_default();
        let at = |place: &Option<String>| place.as_deref().unwrap_or(base).trim_end_matches('/').to_string();
        SystemClient {
            http,
            orders: at(&endpoints.orders),
            chaos: at(&endpoints.chaos),
            dlq: at(&endpoints.dlq),
            runtime: at(&endpoints.runtime),
            token: token.to_string(),
        }
    }

    async fn send(&self, request: reqwest::RequestBuilder, what: &str) -> Result<Value, String> {
        let response = request.bearer_auth(&self.token).send().await.map_err(|e| format!("{what}: {e}"))?;
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        if status.is_success() {
            Ok(body)
        } else {
            let message = body["error"].as_str().map_or_else(|| body.to_string(), str::to_string);
            Err(format!("{what} answered {status}: {message}"))
        }
    }

    /// Creates `rule` under `id`, ending by itself after `lease`.
    pub async fn create_rule(&self, id: &str, rule: &RuleSpec, lease: Duration, run: &str) -> Result<(), String> {
        let mut rule = rule.clone();
        rule.id = id.to_string();
        rule.ttl = Some(format!("{}ms", lease.as_millis().max(1)));
        rule.description = Some(format!("game day {run}"));
        let url = format!("{}/api/chaos/rules", self.chaos);
        self.send(self.http.post(url).json(&rule), "POST /api/chaos/rules").await.map(drop)
    }

    /// Deletes rule `id`; one that is gone already counts as deleted.
    pub async fn delete_rule(&self, id: &str) -> Result<(), String> {
        let url = format!("{}/api/chaos/rules/{id}", self.chaos);
        match self.send(self.http.delete(url), "DELETE /api/chaos/rules").await {
            Ok(_) => Ok(()),
            Err(e) if e.contains("404") => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Injections counted for rule `id`: the rule's own count, or the injections chaos-svc
    /// has heard of (other processes report theirs), whichever is higher.
    pub async fn injections(&self, id: &str) -> Option<u64> {
        let rule = self.send(self.http.get(format!("{}/api/chaos/rules/{id}", self.chaos)), "GET rule").await.ok();
        let own = rule.as_ref().and_then(|r| r["count"].as_u64()).unwrap_or(0);
        let url = format!("{}/api/chaos/injections?rule={id}&limit=2000", self.chaos);
        let heard = self.send(self.http.get(url), "GET injections").await.ok();
        let heard = heard.as_ref().and_then(|h| h["injections"].as_array()).map_or(0, |list| list.len() as u64);
        (rule.is_some() || heard > 0).then_some(own.max(heard))
    }

    /// Replays the dead letters of `topic` written since `since_ms` (still `new`) through
    /// dlq-admin; returns how many were sent. The replay is paced, so it may take a while.
    pub async fn replay_dead_letters(&self, topic: &str, since_ms: i64) -> Result<u64, String> {
        let url = format!("{}/api/dlq/replay", self.dlq);
        let body = json!({ "topic": topic, "state": "new", "from": since_ms });
        let request = self.http.post(url).json(&body).timeout(Duration::from_secs(120));
        let answer = self.send(request, "POST /api/dlq/replay").await?;
        Ok(answer["sent"].as_array().map_or_else(|| answer["sent"].as_u64().unwrap_or(0), |s| s.len() as u64))
    }

    /// The canary percentage in force for `step` (the orchestrator's own figure).
    pub async fn canary_percent(&self, step: &str) -> Result<f64, String> {
        let body =
            self.send(self.http.get(format!("{}/api/runtime/canary", self.runtime)), "GET /api/runtime/canary").await?;
        body["canaries"]
            .as_array()
            .and_then(|list| list.iter().find(|c| c["step"] == step))
            .and_then(|c| c["percent"].as_f64())
            .ok_or_else(|| format!("no canary for step `{step}` at {}", self.runtime))
    }

    /// Sets the canary percentage of `step`; with a lease it goes back to `then` by itself.
    pub async fn set_canary(
        &self,
        step: &str,
        percent: f64,
        lease: Option<(Duration, f64)>,
        reason: &str,
    ) -> Result<(), String> {
        let mut body = json!({ "step": step, "percent": percent, "reason": reason });
        if let Some((ttl, then)) = lease {
            body["ttl"] = json!(format!("{}ms", ttl.as_millis().max(1)));
            body["then_percent"] = json!(then);
        }
        let url = format!("{}/api/chaos/canary", self.chaos);
        self.send(self.http.put(url).json(&body), "PUT /api/chaos/canary").await.map(drop)
    }
}
