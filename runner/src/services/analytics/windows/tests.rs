//! The windows, case by case: a script of events at given times, read in the order written
//! (as the topics happened to deliver them), and the figures the windows must show.

use std::time::Duration;

use super::*;

/// Steps whose requests are split between the stable service and a canary.
const SPLIT_STEPS: &[&str] = &["payment"];

fn objective(name: &str) -> Objective {
    let kind = match name {
        "success" => ObjectiveKind::SuccessRatio { bad_statuses: vec!["FAILED".into(), "CANCELLED".into()] },
        "fast" => ObjectiveKind::Latency { threshold_seconds: 5.0 },
        other => panic!("no objective {other} in these tests"),
    };
    Objective {
        name: name.into(),
        kind,
        objective: 0.99,
        window: Duration::from_secs(30 * 86_400),
        min_events_per_hour: 1,
        saga: "order".into(),
        description: None,
    }
}

fn window(label: &str) -> Window {
    [Window::OneMinute, Window::FiveMinutes, Window::OneHour]
        .into_iter()
        .find(|w| w.label() == label)
        .unwrap_or_else(|| panic!("no window {label}"))
}

/// `start`, `request <step> stable|canary`, `reply <step> success|failure`, `end <status>`.
fn observation<'a>(words: &[&'a str]) -> Observation<'a> {
    match words {
        ["start"] => Observation::Started,
        ["request", step, variant] => {
            Observation::StepRequested { step, variant: Variant::parse(variant), split: SPLIT_STEPS.contains(step) }
        }
        ["reply", step, "success"] => Observation::StepReplied { step, outcome: StepOutcome::Success },
        ["reply", step, "failure"] => Observation::StepReplied { step, outcome: StepOutcome::Failure },
        ["end", status] => Observation::Finished { status: OrderStatus::parse(Some(status)) },
        other => panic!("unknown event {other:?}"),
    }
}

fn ratio(value: Option<f64>) -> String {
    value.map_or("-".to_string(), |r| format!("{r:.2}"))
}

fn orders(f: &WindowFigures) -> String {
    let Finished { completed, cancelled, failed } = f.finished;
    format!(
        "started {}, completed {completed}, cancelled {cancelled}, failed {failed}, compensation {}",
        f.started,
        ratio(f.compensation_rate)
    )
}

fn latency(q: &Quantiles) -> String {
    match (q.p50, q.p95, q.p99) {
        (Some(p50), Some(p95), Some(p99)) => format!("p50 {p50}, p95 {p95}, p99 {p99}, count {}", q.count),
        _ => format!("none, count {}", q.count),
    }
}

fn variants(f: &WindowFigures) -> String {
    let described: Vec<String> = [Variant::Stable, Variant::Canary]
        .into_iter()
        .filter_map(|variant| {
            let finished = f.by_variant.get(variant);
            let counts: Vec<String> = OrderStatus::ALL
                .into_iter()
                .filter(|s| finished.get(*s) > 0)
                .map(|s| format!("{} {}", s.outcome(), finished.get(s)))
                .collect();
            (!counts.is_empty()).then(|| format!("{} {}", variant.as_str(), counts.join(" ")))
        })
        .collect();
    if described.is_empty() {
        "none".into()
    } else {
        described.join(", ")
    }
}

fn steps(f: &WindowFigures) -> String {
    let described: Vec<String> = f
        .steps
        .iter()
        .map(|s| {
            let StepOutcomes { success, failure, no_reply } = s.outcomes;
            let outcomes: Vec<String> = [("success", success), ("failure", failure), ("no_reply", no_reply)]
                .into_iter()
                .filter(|(_, n)| *n > 0)
                .map(|(outcome, n)| format!("{outcome} {n}"))
                .collect();
            let latency = match (s.latency_ms.p50, s.latency_ms.p95, s.latency_ms.p99) {
                (Some(p50), Some(p95), Some(p99)) => format!("{p50}/{p95}/{p99}"),
                _ => "-".to_string(),
            };
            format!(
                "{}/{}: {}, ratio {}, latency {latency}",
                s.step,
                s.variant.as_str(),
                outcomes.join(", "),
                ratio(Some(s.failure_ratio))
            )
        })
        .collect();
    if described.is_empty() {
        "none".into()
    } else {
        described.join("; ")
    }
}

/// Each script line is an event, `<ms> <event id> <order> <event>` (see [`observation`]), or
/// a look at the figures, `<ms> <window> <figure> => <expected>`, where figure is `orders`,
/// `latency`, `variants`, `steps` or `slo <objective>`. A look first settles the unanswered
/// steps at `<ms>`, as the API and the exporter do.
fn check(script: &str) {
    let mut windows = Windows::default();
    for (n, line) in script.lines().map(str::trim).filter(|l| !l.is_empty()).enumerate() {
        let (input, expected) = match line.split_once("=>") {
            Some((input, expected)) => (input, Some(expected.trim())),
            None => (line, None),
        };
        let words: Vec<&str> = input.split_whitespace().collect();
        let at: i64 = words[0].parse().unwrap_or_else(|_| panic!("line {n}: no time: `{line}`"));
        let Some(expected) = expected else {
            windows.record(words[1], words[2], observation(&words[3..]), at);
            continue;
        };
        windows.settle(at);
        let figures = windows.figures(window(words[1]), at);
        let actual = match &words[2..] {
            ["orders"] => orders(&figures),
            ["latency"] => latency(&figures.latency_ms),
            ["variants"] => variants(&figures),
            ["steps"] => steps(&figures),
            ["slo", name] => {
                let counts = windows.objective_counts(&objective(name), window(words[1]).minutes(), at);
                format!("bad {} of {}", counts.bad, counts.total)
            }
            other => panic!("line {n}: unknown figure {other:?}"),
        };
        assert_eq!(actual, expected, "line {n}: `{line}`");
    }
}

#[test]
fn an_order_through_every_step() {
    check(
        "
        0    e1 o1 start
        100  e2 o1 request payment stable
        300  e3 o1 reply payment success
        400  e4 o1 request inventory stable
        450  e5 o1 reply inventory success
        500  e6 o1 request shipping stable
        800  e7 o1 reply shipping success
        900  e8 o1 end COMPLETED
        1000 1m orders => started 1, completed 1, cancelled 0, failed 0, compensation 0.00
        1000 1m latency => p50 900, p95 900, p99 900, count 1
        1000 1m variants => stable completed 1
        1000 1m steps => inventory/stable: success 1, ratio 0.00, latency 50/50/50; payment/stable: success 1, ratio 0.00, latency 200/200/200; shipping/stable: success 1, ratio 0.00, latency 300/300/300
        1000 1h slo success => bad 0 of 1
        1000 1h slo fast => bad 0 of 1
    ",
    );
}

#[test]
fn nothing_seen_yet() {
    check(
        "
        0 1h orders => started 0, completed 0, cancelled 0, failed 0, compensation -
        0 1h latency => none, count 0
        0 1h variants => none
        0 1h steps => none
        0 1h slo success => bad 0 of 0
    ",
    );
}

#[test]
fn a_refused_step_cancels_and_counts_as_a_failure() {
    check(
        "
        0    e1 o1 start
        100  e2 o1 request payment stable
        200  e3 o1 reply payment success
        300  e4 o1 request inventory stable
        400  e5 o1 reply inventory failure
        600  e6 o1 end CANCELLED
        0    e7 o2 start
        700  e8 o2 end COMPLETED
        1000 1m orders => started 2, completed 1, cancelled 1, failed 0, compensation 0.50
        1000 1m steps => inventory/stable: failure 1, ratio 1.00, latency 100/100/100; payment/stable: success 1, ratio 0.00, latency 100/100/100
        1000 1m slo success => bad 1 of 2
    ",
    );
}

#[test]
fn a_final_status_other_than_completed_or_cancelled_is_a_failure() {
    check(
        "
        0    e1 o1 start
        100  e2 o1 end FAILED
        0    e3 o2 start
        100  e4 o2 end SOMETHING_ELSE
        1000 1m orders => started 2, completed 0, cancelled 0, failed 2, compensation 1.00
        1000 1m variants => stable failed 2
        1000 1m slo success => bad 2 of 2
    ",
    );
}

#[test]
fn orders_count_by_the_variant_met_at_the_canary_step() {
    // o1 met the canary at payment, o2 the stable payment service; o3 never reached payment.
    // The later steps have no canary: their requests stay stable whatever the order met.
    check(
        "
        0    e1 o1 start
        100  e2 o1 request payment canary
        300  e3 o1 reply payment success
        400  e4 o1 request inventory stable
        500  e5 o1 reply inventory success
        600  e6 o1 end COMPLETED
        0    e7 o2 start
        100  e8 o2 request payment stable
        150  e9 o2 reply payment failure
        200  e10 o2 end CANCELLED
        0    e11 o3 start
        50   e12 o3 end FAILED
        1000 1m variants => stable cancelled 1 failed 1, canary completed 1
        1000 1m steps => inventory/stable: success 1, ratio 0.00, latency 100/100/100; payment/stable: failure 1, ratio 1.00, latency 50/50/50; payment/canary: success 1, ratio 0.00, latency 200/200/200
    ",
    );
}

#[test]
fn an_end_read_before_its_canary_request_counts_for_the_canary() {
    // The orders topic may be read ahead of the canary's request topic: the order's end comes
    // first and counts as stable until the request says otherwise.
    check(
        "
        0    e1 o1 start
        600  e6 o1 end COMPLETED
        1000 1m variants => stable completed 1
        100  e2 o1 request payment canary
        300  e3 o1 reply payment success
        1000 1m variants => canary completed 1
        0    e7 o2 start
        100  e8 o2 request payment stable
        200  e10 o2 end CANCELLED
        1000 1m variants => stable cancelled 1, canary completed 1
    ",
    );
}

#[test]
fn a_reply_read_before_its_request_waits_for_it() {
    // Topics are read side by side: a reply may come first. Latency is from the request's
    // time to the reply's, never below zero when the clocks disagree.
    check(
        "
        0    e1 o1 start
        300  e3 o1 reply payment success
        1000 1m steps => none
        100  e2 o1 request payment canary
        1000 1m steps => payment/canary: success 1, ratio 0.00, latency 200/200/200
        400  e4 o1 reply inventory failure
        500  e5 o1 request inventory stable
        900  e6 o1 end CANCELLED
        1000 1m steps => inventory/stable: failure 1, ratio 1.00, latency 0/0/0; payment/canary: success 1, ratio 0.00, latency 200/200/200
        1000 1m variants => canary cancelled 1
        20000 1m steps => inventory/stable: failure 1, ratio 1.00, latency 0/0/0; payment/canary: success 1, ratio 0.00, latency 200/200/200
    ",
    );
}

#[test]
fn an_end_read_before_its_start_still_gives_a_latency() {
    check(
        "
        900  e2 o1 end COMPLETED
        1000 1m orders => started 0, completed 1, cancelled 0, failed 0, compensation 0.00
        1000 1m latency => none, count 0
        0    e1 o1 start
        1000 1m orders => started 1, completed 1, cancelled 0, failed 0, compensation 0.00
        1000 1m latency => p50 900, p95 900, p99 900, count 1
        1000 1h slo fast => bad 0 of 1
    ",
    );
}

#[test]
fn a_step_unanswered_10s_after_its_order_ended_got_no_reply() {
    // o1's payment request never gets a reply; o2's reply arrives after the order's end but
    // before it is settled, and counts. A no-reply result is dated at the order's end.
    check(
        "
        0     e1 o1 start
        100   e2 o1 request payment canary
        1000  e3 o1 end CANCELLED
        0     e4 o2 start
        100   e5 o2 request payment stable
        1000  e6 o2 end COMPLETED
        5000  e7 o2 reply payment success
        10999 1m steps => payment/stable: success 1, ratio 0.00, latency 4900/4900/4900
        11000 1m steps => payment/stable: success 1, ratio 0.00, latency 4900/4900/4900; payment/canary: no_reply 1, ratio 1.00, latency -
        60999 1m steps => payment/stable: success 1, ratio 0.00, latency 4900/4900/4900; payment/canary: no_reply 1, ratio 1.00, latency -
        61000 1m steps => payment/stable: success 1, ratio 0.00, latency 4900/4900/4900
        61000 5m steps => payment/stable: success 1, ratio 0.00, latency 4900/4900/4900; payment/canary: no_reply 1, ratio 1.00, latency -
    ",
    );
}

#[test]
fn a_reply_after_its_step_was_settled_is_not_counted_again() {
    check(
        "
        0     e1 o1 start
        100   e2 o1 request payment stable
        1000  e3 o1 end CANCELLED
        11000 1h steps => payment/stable: no_reply 1, ratio 1.00, latency -
        12000 e4 o1 reply payment success
        13000 1h steps => payment/stable: no_reply 1, ratio 1.00, latency -
        30000 1h steps => payment/stable: no_reply 1, ratio 1.00, latency -
    ",
    );
}

#[test]
fn a_retried_request_counts_once_from_the_first_request() {
    // o1: the first request timed out, the retry was answered. o2: the retry was read after
    // the reply (another topic); it is not a request waiting for an answer.
    check(
        "
        0     e1 o1 start
        100   e2 o1 request payment canary
        10100 e3 o1 request payment canary
        10300 e4 o1 reply payment success
        10400 e5 o1 reply payment success
        10500 e6 o1 end COMPLETED
        0     e7 o2 start
        100   e8 o2 request payment stable
        10200 e10 o2 reply payment success
        10100 e9 o2 request payment stable
        10500 e11 o2 end COMPLETED
        30000 1m steps => payment/stable: success 1, ratio 0.00, latency 10100/10100/10100; payment/canary: success 1, ratio 0.00, latency 10200/10200/10200
        30000 1m variants => stable completed 1, canary completed 1
    ",
    );
}

#[test]
fn an_event_id_seen_before_counts_nothing() {
    // At-least-once delivery, and a consumer started again re-reading what it had not
    // committed: the same ids again, nothing counted twice.
    check(
        "
        0     e1 o1 start
        0     e1 o1 start
        100   e2 o1 request payment canary
        300   e3 o1 reply payment failure
        300   e3 o1 reply payment failure
        900   e4 o1 end CANCELLED
        1000  1m orders => started 1, completed 0, cancelled 1, failed 0, compensation 1.00
        0     e1 o1 start
        100   e2 o1 request payment canary
        300   e3 o1 reply payment failure
        900   e4 o1 end CANCELLED
        20000 1m orders => started 1, completed 0, cancelled 1, failed 0, compensation 1.00
        20000 1m latency => p50 900, p95 900, p99 900, count 1
        20000 1m variants => canary cancelled 1
        20000 1m steps => payment/canary: failure 1, ratio 1.00, latency 200/200/200
    ",
    );
}

#[test]
fn minute_windows_cover_their_buckets_and_late_events_land_in_the_newest() {
    // 1m is the current minute, 5m the current and four before; the latency quantiles slide
    // over the window's length. An event stamped in a past minute counts in the newest one.
    check(
        "
        0       e1 o1 start
        1000    e2 o1 end COMPLETED
        60000   e3 o2 start
        62000   e4 o2 end CANCELLED
        30000   e5 o3 start
        61000   1m orders => started 2, completed 0, cancelled 1, failed 0, compensation 1.00
        61000   5m orders => started 3, completed 1, cancelled 1, failed 0, compensation 0.50
        61000   1m latency => p50 2000, p95 2000, p99 2000, count 1
        61000   5m latency => p50 1000, p95 2000, p99 2000, count 2
        299999  5m orders => started 3, completed 1, cancelled 1, failed 0, compensation 0.50
        300000  5m orders => started 2, completed 0, cancelled 1, failed 0, compensation 1.00
        300000  1h orders => started 3, completed 1, cancelled 1, failed 0, compensation 0.50
        3601000 1h latency => p50 2000, p95 2000, p99 2000, count 1
        3601000 1h variants => stable cancelled 1
        3662000 1h latency => none, count 0
    ",
    );
}

#[test]
fn latency_quantiles_are_nearest_rank() {
    check(
        "
        0    e1 o1 start
        400  e2 o1 end COMPLETED
        0    e3 o2 start
        100  e4 o2 end COMPLETED
        0    e5 o3 start
        300  e6 o3 end COMPLETED
        0    e7 o4 start
        200  e8 o4 end COMPLETED
        1000 1m latency => p50 200, p95 400, p99 400, count 4
    ",
    );
}

#[test]
fn a_latency_objective_counts_orders_slower_than_its_bucket() {
    // The threshold is a histogram bucket (5 s): exactly 5 s is good, anything above bad.
    check(
        "
        0      e1 o1 start
        5000   e2 o1 end COMPLETED
        0      e3 o2 start
        5001   e4 o2 end COMPLETED
        0      e5 o3 start
        40000  e6 o3 end CANCELLED
        50000  1m slo fast => bad 2 of 3
        50000  1m slo success => bad 1 of 3
        170000 1m slo fast => bad 0 of 0
        170000 5m slo fast => bad 2 of 3
    ",
    );
}
