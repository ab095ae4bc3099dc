//! The figures of streams-analytics: per-minute buckets of orders, the last hour's latencies
//! and step results, and every figure computed from them (orders by outcome and by variant,
//! latency quantiles, per step and variant results, failure ratio and latency, an objective's
//! bad and total orders). Pure: no I/O, no clock (an event's time and `now_ms` come in as
//! arguments), no metrics; what was counted is handed back as [`Counted`] for the exporter.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};

use serde::Serialize;

use crate::saga::canary::Variant;
use crate::slo::{Objective, ObjectiveKind};
use crate::telemetry::SAGA_DURATION_BUCKETS;

/// How many minute buckets are kept: enough for the 3-day burn-rate window.
const MINUTES_KEPT: usize = 3 * 24 * 60 + 1;
/// End-to-end latencies, finished orders and step results kept (the last hour, at most this many).
const SAMPLES_KEPT: usize = 100_000;
/// Figures older than this are dropped from the per-event queues (the longest window).
const HOUR_MS: i64 = 3_600_000;
/// How long after an order's end its unanswered step requests count as `no_reply`: events of
/// one order arrive on several topics, read side by side, so a reply may come after the end.
pub const SETTLE_MS: i64 = 10_000;
/// How many recent event ids are remembered for deduplication.
const SEEN_KEPT: usize = 200_000;
/// Past this many entries, a per-order map drops what is older than an hour (orders that
/// never finish, replies whose request never comes must not grow it forever).
const OPEN_KEPT: usize = 200_000;

/// The windows the figures are given for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Window {
    OneMinute,
    FiveMinutes,
    OneHour,
}

impl Window {
    /// The label of the window in the API and on the gauges.
    pub fn label(self) -> &'static str {
        match self {
            Window::OneMinute => "1m",
            Window::FiveMinutes => "5m",
            Window::OneHour => "1h",
        }
    }

    /// The window's length: the minute buckets it covers, the current one included.
    pub fn minutes(self) -> i64 {
        match self {
            Window::OneMinute => 1,
            Window::FiveMinutes => 5,
            Window::OneHour => 60,
        }
    }
}

/// How an order ended, from its final event's `status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrderStatus {
    Completed,
    Cancelled,
    Failed,
}

impl OrderStatus {
    pub const ALL: [OrderStatus; 3] = [OrderStatus::Completed, OrderStatus::Cancelled, OrderStatus::Failed];

    /// A final event's `status`: anything but `COMPLETED` or `CANCELLED` (none included) is a failure.
    pub fn parse(status: Option<&str>) -> Self {
        match status {
            Some("COMPLETED") => OrderStatus::Completed,
            Some("CANCELLED") => OrderStatus::Cancelled,
            _ => OrderStatus::Failed,
        }
    }

    /// As the order's status is written (`COMPLETED`).
    pub fn as_str(self) -> &'static str {
        match self {
            OrderStatus::Completed => "COMPLETED",
            OrderStatus::Cancelled => "CANCELLED",
            OrderStatus::Failed => "FAILED",
        }
    }

    /// As an outcome of the figures (`completed`).
    pub fn outcome(self) -> &'static str {
        match self {
            OrderStatus::Completed => "completed",
            OrderStatus::Cancelled => "cancelled",
            OrderStatus::Failed => "failed",
        }
    }
}

/// How a step's request ended: its success reply, its failure reply, or no reply by shortly
/// after the order finished (a timeout, a dead letter).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepOutcome {
    Success,
    Failure,
    NoReply,
}

impl StepOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            StepOutcome::Success => "success",
            StepOutcome::Failure => "failure",
            StepOutcome::NoReply => "no_reply",
        }
    }
}

/// What one event tells the windows (the consumer tells them apart by topic and type).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Observation<'a> {
    /// The saga's trigger: the order started.
    Started,
    /// A step's request, sent to `variant`; `split` when the step's requests are split between
    /// the stable service and a canary (the variant then is the one the order met).
    StepRequested { step: &'a str, variant: Variant, split: bool },
    /// A step's success or failure reply.
    StepReplied { step: &'a str, outcome: StepOutcome },
    /// A final event of the saga.
    Finished { status: OrderStatus },
}

/// Something counted, for the exporter's counters and histograms.
#[derive(Debug, Clone, PartialEq)]
pub enum Counted {
    OrderStarted,
    OrderFinished(OrderStatus),
    /// An order's end-to-end latency, once both its start and its end were seen.
    OrderLatency {
        ms: i64,
    },
    /// A step request's end: reply, early reply, or no reply.
    Step(StepResult),
}

/// One step request's end, as a figure of the windows.
#[derive(Debug, Clone, PartialEq)]
pub struct StepResult {
    /// When it ended (the reply's time; for `no_reply` the order's end).
    pub at: i64,
    pub step: String,
    pub variant: Variant,
    pub outcome: StepOutcome,
    /// From the first request to the reply; none without a reply.
    pub latency_ms: Option<i64>,
}

/// Finished orders by outcome.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Finished {
    pub completed: u64,
    pub cancelled: u64,
    pub failed: u64,
}

impl Finished {
    pub fn get(&self, status: OrderStatus) -> u64 {
        match status {
            OrderStatus::Completed => self.completed,
            OrderStatus::Cancelled => self.cancelled,
            OrderStatus::Failed => self.failed,
        }
    }

    fn add(&mut self, status: OrderStatus, count: u64) {
        let slot = match status {
            OrderStatus::Completed => &mut self.completed,
            OrderStatus::Cancelled => &mut self.cancelled,
            OrderStatus::Failed => &mut self.failed,
        };
        *slot += count;
    }

    pub fn total(&self) -> u64 {
        let Finished { completed, cancelled, failed } = self;
        completed + cancelled + failed
    }
}

/// p50, p95, p99 (nearest rank) and the count of latencies in milliseconds; no quantile without one.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Quantiles {
    pub p50: Option<i64>,
    pub p95: Option<i64>,
    pub p99: Option<i64>,
    pub count: usize,
}

impl Quantiles {
    fn of(mut latencies: Vec<i64>) -> Self {
        latencies.sort_unstable();
        let n = latencies.len();
        let rank = |q: f64| (n > 0).then(|| latencies[((n as f64 * q).ceil() as usize).clamp(1, n) - 1]);
        Quantiles { p50: rank(0.5), p95: rank(0.95), p99: rank(0.99), count: n }
    }

    /// The quantiles by label, for the gauges.
    pub fn labelled(&self) -> [(&'static str, Option<i64>); 3] {
        [("p50", self.p50), ("p95", self.p95), ("p99", self.p99)]
    }
}

/// Orders finished in a window by the variant they met at the canary step.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ByVariant {
    pub stable: Finished,
    pub canary: Finished,
}

impl ByVariant {
    pub fn get(&self, variant: Variant) -> &Finished {
        match variant {
            Variant::Stable => &self.stable,
            Variant::Canary => &self.canary,
        }
    }

    fn get_mut(&mut self, variant: Variant) -> &mut Finished {
        match variant {
            Variant::Stable => &mut self.stable,
            Variant::Canary => &mut self.canary,
        }
    }
}

/// A step's request results in a window by outcome.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct StepOutcomes {
    pub success: u64,
    pub failure: u64,
    pub no_reply: u64,
}

impl StepOutcomes {
    fn add(&mut self, outcome: StepOutcome) {
        let slot = match outcome {
            StepOutcome::Success => &mut self.success,
            StepOutcome::Failure => &mut self.failure,
            StepOutcome::NoReply => &mut self.no_reply,
        };
        *slot += 1;
    }
}

/// One step and variant over a window.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StepFigures {
    pub step: String,
    pub variant: Variant,
    pub outcomes: StepOutcomes,
    /// Failures and missing replies over all results.
    pub failure_ratio: f64,
    /// Request-to-reply latency of the replies.
    pub latency_ms: Quantiles,
}

/// The figures of one window.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WindowFigures {
    pub started: u64,
    pub finished: Finished,
    /// Cancelled and failed orders over all finished; none when none finished.
    pub compensation_rate: Option<f64>,
    /// End-to-end latency of the orders finished in the window.
    pub latency_ms: Quantiles,
    pub by_variant: ByVariant,
    /// By step, then variant (stable first).
    pub steps: Vec<StepFigures>,
}

/// The figures of every window: the answer of `GET /api/analytics/windows`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WindowsView {
    #[serde(rename = "1m")]
    pub one_minute: WindowFigures,
    #[serde(rename = "5m")]
    pub five_minutes: WindowFigures,
    #[serde(rename = "1h")]
    pub one_hour: WindowFigures,
}

impl WindowsView {
    pub fn by_window(&self) -> [(Window, &WindowFigures); 3] {
        let WindowsView { one_minute, five_minutes, one_hour } = self;
        [(Window::OneMinute, one_minute), (Window::FiveMinutes, five_minutes), (Window::OneHour, one_hour)]
    }
}

/// An objective's orders over a window: how many counted, how many of them bad.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ObjectiveCounts {
    pub bad: u64,
    pub total: u64,
}

impl ObjectiveCounts {
    /// The error ratio; none without orders.
    pub fn ratio(&self) -> Option<f64> {
        (self.total > 0).then(|| self.bad as f64 / self.total as f64)
    }
}

/// One minute of orders.
#[derive(Debug, Clone)]
struct Minute {
    minute: i64,
    started: u64,
    finished: Finished,
    /// Finished orders by end-to-end latency bucket (`SAGA_DURATION_BUCKETS`, then +Inf).
    latency: Vec<u64>,
}

/// Where a step request of an order stands.
#[derive(Debug, Clone, Copy)]
enum StepState {
    /// Sent (first at `sent_at`, to `variant`), no reply seen yet.
    Waiting { sent_at: i64, variant: Variant },
    /// Its result is counted: a retry or a second reply read later changes nothing.
    Answered { at: i64 },
}

impl StepState {
    fn since(self) -> i64 {
        match self {
            StepState::Waiting { sent_at, .. } => sent_at,
            StepState::Answered { at } => at,
        }
    }
}

/// Everything streams-analytics has seen, kept for the windows.
#[derive(Default)]
pub struct Windows {
    minutes: VecDeque<Minute>,
    /// Start times of orders not yet finished, by order id.
    started_at: HashMap<String, i64>,
    /// (finished at, latency) of the last hour, for quantiles.
    latencies: VecDeque<(i64, i64)>,
    /// Event ids seen lately: delivery is at-least-once, figures count each event once.
    seen: HashSet<String>,
    seen_order: VecDeque<String>,
    /// Step requests by order then step (by order, so an order's end finds its unanswered
    /// steps at once), until the order is settled.
    steps: HashMap<String, HashMap<String, StepState>>,
    /// Step results of the last hour.
    step_results: VecDeque<StepResult>,
    /// Final events read before their order's start: finished at, by order.
    early_finishes: HashMap<String, i64>,
    /// Orders finished but not yet settled (see `settle`): finished at, by order.
    finished_at: HashMap<String, i64>,
    /// Replies read before their request (topics are read side by side, not in one order).
    early_replies: HashMap<(String, String), (i64, StepOutcome)>,
    /// The variant each order met at its canary step (orders without one count as stable).
    order_variant: HashMap<String, Variant>,
    /// Orders finished in the last hour, for the per-variant outcomes.
    finished_by_variant: VecDeque<FinishedOrder>,
}

/// One finished order as the per-variant outcomes count it.
struct FinishedOrder {
    at: i64,
    /// Kept so a canary request read after the order's end can still correct `variant`.
    order: String,
    variant: Variant,
    status: OrderStatus,
}

impl Windows {
    /// Takes in one event of `order` at `at_ms` (its own time); an event id seen before counts
    /// nothing. Returns what was counted.
    pub fn record(&mut self, event_id: &str, order: &str, observation: Observation<'_>, at_ms: i64) -> Vec<Counted> {
        let mut counted = Vec::new();
        if !self.first_time(event_id) {
            return counted;
        }
        match observation {
            Observation::Started => {
                counted.push(Counted::OrderStarted);
                self.started(order, at_ms, &mut counted);
            }
            Observation::StepRequested { step, variant, split } => {
                self.step_requested(step, order, variant, split, at_ms, &mut counted);
            }
            Observation::StepReplied { step, outcome } => self.step_replied(step, order, outcome, at_ms, &mut counted),
            Observation::Finished { status } => {
                counted.push(Counted::OrderFinished(status));
                self.finished(order, status, at_ms, &mut counted);
            }
        }
        counted
    }

    /// Orders finished `SETTLE_MS` or longer before `now_ms`: their still unanswered step
    /// requests got no reply. Returns those results.
    pub fn settle(&mut self, now_ms: i64) -> Vec<Counted> {
        let mut due: Vec<(i64, String)> = self
            .finished_at
            .iter()
            .filter(|(_, at)| **at <= now_ms - SETTLE_MS)
            .map(|(order, at)| (*at, order.clone()))
            .collect();
        due.sort();
        let mut counted = Vec::new();
        for (at, order) in due {
            self.finished_at.remove(&order);
            let mut unanswered: Vec<(String, Variant)> = self
                .steps
                .remove(&order)
                .unwrap_or_default()
                .into_iter()
                .filter_map(|(step, state)| match state {
                    StepState::Waiting { variant, .. } => Some((step, variant)),
                    StepState::Answered { .. } => None,
                })
                .collect();
            unanswered.sort();
            for (step, variant) in unanswered {
                let result = StepResult { at, step, variant, outcome: StepOutcome::NoReply, latency_ms: None };
                self.step_result(result, &mut counted);
            }
        }
        counted
    }

    /// The figures of every window at `now_ms`.
    pub fn view(&self, now_ms: i64) -> WindowsView {
        WindowsView {
            one_minute: self.figures(Window::OneMinute, now_ms),
            five_minutes: self.figures(Window::FiveMinutes, now_ms),
            one_hour: self.figures(Window::OneHour, now_ms),
        }
    }

    /// The figures of one window at `now_ms`: order counts from the minute buckets it covers,
    /// latencies, variants and steps from the samples of its length.
    pub fn figures(&self, window: Window, now_ms: i64) -> WindowFigures {
        let from = now_ms - window.minutes() * 60_000;
        let mut started = 0;
        let mut finished = Finished::default();
        for m in self.last(window.minutes(), now_ms) {
            started += m.started;
            for status in OrderStatus::ALL {
                finished.add(status, m.finished.get(status));
            }
        }
        let compensated = finished.cancelled + finished.failed;
        let total = finished.total();
        let latencies = self.latencies.iter().filter(|(t, _)| *t > from).map(|(_, l)| *l).collect();
        let mut by_variant = ByVariant::default();
        for finished in self.finished_by_variant.iter().filter(|f| f.at > from) {
            by_variant.get_mut(finished.variant).add(finished.status, 1);
        }
        WindowFigures {
            started,
            finished,
            compensation_rate: (total > 0).then(|| compensated as f64 / total as f64),
            latency_ms: Quantiles::of(latencies),
            by_variant,
            steps: self.step_figures(from),
        }
    }

    /// An objective's bad and total orders over the last `minutes` minute buckets.
    pub fn objective_counts(&self, objective: &Objective, minutes: i64, now_ms: i64) -> ObjectiveCounts {
        let mut counts = ObjectiveCounts::default();
        for m in self.last(minutes, now_ms) {
            match &objective.kind {
                ObjectiveKind::SuccessRatio { bad_statuses } => {
                    counts.total += m.finished.total();
                    for status in OrderStatus::ALL {
                        if bad_statuses.iter().any(|bad| OrderStatus::parse(Some(bad)) == status) {
                            counts.bad += m.finished.get(status);
                        }
                    }
                }
                ObjectiveKind::Latency { threshold_seconds } => {
                    for (i, count) in m.latency.iter().enumerate() {
                        counts.total += count;
                        let upper = SAGA_DURATION_BUCKETS.get(i).copied().unwrap_or(f64::INFINITY);
                        if upper > *threshold_seconds + 1e-9 {
                            counts.bad += count;
                        }
                    }
                }
            }
        }
        counts
    }

    /// Whether this event id is new (and remembers it).
    fn first_time(&mut self, id: &str) -> bool {
        if !self.seen.insert(id.to_string()) {
            return false;
        }
        self.seen_order.push_back(id.to_string());
        if self.seen_order.len() > SEEN_KEPT {
            if let Some(old) = self.seen_order.pop_front() {
                self.seen.remove(&old);
            }
        }
        true
    }

    /// The bucket of the minute of `at_ms`. Late events land in the newest minute: figures
    /// are about when they were seen.
    fn minute(&mut self, at_ms: i64) -> &mut Minute {
        let minute = at_ms.div_euclid(60_000);
        if self.minutes.back().is_none_or(|m| m.minute < minute) {
            let latency = vec![0; SAGA_DURATION_BUCKETS.len() + 1];
            self.minutes.push_back(Minute { minute, started: 0, finished: Finished::default(), latency });
            while self.minutes.len() > MINUTES_KEPT {
                self.minutes.pop_front();
            }
        }
        self.minutes.back_mut().expect("a minute bucket was just ensured")
    }

    /// The minute buckets of the last `minutes` minutes, the current one included.
    fn last(&self, minutes: i64, now_ms: i64) -> impl Iterator<Item = &Minute> {
        let from = now_ms.div_euclid(60_000) - minutes + 1;
        self.minutes.iter().filter(move |m| m.minute >= from)
    }

    fn started(&mut self, order: &str, at_ms: i64, counted: &mut Vec<Counted>) {
        self.minute(at_ms).started += 1;
        // Topics are read side by side: the order's end may have been read first.
        if let Some(finished_at) = self.early_finishes.remove(order) {
            self.record_latency(finished_at, (finished_at - at_ms).max(0), counted);
            return;
        }
        self.started_at.insert(order.to_string(), at_ms);
        if self.started_at.len() > OPEN_KEPT {
            self.started_at.retain(|_, started| *started >= at_ms - HOUR_MS);
        }
    }

    fn finished(&mut self, order: &str, status: OrderStatus, at_ms: i64, counted: &mut Vec<Counted>) {
        let variant = self.order_variant.remove(order).unwrap_or(Variant::Stable);
        self.finished_by_variant.push_back(FinishedOrder { at: at_ms, order: order.to_string(), variant, status });
        while self.finished_by_variant.len() > SAMPLES_KEPT
            || self.finished_by_variant.front().is_some_and(|f| f.at < at_ms - HOUR_MS)
        {
            self.finished_by_variant.pop_front();
        }
        // Requests still unanswered are settled as `no_reply` a little later (`settle`): their
        // replies, on other topics, may still be on their way to this reader.
        self.finished_at.insert(order.to_string(), at_ms);
        self.minute(at_ms).finished.add(status, 1);
        match self.started_at.remove(order) {
            Some(started) => self.record_latency(at_ms, (at_ms - started).max(0), counted),
            None => {
                self.early_finishes.insert(order.to_string(), at_ms);
                if self.early_finishes.len() > OPEN_KEPT {
                    self.early_finishes.retain(|_, finished| *finished >= at_ms - HOUR_MS);
                }
            }
        }
    }

    /// An order's end-to-end latency, counted in the minute it finished.
    fn record_latency(&mut self, finished_at: i64, latency_ms: i64, counted: &mut Vec<Counted>) {
        counted.push(Counted::OrderLatency { ms: latency_ms });
        let seconds = latency_ms as f64 / 1000.0;
        let bucket = SAGA_DURATION_BUCKETS.iter().position(|b| seconds <= *b).unwrap_or(SAGA_DURATION_BUCKETS.len());
        self.minute(finished_at).latency[bucket] += 1;
        self.latencies.push_back((finished_at, latency_ms));
        while self.latencies.len() > SAMPLES_KEPT
            || self.latencies.front().is_some_and(|(t, _)| *t < finished_at - HOUR_MS)
        {
            self.latencies.pop_front();
        }
    }

    /// A step request: the first one of an order counts (retries go to the same variant).
    fn step_requested(
        &mut self,
        step: &str,
        order: &str,
        variant: Variant,
        split: bool,
        at_ms: i64,
        counted: &mut Vec<Counted>,
    ) {
        let known = self.steps.get(order).is_some_and(|steps| steps.contains_key(step));
        if !known {
            let state = match self.early_replies.remove(&(step.to_string(), order.to_string())) {
                Some((replied, outcome)) => {
                    let latency_ms = Some((replied - at_ms).max(0));
                    let result = StepResult { at: replied, step: step.to_string(), variant, outcome, latency_ms };
                    self.step_result(result, counted);
                    StepState::Answered { at: replied }
                }
                None => StepState::Waiting { sent_at: at_ms, variant },
            };
            self.steps.entry(order.to_string()).or_default().insert(step.to_string(), state);
        }
        if split {
            if self.finished_at.contains_key(order) {
                // Topics are read side by side: the order's end was read before this request.
                if let Some(finished) = self.finished_by_variant.iter_mut().rev().find(|f| f.order == order) {
                    finished.variant = variant;
                }
            } else {
                self.order_variant.insert(order.to_string(), variant);
            }
        }
        if self.steps.len() > OPEN_KEPT {
            self.steps.retain(|_, steps| steps.values().any(|s| s.since() >= at_ms - HOUR_MS));
        }
        if self.order_variant.len() > OPEN_KEPT {
            let open: HashSet<&String> = self.started_at.keys().collect();
            self.order_variant.retain(|order, _| open.contains(order));
        }
    }

    /// A step reply: ends the wait of its request, if that request was seen; else it waits
    /// for the request.
    fn step_replied(&mut self, step: &str, order: &str, outcome: StepOutcome, at_ms: i64, counted: &mut Vec<Counted>) {
        let Some(state) = self.steps.get_mut(order).and_then(|steps| steps.get_mut(step)) else {
            self.early_replies.entry((step.to_string(), order.to_string())).or_insert((at_ms, outcome));
            if self.early_replies.len() > OPEN_KEPT {
                self.early_replies.retain(|_, (replied, _)| *replied >= at_ms - HOUR_MS);
            }
            return;
        };
        match *state {
            StepState::Waiting { sent_at, variant } => {
                *state = StepState::Answered { at: at_ms };
                let latency_ms = Some((at_ms - sent_at).max(0));
                let result = StepResult { at: at_ms, step: step.to_string(), variant, outcome, latency_ms };
                self.step_result(result, counted);
            }
            // The reply to a retry, or to the request a retry repeated: the step is counted.
            StepState::Answered { .. } => {}
        }
    }

    /// Keeps a step's end for the windows and counts it (every path: reply, early reply, no reply).
    fn step_result(&mut self, result: StepResult, counted: &mut Vec<Counted>) {
        let at = result.at;
        counted.push(Counted::Step(result.clone()));
        self.step_results.push_back(result);
        while self.step_results.len() > SAMPLES_KEPT || self.step_results.front().is_some_and(|r| r.at < at - HOUR_MS) {
            self.step_results.pop_front();
        }
    }

    /// Per step and variant, of the results after `from`.
    fn step_figures(&self, from: i64) -> Vec<StepFigures> {
        let mut groups: BTreeMap<(&str, Variant), Vec<&StepResult>> = BTreeMap::new();
        for result in self.step_results.iter().filter(|r| r.at > from) {
            groups.entry((result.step.as_str(), result.variant)).or_default().push(result);
        }
        groups
            .into_iter()
            .map(|((step, variant), results)| {
                let mut outcomes = StepOutcomes::default();
                for result in &results {
                    outcomes.add(result.outcome);
                }
                let bad = outcomes.failure + outcomes.no_reply;
                StepFigures {
                    step: step.to_string(),
                    variant,
                    outcomes,
                    failure_ratio: bad as f64 / results.len() as f64,
                    latency_ms: Quantiles::of(results.iter().filter_map(|r| r.latency_ms).collect()),
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests;
