//! A chaos rule as written (in a pipeline file's `[[chaos.rules]]` or a chaos-svc request)
//! and as compiled: where it strikes, what it does, how often, to whom and for how long.
//!
//! The same spec type serves the TOML file and the REST API, and one pure [`compile_rule`]
//! checks both, naming the field of every problem.

use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// One chaos rule as written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RuleSpec {
    /// Unique name of the rule: letters, digits, `-`, `_` and `.`.
    pub id: String,
    /// What the rule strikes.
    pub target: TargetSpec,
    /// What it does there.
    pub fault: FaultSpec,
    /// Share of the matching calls or messages that get the fault, 0 to 1 (default 1 unless `rate` is set).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probability: Option<f64>,
    /// At most this many injections per second instead of a probability.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<f64>,
    /// Blast radius: the share of orders (by a stable hash of the order id) the rule may touch,
    /// 0 to 1, so one order meets the fault at every step. Calls without an order id are not sampled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_sample: Option<f64>,
    /// RFC 3339 time before which the rule is dormant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<String>,
    /// RFC 3339 time after which the rule is dormant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end: Option<String>,
    /// Lease: the rule ends by itself this long after it was created or loaded, e.g. `"10m"`,
    /// even if nobody removes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<String>,
    /// Lease as an RFC 3339 time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
    /// Stop after this many injections (counted by each runner).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_count: Option<u64>,
    /// Off rules stay listed but inject nothing (default on).
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub enabled: bool,
    /// A `drop` fault loses messages on purpose (the saga's timeouts must recover them):
    /// it runs only when the rule says so here.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub allow_drop: bool,
    /// Free text for people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

fn yes() -> bool {
    true
}

fn is_true(value: &bool) -> bool {
    *value
}

/// Where a rule strikes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum TargetSpec {
    /// Every message a service consumes.
    Service { service: String },
    /// The messages of one handler (`payment.charge`) or consumer name (`charge`), optionally of one service.
    Handler {
        handler: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        service: Option<String>,
    },
    /// A topic, where it is consumed or where the relay produces to it.
    Topic {
        topic: String,
        #[serde(default)]
        side: Side,
    },
    /// The HTTP routes of a service (all, or those starting with `route`).
    Http {
        service: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        route: Option<String>,
    },
    /// The database calls (transactions) of a service.
    Store { service: String },
    /// The broker hosted by a runner (`brokers = "embedded"`).
    Broker,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Side {
    #[default]
    Consume,
    Produce,
}

/// What a rule does.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum FaultSpec {
    /// A delay: `fixed`, or uniform between `min` and `max`, plus up to `jitter`. On the
    /// broker target it is the broker's round-trip time.
    Latency {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        fixed: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        min: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        max: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        jitter: Option<String>,
    },
    /// The handling fails (retries, dead letters and compensations engage); on the store a
    /// transaction cannot start; on the produce side a publish fails.
    Error {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        message: Option<String>,
    },
    /// The message is delivered again (consume side) or published twice (produce side).
    Duplicate,
    /// The message is acknowledged without being handled (needs `allow_drop = true`).
    Drop,
    /// The payload is replaced by bytes that are not JSON: a poison message.
    Corrupt,
    /// An HTTP route answers this status instead of running.
    HttpStatus { status: u16 },
    /// The process aborts (needs `[chaos] allow_crash = true`).
    Crash,
    /// The embedded broker goes down while the rule is active.
    Down,
}

/// A compiled rule.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    pub spec: RuleSpec,
    pub target: TargetSpec,
    pub fault: Fault,
    /// How often: a share, or a per-second budget.
    pub chance: Chance,
    pub key_sample: Option<f64>,
    pub start_ms: Option<i64>,
    pub end_ms: Option<i64>,
    /// `ttl` stays relative until the rule is activated (see [`Rule::expiry_from`]).
    pub ttl: Option<Duration>,
    pub expires_at_ms: Option<i64>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Chance {
    Probability(f64),
    PerSecond(f64),
}

/// A compiled fault.
#[derive(Debug, Clone, PartialEq)]
pub enum Fault {
    Latency { min: Duration, max: Duration, jitter: Duration },
    Error(String),
    Duplicate,
    Drop,
    Corrupt,
    HttpStatus(u16),
    Crash,
    Down,
}

impl Fault {
    pub fn name(&self) -> &'static str {
        match self {
            Fault::Latency { .. } => "latency",
            Fault::Error(_) => "error",
            Fault::Duplicate => "duplicate",
            Fault::Drop => "drop",
            Fault::Corrupt => "corrupt",
            Fault::HttpStatus(_) => "http_status",
            Fault::Crash => "crash",
            Fault::Down => "down",
        }
    }

    /// A delay drawn for one injection.
    pub fn draw_delay(min: Duration, max: Duration, jitter: Duration) -> Duration {
        let span = max.saturating_sub(min).as_secs_f64();
        let extra = span * rand::random::<f64>() + jitter.as_secs_f64() * rand::random::<f64>();
        min + Duration::from_secs_f64(extra)
    }
}

impl Rule {
    /// When the lease ends for a rule activated at `activated_ms`.
    pub fn expiry_from(&self, activated_ms: i64) -> Option<i64> {
        let from_ttl = self.ttl.map(|ttl| activated_ms.saturating_add(ttl.as_millis() as i64));
        match (from_ttl, self.expires_at_ms) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

/// The longest delay a `latency` fault may inject (also its jitter).
pub const MAX_LATENCY: Duration = Duration::from_secs(3600);
/// The longest a broker `down` rule may last: its lease or window must end within this.
pub const MAX_BROKER_OUTAGE: Duration = Duration::from_secs(600);
/// The longest lease (`ttl`) a rule may have.
pub const MAX_LEASE: Duration = Duration::from_secs(31_557_600);
/// A value as quoted back in a message: at most 40 characters of it.
pub fn shortened(text: &str) -> String {
    match text.char_indices().nth(40) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_string(),
    }
}

/// The longest service, handler, topic or route name a rule may give, in characters.
pub const MAX_NAME_CHARS: usize = 200;
/// The longest `fault.message` of an `error` fault, in characters.
pub const MAX_MESSAGE_CHARS: usize = 1_000;
/// The longest `description` a rule may have, in characters.
pub const MAX_DESCRIPTION_CHARS: usize = 2_000;

/// A problem with one field of a rule: the field's path inside the rule, and what to do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldProblem {
    pub field: String,
    pub message: String,
}

/// Checks a rule and compiles it, or names every field that is wrong.
pub fn compile_rule(spec: &RuleSpec) -> Result<Rule, Vec<FieldProblem>> {
    let mut problems = Vec::new();
    let mut problem = |field: &str, message: String| problems.push(FieldProblem { field: field.into(), message });

    let id_ok = !spec.id.is_empty()
        && spec.id.len() <= 100
        && spec.id.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if !id_ok {
        problem("id", format!("`{}` is not a rule id; use 1 to 100 letters, digits, `-`, `_` or `.`", spec.id));
    }
    // Injected delays are bounded here, so the arithmetic on them (deadlines, jitter) cannot
    // overflow and no delay can outlast a careless rule by years.
    let duration = |field: &str, text: &Option<String>, problem: &mut dyn FnMut(&str, String)| -> Duration {
        match text.as_deref().map(humantime::parse_duration) {
            None => Duration::ZERO,
            Some(Ok(d)) if d > MAX_LATENCY => {
                problem(
                    field,
                    format!(
                        "`{}` is longer than the longest injected delay, {}; use a shorter one",
                        text.as_deref().unwrap_or_default(),
                        humantime::format_duration(MAX_LATENCY)
                    ),
                );
                MAX_LATENCY
            }
            Some(Ok(d)) => d,
            Some(Err(e)) => {
                problem(field, format!("invalid duration ({e}); write it like \"200ms\" or \"2s\""));
                Duration::ZERO
            }
        }
    };
    let fault = match &spec.fault {
        FaultSpec::Latency { fixed, min, max, jitter } => {
            let jitter = duration("fault.jitter", jitter, &mut problem);
            match (fixed, min, max) {
                (Some(_), None, None) => {
                    let fixed = duration("fault.fixed", fixed, &mut problem);
                    Fault::Latency { min: fixed, max: fixed, jitter }
                }
                (None, Some(_), Some(_)) => {
                    let (low, high) =
                        (duration("fault.min", min, &mut problem), duration("fault.max", max, &mut problem));
                    if high < low {
                        problem("fault.max", "max is below min; swap them".into());
                    }
                    Fault::Latency { min: low, max: high.max(low), jitter }
                }
                _ => {
                    problem("fault", "a latency fault needs `fixed`, or both `min` and `max`".into());
                    Fault::Latency { min: Duration::ZERO, max: Duration::ZERO, jitter }
                }
            }
        }
        FaultSpec::Error { message } => {
            Fault::Error(message.clone().unwrap_or_else(|| format!("injected by chaos rule {}", spec.id)))
        }
        FaultSpec::Duplicate => Fault::Duplicate,
        FaultSpec::Drop => Fault::Drop,
        FaultSpec::Corrupt => Fault::Corrupt,
        FaultSpec::HttpStatus { status } => {
            if !(400..=599).contains(status) {
                problem("fault.status", format!("{status} is not an error status; use 400 to 599"));
            }
            Fault::HttpStatus(*status)
        }
        FaultSpec::Crash => Fault::Crash,
        FaultSpec::Down => Fault::Down,
    };
    if !fits(&spec.target, &fault) {
        problem(
            "fault.kind",
            format!(
                "a `{}` fault cannot strike a {} target; {}",
                fault.name(),
                target_name(&spec.target),
                fitting(&spec.target)
            ),
        );
    }
    if matches!(fault, Fault::Drop) && !spec.allow_drop {
        problem("allow_drop", "a drop fault loses messages on purpose; set `allow_drop = true` to confirm".into());
    }
    let chance = match (spec.probability, spec.rate) {
        (Some(_), Some(_)) => {
            problem("rate", "give either `probability` or `rate`, not both".into());
            Chance::Probability(1.0)
        }
        (Some(p), None) => {
            if !(0.0..=1.0).contains(&p) {
                problem("probability", format!("{p} is not a probability; use 0 to 1"));
            }
            Chance::Probability(p.clamp(0.0, 1.0))
        }
        (None, Some(r)) => {
            if !(r > 0.0 && r.is_finite()) {
                problem("rate", format!("{r} is not a rate; use a positive number of injections per second"));
            }
            Chance::PerSecond(r.max(0.0))
        }
        (None, None) => Chance::Probability(1.0),
    };
    if let Some(sample) = spec.key_sample {
        if !(0.0..=1.0).contains(&sample) {
            problem("key_sample", format!("{sample} is not a share of orders; use 0 to 1"));
        }
    }
    let mut time = |field: &str, text: &Option<String>| -> Option<i64> {
        let text = text.as_deref()?;
        match humantime::parse_rfc3339_weak(text) {
            Ok(t) => Some(t.duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)),
            Err(e) => {
                problem(
                    field,
                    format!(
                        "`{}` is not an RFC 3339 time ({e}); write it like \"2026-11-24T18:00:00Z\"",
                        shortened(text)
                    ),
                );
                None
            }
        }
    };
    let start_ms = time("start", &spec.start);
    let end_ms = time("end", &spec.end);
    let expires_at_ms = time("expires_at", &spec.expires_at);
    if let (Some(start), Some(end)) = (start_ms, end_ms) {
        if end <= start {
            problems.push(FieldProblem { field: "end".into(), message: "end is not after start".into() });
        }
    }
    let ttl = match spec.ttl.as_deref().map(humantime::parse_duration) {
        None => None,
        Some(Ok(d)) if d > MAX_LEASE => {
            problems.push(FieldProblem {
                field: "ttl".into(),
                message: format!(
                    "a ttl above {} is not a lease; use a shorter one",
                    humantime::format_duration(MAX_LEASE)
                ),
            });
            Some(MAX_LEASE)
        }
        Some(Ok(d)) if !d.is_zero() => Some(d),
        Some(Ok(_)) => {
            problems.push(FieldProblem {
                field: "ttl".into(),
                message: "a ttl of zero never runs; omit it or raise it".into(),
            });
            None
        }
        Some(Err(e)) => {
            problems.push(FieldProblem {
                field: "ttl".into(),
                message: format!("invalid duration ({e}); write it like \"10m\" or \"1h\""),
            });
            None
        }
    };
    if let Some(length) = spec.description.as_ref().map(|d| d.chars().count()).filter(|&n| n > MAX_DESCRIPTION_CHARS) {
        // A rule travels as one control-topic record, which must stay well below the broker's
        // message size (about 1 MB).
        problems.push(FieldProblem {
            field: "description".into(),
            message: format!(
                "{length} characters is longer than the longest description, {MAX_DESCRIPTION_CHARS} characters; shorten it"
            ),
        });
    }
    if spec.max_count == Some(0) {
        problems.push(FieldProblem {
            field: "max_count".into(),
            message: "a max_count of 0 never runs; omit it or raise it".into(),
        });
    }
    // Names and messages travel in control records and injected errors (dead-letter headers):
    // bounded well below the broker's message size too.
    let mut too_long = |field: &str, text: &str, max: usize| {
        let length = text.chars().count();
        if length > max {
            problems.push(FieldProblem {
                field: field.into(),
                message: format!("{length} characters is longer than the {max} allowed; shorten it"),
            });
        }
    };
    match &spec.target {
        TargetSpec::Service { service } | TargetSpec::Store { service } => {
            too_long("target.service", service, MAX_NAME_CHARS)
        }
        TargetSpec::Http { service, route } => {
            too_long("target.service", service, MAX_NAME_CHARS);
            too_long("target.route", route.as_deref().unwrap_or_default(), MAX_NAME_CHARS);
        }
        TargetSpec::Handler { handler, service } => {
            too_long("target.handler", handler, MAX_NAME_CHARS);
            too_long("target.service", service.as_deref().unwrap_or_default(), MAX_NAME_CHARS);
        }
        TargetSpec::Topic { topic, .. } => too_long("target.topic", topic, MAX_NAME_CHARS),
        TargetSpec::Broker => {}
    }
    if let FaultSpec::Error { message: Some(message) } = &spec.fault {
        too_long("fault.message", message, MAX_MESSAGE_CHARS);
    }
    let empty = |name: &str| name.trim().is_empty();
    let target_problem = match &spec.target {
        TargetSpec::Service { service } | TargetSpec::Http { service, .. } | TargetSpec::Store { service } => {
            empty(service).then_some(("target.service", "name the service, e.g. \"payment-svc\""))
        }
        TargetSpec::Handler { handler, .. } => empty(handler)
            .then_some(("target.handler", "name the handler (\"payment.charge\") or consumer (\"charge\")")),
        TargetSpec::Topic { topic, .. } => empty(topic).then_some(("target.topic", "name the topic")),
        TargetSpec::Broker => None,
    };
    if let Some((field, message)) = target_problem {
        problems.push(FieldProblem { field: field.into(), message: message.into() });
    }
    // While the broker is down, a deletion may not reach the runner hosting it (the control
    // topic is on that broker): the outage must end by itself.
    if matches!((&spec.target, &fault), (TargetSpec::Broker, Fault::Down)) {
        let window = start_ms.zip(end_ms).map(|(start, end)| end.saturating_sub(start));
        let bounded = ttl.is_some_and(|t| t <= MAX_BROKER_OUTAGE)
            || window.is_some_and(|w| w <= MAX_BROKER_OUTAGE.as_millis() as i64);
        if !bounded {
            problems.push(FieldProblem {
                field: "ttl".into(),
                message: format!(
                    "a broker outage must end by itself: set a ttl of at most {} (or a start/end window no longer)",
                    humantime::format_duration(MAX_BROKER_OUTAGE)
                ),
            });
        }
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    Ok(Rule {
        spec: spec.clone(),
        target: spec.target.clone(),
        fault,
        chance,
        key_sample: spec.key_sample,
        start_ms,
        end_ms,
        ttl,
        expires_at_ms,
    })
}

fn target_name(target: &TargetSpec) -> &'static str {
    match target {
        TargetSpec::Service { .. } => "service",
        TargetSpec::Handler { .. } => "handler",
        TargetSpec::Topic { side: Side::Consume, .. } => "topic (consume side)",
        TargetSpec::Topic { side: Side::Produce, .. } => "topic (produce side)",
        TargetSpec::Http { .. } => "http",
        TargetSpec::Store { .. } => "store",
        TargetSpec::Broker => "broker",
    }
}

/// Whether a fault means something at a target.
fn fits(target: &TargetSpec, fault: &Fault) -> bool {
    use Fault::*;
    match target {
        TargetSpec::Service { .. } | TargetSpec::Handler { .. } | TargetSpec::Topic { side: Side::Consume, .. } => {
            matches!(fault, Latency { .. } | Error(_) | Duplicate | Drop | Corrupt | Crash)
        }
        TargetSpec::Topic { side: Side::Produce, .. } => {
            matches!(fault, Latency { .. } | Error(_) | Duplicate | Corrupt)
        }
        TargetSpec::Http { .. } => matches!(fault, Latency { .. } | HttpStatus(_) | Crash),
        TargetSpec::Store { .. } => matches!(fault, Latency { .. } | Error(_)),
        TargetSpec::Broker => matches!(fault, Latency { .. } | Down),
    }
}

fn fitting(target: &TargetSpec) -> &'static str {
    match target {
        TargetSpec::Service { .. } | TargetSpec::Handler { .. } | TargetSpec::Topic { side: Side::Consume, .. } => {
            "use latency, error, duplicate, drop, corrupt or crash"
        }
        TargetSpec::Topic { side: Side::Produce, .. } => "use latency, error, duplicate or corrupt",
        TargetSpec::Http { .. } => "use latency, http_status or crash",
        TargetSpec::Store { .. } => "use latency or error",
        TargetSpec::Broker => "use latency (round-trip time) or down",
    }
}

/// A stable share in `[0, 1)` for a key: FNV-1a over `salt` and the key, so the same order
/// always lands in the same place (blast radius, canary split).
pub fn stable_share(salt: &str, key: &str) -> f64 {
    (stable_hash(salt, key) >> 11) as f64 / (1u64 << 53) as f64
}

/// A stable 64-bit hash of `salt` and `key` (FNV-1a with a final mix).
pub fn stable_hash(salt: &str, key: &str) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in salt.bytes().chain([0u8]).chain(key.bytes()) {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    // A final mix so keys differing only at the end still spread over the whole range.
    hash ^= hash >> 33;
    hash = hash.wrapping_mul(0xff51_afd7_ed55_8ccd);
    hash ^= hash >> 33;
    hash
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(toml_text: &str) -> Result<Rule, Vec<FieldProblem>> {
        let spec: RuleSpec = toml::from_str(toml_text).expect("rule shape");
        compile_rule(&spec)
    }

    fn fields(result: Result<Rule, Vec<FieldProblem>>) -> Vec<String> {
        result.err().unwrap_or_default().into_iter().map(|p| p.field).collect()
    }

    #[test]
    fn rules_compile_or_name_the_field() {
        let cases: &[(&str, &[&str])] = &[
            (
                r#"id = "a"
target = { kind = "handler", handler = "payment.charge" }
fault = { kind = "latency", fixed = "200ms", jitter = "20ms" }"#,
                &[],
            ),
            (
                r#"id = "a b"
target = { kind = "service", service = "payment-svc" }
fault = { kind = "error" }"#,
                &["id"],
            ),
            (
                r#"id = "x"
target = { kind = "store", service = "payment-svc" }
fault = { kind = "duplicate" }"#,
                &["fault.kind"],
            ),
            (
                r#"id = "x"
target = { kind = "topic", topic = "payment.requested" }
fault = { kind = "drop" }"#,
                &["allow_drop"],
            ),
            (
                r#"id = "x"
target = { kind = "http", service = "order-api" }
fault = { kind = "http_status", status = 200 }
probability = 1.5"#,
                &["fault.status", "probability"],
            ),
            (
                r#"id = "x"
target = { kind = "broker" }
fault = { kind = "latency", min = "2s", max = "1s" }
ttl = "soon""#,
                &["fault.max", "ttl"],
            ),
            (
                r#"id = "x"
target = { kind = "service", service = "s" }
fault = { kind = "crash" }
probability = 0.5
rate = 2.0
start = "yesterday""#,
                &["rate", "start"],
            ),
            // Absurd durations are bounded when the rule is compiled, never at injection time.
            (
                r#"id = "x"
target = { kind = "handler", handler = "payment.charge" }
fault = { kind = "latency", fixed = "1000000000years", jitter = "2h" }
ttl = "500years""#,
                &["fault.jitter", "fault.fixed", "ttl"],
            ),
            (
                r#"id = "x"
target = { kind = "broker" }
fault = { kind = "latency", min = "1s", max = "100years" }"#,
                &["fault.max"],
            ),
        ];
        for (text, expected) in cases {
            assert_eq!(fields(rule(text)), *expected, "case:\n{text}");
        }
    }

    /// Descriptions are bounded in characters, not bytes.
    #[test]
    fn descriptions_are_bounded_in_characters() {
        let with = |description: String| {
            format!(
                "id = \"x\"\ntarget = {{ kind = \"broker\" }}\nfault = {{ kind = \"latency\", fixed = \"1ms\" }}\ndescription = \"{description}\""
            )
        };
        assert_eq!(fields(rule(&with("é".repeat(MAX_DESCRIPTION_CHARS)))), Vec::<String>::new());
        let problems = rule(&with("e".repeat(MAX_DESCRIPTION_CHARS + 1))).unwrap_err();
        assert_eq!(problems[0].field, "description");
        assert_eq!(
            problems[0].message,
            "2001 characters is longer than the longest description, 2000 characters; shorten it"
        );
    }

    #[test]
    fn names_and_messages_are_bounded() {
        let long = "n".repeat(MAX_NAME_CHARS + 1);
        let text = format!(
            "id = \"x\"\ntarget = {{ kind = \"handler\", handler = \"{long}\", service = \"{long}\" }}\nfault = {{ kind = \"error\", message = \"{}\" }}",
            "m".repeat(MAX_MESSAGE_CHARS + 1)
        );
        assert_eq!(fields(rule(&text)), ["target.handler", "target.service", "fault.message"]);
    }

    #[test]
    fn stable_share_is_stable_and_spread() {
        assert_eq!(stable_share("canary", "order-1"), stable_share("canary", "order-1"));
        assert_ne!(stable_share("canary", "order-1"), stable_share("chaos", "order-1"));
        let below = (0..10_000).filter(|i| stable_share("canary", &format!("order-{i}")) < 0.3).count();
        assert!((2_800..3_200).contains(&below), "{below} of 10000 below 0.3");
    }
}
