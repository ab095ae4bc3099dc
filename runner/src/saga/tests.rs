//! The saga state machine, case by case: a script of inputs at given times, each followed by
//! the state and commands it must produce.

use std::time::Duration;

use super::machine::*;

/// A step whose messages are named after it, with a compensation or irreversible.
pub(super) fn step(name: &str, compensation: bool) -> StepDefinition {
    StepDefinition {
        name: name.to_string(),
        request: format!("{name}.requested"),
        success: format!("{name}.ok"),
        failure: Some(format!("{name}.refused")),
        timeout: Duration::from_secs(10),
        retry: RetryPolicy { attempts: 3, backoff: Duration::from_secs(1), max_backoff: Duration::from_millis(1500) },
        side_effect: true,
        irreversible: !compensation,
        compensation: compensation.then(|| CompensationDefinition {
            request: format!("{name}.undo"),
            success: format!("{name}.undone"),
            failure: Some(format!("{name}.undo-refused")),
            timeout: Duration::from_secs(5),
            retry: RetryPolicy { attempts: 2, backoff: Duration::ZERO, max_backoff: Duration::ZERO },
        }),
    }
}

fn definition() -> SagaDefinition {
    SagaDefinition {
        name: "order".into(),
        trigger: "order.created".into(),
        on_completed: "order.completed".into(),
        on_cancelled: "order.cancelled".into(),
        on_failed: "order.failed".into(),
        steps: vec![step("payment", true), step("inventory", true), step("shipping", true)],
    }
}

fn describe(def: &SagaDefinition, state: &SagaState) -> String {
    let wait = |w: &Waiting| match w {
        Waiting::Reply { deadline_ms } => format!("reply-by {deadline_ms}"),
        Waiting::Backoff { until_ms } => format!("backoff-until {until_ms}"),
    };
    match state {
        SagaState::Running { step, attempt, waiting } => {
            format!("running {}#{attempt} {}", def.steps[*step].name, wait(waiting))
        }
        SagaState::Compensating { pending, attempt, waiting, .. } => {
            let names: Vec<&str> = pending.iter().map(|i| def.steps[*i].name.as_str()).collect();
            format!("compensating {}#{attempt} {}", names.join(">"), wait(waiting))
        }
        SagaState::Completed => "completed".into(),
        SagaState::Cancelled { reason } => format!("cancelled ({reason})"),
        SagaState::Failed { reason } => format!("failed ({reason})"),
    }
}

/// Each script line is `<ms> <input> => <expected>`; input is `start`, `tick` or
/// `reply <type> [reason]`; expected is the state, then `;` and the commands, or `ignored`.
fn check(def: &SagaDefinition, script: &str) {
    let mut state: Option<SagaState> = None;
    for (n, line) in script.lines().map(str::trim).filter(|l| !l.is_empty()).enumerate() {
        let (input, expected) = line.split_once("=>").unwrap_or_else(|| panic!("line {n}: missing =>"));
        let mut words = input.split_whitespace();
        let now: i64 = words.next().unwrap().parse().unwrap();
        let kind = words.next().unwrap();
        let reply_type = words.next().unwrap_or_default().to_string();
        let reason: Vec<&str> = words.collect();
        let reason = reason.join(" ");
        let input = match kind {
            "start" => Input::Start,
            "tick" => Input::Tick,
            "reply" => {
                Input::Reply { event_type: &reply_type, detail: (!reason.is_empty()).then_some(reason.as_str()) }
            }
            other => panic!("line {n}: unknown input {other}"),
        };
        let t = advance(def, state.as_ref(), input, now);
        let actual = match &t.state {
            None => "ignored".to_string(),
            Some(next) => {
                let commands: Vec<String> = t
                    .commands
                    .iter()
                    .map(|c| match c {
                        Command::Send { event_type, .. } => format!("send {event_type}"),
                        Command::Finish { status, event_type, .. } => {
                            format!("finish {} {event_type}", status.as_str())
                        }
                    })
                    .collect();
                format!("{}; {}", describe(def, next), commands.join(", ")).trim_end_matches("; ").to_string()
            }
        };
        assert_eq!(actual, expected.trim(), "line {n}: `{}`", line);
        if t.state.is_some() {
            state = t.state;
        }
    }
}

#[test]
fn every_step_succeeds() {
    check(
        &definition(),
        "
        0 start => running payment#1 reply-by 10000; send payment.requested
        5 reply payment.ok => running inventory#1 reply-by 10005; send inventory.requested
        6 reply inventory.ok => running shipping#1 reply-by 10006; send shipping.requested
        7 reply shipping.ok => completed; finish COMPLETED order.completed
        8 reply shipping.ok => ignored
        9 tick => ignored
    ",
    );
}

#[test]
fn first_step_refused_cancels_without_compensation() {
    check(&definition(), "
        0 start => running payment#1 reply-by 10000; send payment.requested
        5 reply payment.refused amount too high => cancelled (payment failed: amount too high); finish CANCELLED order.cancelled
    ");
}

#[test]
fn later_step_refused_compensates_completed_steps_in_reverse() {
    check(&definition(), "
        0 start => running payment#1 reply-by 10000; send payment.requested
        1 reply payment.ok => running inventory#1 reply-by 10001; send inventory.requested
        2 reply inventory.ok => running shipping#1 reply-by 10002; send shipping.requested
        3 reply shipping.refused no shipping to ZZ => compensating inventory>payment#1 reply-by 5003; send inventory.undo
        4 reply payment.undone => ignored
        5 reply inventory.undone => compensating payment#1 reply-by 5005; send payment.undo
        6 reply payment.undone => cancelled (shipping failed: no shipping to ZZ); finish CANCELLED order.cancelled
    ");
}

#[test]
fn duplicates_and_late_replies_are_ignored() {
    check(
        &definition(),
        "
        0 start => running payment#1 reply-by 10000; send payment.requested
        0 start => ignored
        1 reply inventory.ok => ignored
        2 reply payment.ok => running inventory#1 reply-by 10002; send inventory.requested
        3 reply payment.ok => ignored
        4 reply payment.refused late => ignored
    ",
    );
}

#[test]
fn timeout_retries_with_exponential_capped_backoff() {
    check(
        &definition(),
        "
        0 start => running payment#1 reply-by 10000; send payment.requested
        9999 tick => ignored
        10000 tick => running payment#1 backoff-until 11000
        10500 tick => ignored
        11000 tick => running payment#2 reply-by 21000; send payment.requested
        21000 tick => running payment#2 backoff-until 22500
        22500 tick => running payment#3 reply-by 32500; send payment.requested
        30000 reply payment.ok => running inventory#1 reply-by 40000; send inventory.requested
    ",
    );
}

#[test]
fn step_timing_out_for_good_is_compensated_itself_then_earlier_steps() {
    // The last attempt may have taken effect without answering: undo it too.
    check(
        &definition(),
        "
        0 start => running payment#1 reply-by 10000; send payment.requested
        1 reply payment.ok => running inventory#1 reply-by 10001; send inventory.requested
        10001 tick => running inventory#1 backoff-until 11001
        11001 tick => running inventory#2 reply-by 21001; send inventory.requested
        21001 tick => running inventory#2 backoff-until 22501
        22501 tick => running inventory#3 reply-by 32501; send inventory.requested
        32501 tick => compensating inventory>payment#1 reply-by 37501; send inventory.undo
        32600 reply inventory.undone => compensating payment#1 reply-by 37600; send payment.undo
        32700 reply payment.undone => cancelled (inventory timed out after 3 attempts); finish CANCELLED order.cancelled
    ",
    );
}

#[test]
fn compensation_timing_out_is_retried_then_fails_the_saga() {
    check(&definition(), "
        0 start => running payment#1 reply-by 10000; send payment.requested
        1 reply payment.ok => running inventory#1 reply-by 10001; send inventory.requested
        2 reply inventory.refused unknown SKU => compensating payment#1 reply-by 5002; send payment.undo
        5002 tick => compensating payment#2 reply-by 10002; send payment.undo
        10002 tick => failed (inventory failed: unknown SKU; compensating payment timed out after 2 attempts); finish FAILED order.failed
        10003 reply payment.undone => ignored
    ");
}

#[test]
fn refused_compensation_fails_the_saga() {
    check(&definition(), "
        0 start => running payment#1 reply-by 10000; send payment.requested
        1 reply payment.ok => running inventory#1 reply-by 10001; send inventory.requested
        2 reply inventory.refused out of stock => compensating payment#1 reply-by 5002; send payment.undo
        3 reply payment.undo-refused card expired => failed (inventory failed: out of stock; compensating payment failed: card expired); finish FAILED order.failed
    ");
}

#[test]
fn irreversible_steps_are_not_compensated() {
    let mut def = definition();
    def.steps[0] = step("payment", false);
    check(
        &def,
        "
        0 start => running payment#1 reply-by 10000; send payment.requested
        1 reply payment.ok => running inventory#1 reply-by 10001; send inventory.requested
        2 reply inventory.refused gone => cancelled (inventory failed: gone); finish CANCELLED order.cancelled
    ",
    );
}

#[test]
fn state_round_trips_through_json() {
    let state = SagaState::Compensating {
        pending: vec![1, 0],
        attempt: 2,
        waiting: Waiting::Backoff { until_ms: 42 },
        reason: "x".into(),
    };
    let text = serde_json::to_string(&state).unwrap();
    assert_eq!(serde_json::from_str::<SagaState>(&text).unwrap(), state);
}

#[test]
fn an_instance_whose_step_vanished_from_the_definition_fails_visibly() {
    let def = definition();
    let state = SagaState::Running { step: 7, attempt: 1, waiting: Waiting::Reply { deadline_ms: 10 } };
    let t = advance(&def, Some(&state), Input::Tick, 20);
    assert_eq!(
        t.state,
        Some(SagaState::Failed { reason: "saga definition changed while in flight: step #7 no longer exists".into() })
    );
    assert!(matches!(&t.commands[..], [Command::Finish { status: Status::Failed, .. }]));
}

#[test]
fn a_dead_lettered_request_fails_its_step_and_is_undone_like_a_timeout() {
    let def = definition();
    let s0 = advance(&def, None, Input::Start, 0).state.unwrap();
    let s1 = advance(&def, Some(&s0), Input::Reply { event_type: "payment.ok", detail: None }, 1).state.unwrap();
    let t = advance(&def, Some(&s1), Input::DeadLettered { request: "payment.requested", detail: Some("late") }, 2);
    assert!(t.state.is_none(), "a dead letter of another step's request is ignored");
    let t = advance(
        &def,
        Some(&s1),
        Input::DeadLettered { request: "inventory.requested", detail: Some("gateway down") },
        2,
    );
    let Some(SagaState::Compensating { pending, .. }) = &t.state else { panic!("{t:?}") };
    assert_eq!(pending, &[1, 0], "the dead-lettered step itself is undone, then payment");
    assert_eq!(
        t.commands,
        [Command::Send { event_type: "inventory.undo".into(), step: "inventory".into(), attempt: 1 }]
    );
    // A dead-lettered compensation cannot finish: the saga fails.
    let state = t.state.unwrap();
    let t = advance(&def, Some(&state), Input::DeadLettered { request: "inventory.undo", detail: Some("poison") }, 3);
    let Some(SagaState::Failed { reason }) = &t.state else { panic!("{t:?}") };
    assert_eq!(reason, "inventory request dead-lettered: gateway down; compensating inventory dead-lettered: poison");
}
