//! The chaos engine: the rules in force in this process (from its pipeline files and from the
//! control topic chaos-svc writes), and the one decision every injection point asks —
//! "does a fault strike here, now, for this order?".
//!
//! Injection points: the consume loop (`transport::consume`), the relay's producer
//! (`transport::Publisher`), order-api's HTTP middleware, `ServiceContext::begin` (store), and
//! the embedded broker (a reconciler in `runtime`). Every injection is counted
//! (`chaos_injections_total`), kept in a recent list, and sent to the injections topic.

pub mod catalog;
pub mod control;
pub mod http;
pub mod rule;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use serde::Serialize;
use tokio::sync::{mpsc, watch};

pub use catalog::{Catalog, ServiceCatalog};
pub use control::{CanarySetting, ControlRecord, ControlRule, CONTROL_TOPIC, INJECTIONS_TOPIC};
pub use rule::{
    compile_rule, stable_hash, stable_share, Chance, Fault, FieldProblem, Rule, RuleSpec, Side, TargetSpec,
};

use crate::event::{now_ms, now_rfc3339};
use crate::telemetry;

/// How recent injections are kept in memory for listing.
const RECENT_INJECTIONS: usize = 2_000;
/// The hash salt of the blast radius (a different one from the canary split's).
const KEY_SAMPLE_SALT: &str = "chaos";

/// A service's chaos settings from its pipeline file (`[chaos]`), environment included.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ChaosSettings {
    /// Chaos is off unless the environment turns it on.
    pub enabled: bool,
    /// `crash` faults abort the process only when this is set.
    pub allow_crash: bool,
    pub rules: Vec<Rule>,
}

/// Where a rule in force came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase", tag = "kind")]
pub enum RuleSource {
    /// Declared in a pipeline file (`service` is the file's service).
    File { service: String },
    /// Created through chaos-svc, read from the control topic.
    Api { by: String },
}

/// A rule in force: compiled, with its lease and its count in this process.
#[derive(Debug)]
pub struct ActiveRule {
    pub rule: Rule,
    pub source: RuleSource,
    pub activated_ms: i64,
    pub expires_ms: Option<i64>,
    pub count: AtomicU64,
    /// Injections in the current second (for `rate` rules): (second, count).
    budget: Mutex<(i64, f64)>,
}

impl ActiveRule {
    fn new(rule: Rule, source: RuleSource, activated_ms: i64, expires_ms: Option<i64>) -> Self {
        ActiveRule { rule, source, activated_ms, expires_ms, count: AtomicU64::new(0), budget: Mutex::new((0, 0.0)) }
    }

    /// Why a rule is not injecting now, if it is not.
    pub fn dormant(&self, now: i64) -> Option<&'static str> {
        let rule = &self.rule;
        if !rule.spec.enabled {
            Some("disabled")
        } else if rule.start_ms.is_some_and(|start| now < start) {
            Some("waiting for its start")
        } else if rule.end_ms.is_some_and(|end| now >= end) {
            Some("past its end")
        } else if self.expires_ms.is_some_and(|expiry| now >= expiry) {
            Some("expired")
        } else if rule.spec.max_count.is_some_and(|max| self.count.load(Ordering::Relaxed) >= max) {
            Some("reached max_count")
        } else {
            None
        }
    }

    /// Draws whether this call gets the fault (after the rule matched and is active).
    fn strikes(&self, key: Option<&str>, now: i64) -> bool {
        if key.is_some_and(|key| !in_key_sample(&self.rule, key)) {
            return false;
        }
        match self.rule.chance {
            Chance::Probability(p) => p >= 1.0 || rand::random::<f64>() < p,
            Chance::PerSecond(rate) => {
                let mut budget = self.budget.lock().expect("budget lock");
                let second = now / 1000;
                if budget.0 != second {
                    *budget = (second, 0.0);
                }
                if budget.1 + 1.0 <= rate.max(1.0) {
                    budget.1 += 1.0;
                    true
                } else {
                    false
                }
            }
        }
    }
}

/// Whether `key` (an order id) is in the rule's blast radius (`key_sample`; all when unset).
pub fn in_key_sample(rule: &Rule, key: &str) -> bool {
    rule.key_sample.is_none_or(|sample| stable_share(KEY_SAMPLE_SALT, key) < sample)
}

/// Where a call is about to happen, as injection points describe it.
#[derive(Debug, Clone, Copy)]
pub enum Point<'a> {
    /// A consumer is about to handle a message (attempt 1), or to retry it (only `error`
    /// faults are asked again).
    Consume { service: &'a str, consumer: &'a str, handler: &'a str, topic: &'a str, attempt: u32 },
    /// The relay is about to publish a record.
    Produce { service: &'a str, topic: &'a str },
    /// An HTTP request reached a service's route.
    Http { service: &'a str, route: &'a str },
    /// A service starts a database transaction.
    Store { service: &'a str },
}

impl Point<'_> {
    fn service(&self) -> &str {
        match self {
            Point::Consume { service, .. }
            | Point::Produce { service, .. }
            | Point::Http { service, .. }
            | Point::Store { service } => service,
        }
    }

    fn describe(&self) -> String {
        match self {
            Point::Consume { consumer, topic, .. } => format!("consume {topic} ({consumer})"),
            Point::Produce { topic, .. } => format!("produce {topic}"),
            Point::Http { route, .. } => format!("http {route}"),
            Point::Store { .. } => "store".to_string(),
        }
    }

    /// Whether a rule's target names this point.
    pub fn matches(&self, target: &TargetSpec) -> bool {
        match (target, self) {
            (TargetSpec::Service { service }, Point::Consume { service: s, .. }) => service == s,
            (TargetSpec::Handler { handler, service }, Point::Consume { service: s, consumer, handler: h, .. }) => {
                service.as_deref().is_none_or(|service| service == *s)
                    && (handler == h || consumer.rsplit('/').next() == Some(handler.as_str()))
            }
            (TargetSpec::Topic { topic, side: Side::Consume }, Point::Consume { topic: t, .. }) => topic == t,
            (TargetSpec::Topic { topic, side: Side::Produce }, Point::Produce { topic: t, .. }) => topic == t,
            (TargetSpec::Http { service, route }, Point::Http { service: s, route: r }) => {
                service == s && route.as_deref().is_none_or(|prefix| r.starts_with(prefix))
            }
            (TargetSpec::Store { service }, Point::Store { service: s }) => service == s,
            _ => false,
        }
    }
}

/// How long an expired rule is still listed (as expired) before it is purged.
pub const PURGE_AFTER: Duration = Duration::from_secs(600);
/// The most rules chaos-svc keeps in force (file rules not counted): more is refused.
pub const MAX_CONTROL_RULES: usize = 200;

/// A fault that struck: what the injection point must do.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Wait `delay`, while the rule that struck stays in force.
    Delay {
        rule: String,
        delay: Duration,
    },
    Fail(String),
    Duplicate,
    Drop,
    Corrupt,
    Status(u16),
    Crash,
}

/// A recorded injection.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Injection {
    pub at: String,
    pub at_ms: i64,
    pub rule: String,
    pub fault: String,
    pub service: String,
    pub target: String,
    /// The order concerned, when the call had one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// Extra detail (the delay drawn, the status answered).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// The runner process that injected it.
    #[serde(default)]
    pub runner: String,
}

/// The state of the embedded broker the rules ask for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BrokerFault {
    pub down: bool,
    pub rtt: Duration,
    /// The rules responsible (for the injection records).
    pub rules: Vec<String>,
}

/// The engine of one process, shared by every service in it.
#[derive(Clone, Default)]
pub struct Chaos {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Chaos {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Chaos").field("rules", &self.active().len()).finish()
    }
}

#[derive(Default)]
struct Inner {
    settings: RwLock<BTreeMap<String, ChaosSettings>>,
    control_rules: RwLock<BTreeMap<String, ControlRule>>,
    canary: RwLock<HashMap<String, CanarySetting>>,
    /// What the running services announced (`hello/<service>`).
    catalog: RwLock<Catalog>,
    active: RwLock<Arc<Vec<Arc<ActiveRule>>>>,
    recent: Mutex<VecDeque<Injection>>,
    outgoing: Mutex<Option<mpsc::Sender<Injection>>>,
    /// Bumped on every change of rules or canary settings (waiters: chaos-svc, canary, broker).
    version: Mutex<Option<watch::Sender<u64>>>,
    /// This process, on its injections (so chaos-svc does not list its own twice).
    runner: String,
}

impl Chaos {
    pub fn new() -> Self {
        let inner = Inner {
            version: Mutex::new(Some(watch::channel(0).0)),
            runner: uuid::Uuid::new_v4().simple().to_string()[..12].to_string(),
            ..Inner::default()
        };
        Chaos { inner: Arc::new(inner) }
    }

    /// Sets a service's settings and file rules (start-up and every reload).
    pub fn set_service(&self, service: &str, settings: ChaosSettings) {
        self.inner.settings.write().expect("settings lock").insert(service.to_string(), settings);
        self.rebuild();
    }

    /// Applies one record of the control topic. Rules whose lease ran out more than
    /// [`PURGE_AFTER`] ago are purged on the way (until then they are listed as expired).
    pub fn apply_control(&self, record: ControlRecord) {
        match record {
            ControlRecord::Rule(id, Some(rule)) => {
                let purge_before = now_ms() - PURGE_AFTER.as_millis() as i64;
                let mut rules = self.inner.control_rules.write().expect("rules lock");
                rules.insert(id, *rule);
                rules.retain(|_, rule| rule.expires_at_ms.is_none_or(|expiry| expiry > purge_before));
            }
            ControlRecord::Rule(id, None) => {
                self.inner.control_rules.write().expect("rules lock").remove(&id);
            }
            ControlRecord::Canary(step, Some(setting)) => {
                self.inner.canary.write().expect("canary lock").insert(step, setting);
            }
            ControlRecord::Canary(step, None) => {
                self.inner.canary.write().expect("canary lock").remove(&step);
            }
            ControlRecord::Hello(_, Some(catalog)) => {
                self.announce(*catalog);
                return;
            }
            ControlRecord::Hello(service, None) => {
                self.inner.catalog.write().expect("catalog lock").services.remove(&service);
                return;
            }
        }
        self.rebuild();
    }

    /// Records what a service consists of (from its hello, or directly in its own process).
    pub fn announce(&self, catalog: ServiceCatalog) {
        self.inner.catalog.write().expect("catalog lock").services.insert(catalog.service.clone(), catalog);
    }

    /// What the running services announced.
    pub fn catalog(&self) -> Catalog {
        self.inner.catalog.read().expect("catalog lock").clone()
    }

    /// The rules of the control topic as last seen.
    pub fn control_rules(&self) -> BTreeMap<String, ControlRule> {
        self.inner.control_rules.read().expect("rules lock").clone()
    }

    /// The canary percentage last set through the control topic for a saga step.
    pub fn canary_setting(&self, step: &str) -> Option<CanarySetting> {
        self.inner.canary.read().expect("canary lock").get(step).cloned()
    }

    pub fn canary_settings(&self) -> HashMap<String, CanarySetting> {
        self.inner.canary.read().expect("canary lock").clone()
    }

    /// A receiver that changes whenever rules or canary settings change.
    pub fn changes(&self) -> watch::Receiver<u64> {
        self.inner.version.lock().expect("version lock").get_or_insert_with(|| watch::channel(0).0).subscribe()
    }

    /// Every rule in force in this process, with its source.
    pub fn active(&self) -> Arc<Vec<Arc<ActiveRule>>> {
        self.inner.active.read().expect("active lock").clone()
    }

    /// Whether the rule `id` is in force: present and not disabled, expired or out of its
    /// window (a rule that reached its `max_count` still owns the faults it injected).
    pub fn in_force(&self, id: &str) -> bool {
        let now = now_ms();
        self.active().iter().any(|r| r.rule.spec.id == id && matches!(r.dormant(now), None | Some("reached max_count")))
    }

    /// Whether any service of this process runs with chaos on.
    pub fn enabled_anywhere(&self) -> bool {
        self.inner.settings.read().expect("settings lock").values().any(|s| s.enabled)
    }

    /// Whether chaos is on for a service, and whether it may crash: read on every call, so
    /// only the two flags are copied (not the service's rules).
    fn flags_of(&self, service: &str) -> Option<(bool, bool)> {
        self.inner.settings.read().expect("settings lock").get(service).map(|s| (s.enabled, s.allow_crash))
    }

    /// Recomputes the rules in force, keeping the counts and leases of unchanged rules.
    fn rebuild(&self) {
        let now = now_ms();
        let previous = self.active();
        let keep = |rule: &Rule, source: &RuleSource| {
            previous.iter().find(|a| a.rule == *rule && a.source == *source).cloned()
        };
        let mut next: Vec<Arc<ActiveRule>> = Vec::new();
        for (service, settings) in self.inner.settings.read().expect("settings lock").iter() {
            for rule in &settings.rules {
                let source = RuleSource::File { service: service.clone() };
                next.push(keep(rule, &source).unwrap_or_else(|| {
                    let expires = rule.expiry_from(now);
                    Arc::new(ActiveRule::new(rule.clone(), source, now, expires))
                }));
            }
        }
        for control in self.inner.control_rules.read().expect("rules lock").values() {
            let Ok(rule) = compile_rule(&control.rule) else { continue };
            let source = RuleSource::Api { by: control.by.clone() };
            next.push(keep(&rule, &source).unwrap_or_else(|| {
                Arc::new(ActiveRule::new(rule, source, control.updated_at_ms, control.expires_at_ms))
            }));
        }
        *self.inner.active.write().expect("active lock") = Arc::new(next);
        if let Some(version) = self.inner.version.lock().expect("version lock").as_ref() {
            version.send_modify(|v| *v += 1);
        }
    }

    /// Asks whether faults strike at `point` for the order `key`; records each one that does.
    pub fn decide(&self, point: Point<'_>, key: Option<&str>) -> Vec<Action> {
        let active = self.active();
        if active.is_empty() {
            return Vec::new();
        }
        let Some((true, allow_crash)) = self.flags_of(point.service()) else { return Vec::new() };
        let now = now_ms();
        let mut actions = Vec::new();
        for rule in active.iter() {
            let retry = matches!(point, Point::Consume { attempt, .. } if attempt > 1);
            if retry && !matches!(rule.rule.fault, Fault::Error(_)) {
                continue;
            }
            if !point.matches(&rule.rule.target) || rule.dormant(now).is_some() || !rule.strikes(key, now) {
                continue;
            }
            let (action, detail) = match &rule.rule.fault {
                Fault::Latency { min, max, jitter } => {
                    let delay = Fault::draw_delay(*min, *max, *jitter);
                    let action = Action::Delay { rule: rule.rule.spec.id.clone(), delay };
                    (action, Some(format!("{} ms", delay.as_millis())))
                }
                Fault::Error(message) => (Action::Fail(message.clone()), None),
                Fault::Duplicate => (Action::Duplicate, None),
                Fault::Drop => (Action::Drop, None),
                Fault::Corrupt => (Action::Corrupt, None),
                Fault::HttpStatus(status) => (Action::Status(*status), Some(status.to_string())),
                Fault::Crash if allow_crash => (Action::Crash, None),
                Fault::Crash => {
                    tracing::warn!(rule = rule.rule.spec.id, "crash fault skipped: set [chaos] allow_crash = true");
                    continue;
                }
                Fault::Down => continue,
            };
            rule.count.fetch_add(1, Ordering::Relaxed);
            self.record(Injection {
                at: now_rfc3339(),
                at_ms: now,
                rule: rule.rule.spec.id.clone(),
                fault: rule.rule.fault.name().to_string(),
                service: point.service().to_string(),
                target: point.describe(),
                key: key.map(str::to_string),
                detail,
                runner: String::new(),
            });
            actions.push(action);
        }
        actions
    }

    /// What the broker rules ask of the embedded broker now.
    pub fn broker_fault(&self) -> BrokerFault {
        let mut fault = BrokerFault::default();
        if !self.enabled_anywhere() {
            return fault;
        }
        let now = now_ms();
        for rule in self.active().iter() {
            if rule.rule.target != TargetSpec::Broker || rule.dormant(now).is_some() {
                continue;
            }
            match &rule.rule.fault {
                Fault::Down => fault.down = true,
                Fault::Latency { max, jitter, .. } => fault.rtt = fault.rtt.max(*max + *jitter),
                _ => continue,
            }
            fault.rules.push(rule.rule.spec.id.clone());
        }
        fault
    }

    /// Records the start of a broker fault (one injection per rule each time it takes effect).
    pub fn record_broker(&self, rule_id: &str, detail: String) {
        let active = self.active();
        let rule = active.iter().find(|r| r.rule.spec.id == rule_id);
        if let Some(rule) = rule {
            rule.count.fetch_add(1, Ordering::Relaxed);
        }
        let fault = rule.map_or("broker", |r| r.rule.fault.name()).to_string();
        let now = now_ms();
        self.record(Injection {
            at: now_rfc3339(),
            at_ms: now,
            rule: rule_id.to_string(),
            fault,
            service: "broker".to_string(),
            target: "embedded broker".to_string(),
            key: None,
            detail: Some(detail),
            runner: String::new(),
        });
    }

    fn record(&self, mut injection: Injection) {
        injection.runner = self.inner.runner.clone();
        metrics::counter!(
            telemetry::CHAOS_INJECTIONS,
            "service" => injection.service.clone(),
            "rule" => injection.rule.clone(),
            "fault" => injection.fault.clone()
        )
        .increment(1);
        tracing::info!(
            rule = injection.rule,
            fault = injection.fault,
            service = injection.service,
            target = injection.target,
            key = injection.key.as_deref().unwrap_or(""),
            "chaos injected"
        );
        if let Some(sender) = self.inner.outgoing.lock().expect("outgoing lock").as_ref() {
            // Best effort: a full queue drops the copy for the topic, never the fault itself.
            let _ = sender.try_send(injection.clone());
        }
        self.keep(injection);
    }

    /// Adds to the recent list, dropping the oldest past its size.
    fn keep(&self, injection: Injection) {
        let mut recent = self.inner.recent.lock().expect("recent lock");
        if recent.len() == RECENT_INJECTIONS {
            recent.pop_front();
        }
        recent.push_back(injection);
    }

    /// Keeps an injection reported by another runner (chaos-svc follows the injections topic).
    pub fn remember(&self, injection: Injection) {
        if injection.runner != self.inner.runner {
            self.keep(injection);
        }
    }

    /// The newest injections first.
    pub fn recent(&self, limit: usize) -> Vec<Injection> {
        self.inner.recent.lock().expect("recent lock").iter().rev().take(limit).cloned().collect()
    }

    /// Sends every later injection to `sender` (the runtime publishes them to the injections topic).
    pub fn report_to(&self, sender: mpsc::Sender<Injection>) {
        *self.inner.outgoing.lock().expect("outgoing lock") = Some(sender);
    }
}

/// Waits out the delays among `actions`, each only while its rule stays in force: removing,
/// disabling or the lease running out ends the wait at once (looked at on every rule change,
/// and every second for leases and windows), so no delay outlives its rule.
pub async fn delay_for(chaos: &Chaos, actions: &[Action]) {
    const LOOK_AGAIN: Duration = Duration::from_secs(1);
    for action in actions {
        let Action::Delay { rule, delay } = action else { continue };
        // Delays are bounded when a rule is compiled (at most an hour): this cannot overflow.
        let deadline = tokio::time::Instant::now() + *delay;
        let mut changes = chaos.changes();
        while tokio::time::Instant::now() < deadline && chaos.in_force(rule) {
            tokio::select! {
                _ = tokio::time::sleep_until(deadline) => {}
                _ = tokio::time::sleep(LOOK_AGAIN) => {}
                changed = changes.changed() => {
                    if changed.is_err() {
                        // No more change notices: fall back to looking every second.
                        tokio::time::sleep(LOOK_AGAIN.min(deadline - tokio::time::Instant::now())).await;
                    }
                }
            }
        }
    }
}

/// Ends the process at once, as a crash would: no shutdown, no flush.
pub fn crash(rule_context: &str) -> ! {
    eprintln!("chaos: crashing the process on purpose ({rule_context})");
    std::process::abort()
}

/// The rules in force as the admin endpoints list them: spec, source, state and count.
pub fn describe_rules(chaos: &Chaos) -> Vec<serde_json::Value> {
    let now = now_ms();
    chaos
        .active()
        .iter()
        .map(|rule| {
            serde_json::json!({
                "id": rule.rule.spec.id,
                "source": rule.source,
                "state": rule.dormant(now).unwrap_or("active"),
                "count": rule.count.load(Ordering::Relaxed),
                "activatedAtMs": rule.activated_ms,
                "expiresAtMs": rule.expires_ms,
                "rule": rule.rule.spec,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(rules: &[&str]) -> ChaosSettings {
        let rules = rules
            .iter()
            .map(|text| rule::compile_rule(&toml::from_str::<RuleSpec>(text).expect("a rule")).expect("a valid rule"))
            .collect();
        ChaosSettings { enabled: true, allow_crash: false, rules }
    }

    const HOUR_OF_LATENCY: &str = r#"id = "slow"
target = { kind = "store", service = "svc" }
fault = { kind = "latency", fixed = "1h" }"#;

    fn control_rule(id: &str, expires_at_ms: Option<i64>) -> ControlRecord {
        let rule = ControlRule {
            rule: toml::from_str::<RuleSpec>(&HOUR_OF_LATENCY.replace("\"slow\"", &format!("\"{id}\""))).unwrap(),
            created_at_ms: 0,
            updated_at_ms: 0,
            expires_at_ms,
            by: "test".into(),
        };
        ControlRecord::Rule(id.to_string(), Some(Box::new(rule)))
    }

    /// Rules whose lease ran out long ago are purged; recently expired ones are still listed.
    #[test]
    fn long_expired_rules_are_purged() {
        let chaos = Chaos::new();
        let now = now_ms();
        chaos.apply_control(control_rule("old", Some(now - 2 * PURGE_AFTER.as_millis() as i64)));
        chaos.apply_control(control_rule("recent", Some(now - 1_000)));
        chaos.apply_control(control_rule("leased", Some(now + 60_000)));
        let ids: Vec<String> = chaos.control_rules().into_keys().collect();
        assert_eq!(ids, ["leased", "recent"]);
    }

    /// An hour of injected latency ends as soon as its rule is removed (or disabled): no
    /// delay outlives its rule.
    #[tokio::test]
    async fn a_delay_ends_when_its_rule_is_removed_or_disabled() {
        for removal in ["removed", "disabled"] {
            let chaos = Chaos::new();
            chaos.set_service("svc", settings(&[HOUR_OF_LATENCY]));
            let actions = chaos.decide(Point::Store { service: "svc" }, None);
            assert!(matches!(&actions[..], [Action::Delay { delay, .. }] if *delay == Duration::from_secs(3600)));
            let waiting = {
                let chaos = chaos.clone();
                tokio::spawn(async move { delay_for(&chaos, &actions).await })
            };
            tokio::time::sleep(Duration::from_millis(50)).await;
            assert!(!waiting.is_finished(), "the delay is in force while its rule is");
            let next = match removal {
                "removed" => settings(&[]),
                _ => settings(&[&format!("{HOUR_OF_LATENCY}\nenabled = false")]),
            };
            chaos.set_service("svc", next);
            // Bounded wait for the task (not a timing target): an hour if the delay outlived its rule.
            tokio::time::timeout(Duration::from_secs(10), waiting)
                .await
                .unwrap_or_else(|_| panic!("the delay outlived its {removal} rule"))
                .unwrap();
        }
    }
}
