//! What a new saga definition means for the instances in flight. Each instance keeps the
//! definition it started on and finishes on it; the one exception is a step the new
//! definition no longer has: its service may be going away, so an instance waiting on it is
//! stranded unless `[[saga.step_mapping]]` says where it continues (it then moves to the new
//! definition at that step). Pure: the orchestrator applies it at a reload and `runner plan`
//! predicts with it.

use std::collections::BTreeMap;

use super::machine::{SagaDefinition, SagaState, Waiting};

/// The fate of an instance waiting at one step (or undoing it) when `new` takes over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fate {
    /// The new definition still has the step: the instance finishes on its own definition.
    Stays,
    /// The step is gone and mapped: the instance continues on the new definition at `to`.
    Moves { to: String },
    /// The step is gone and not mapped: the change is refused while such instances wait.
    Stranded,
}

/// The fate of instances at step `step` (of their own definition).
pub fn fate(step: &str, new: &SagaDefinition, mapping: &BTreeMap<String, String>) -> Fate {
    if new.step_index(step).is_some() {
        return Fate::Stays;
    }
    match mapping.get(step) {
        Some(to) if new.step_index(to).is_some() => Fate::Moves { to: to.clone() },
        _ => Fate::Stranded,
    }
}

/// The step names an instance in `state` waits on (running one, or undoing several).
pub fn waiting_on<'d>(old: &'d SagaDefinition, state: &SagaState) -> Vec<&'d str> {
    let name = |i: &usize| old.steps.get(*i).map(|s| s.name.as_str());
    match state {
        SagaState::Running { step, .. } => name(step).into_iter().collect(),
        SagaState::Compensating { pending, .. } => pending.iter().filter_map(name).collect(),
        SagaState::Completed | SagaState::Cancelled { .. } | SagaState::Failed { .. } => Vec::new(),
    }
}

/// An instance's state on the new definition, when it must move (`Ok(None)`: it stays on
/// its own; `Err(step)`: it waits on `step`, gone and unmapped). A moved instance waits out
/// a backoff that is due now, after which the timer sends its new step's request (or
/// compensation) as attempt 1.
pub fn moved(
    old: &SagaDefinition,
    new: &SagaDefinition,
    mapping: &BTreeMap<String, String>,
    state: &SagaState,
    now_ms: i64,
) -> Result<Option<SagaState>, String> {
    let steps = waiting_on(old, state);
    let mut any_moves = false;
    for step in &steps {
        match fate(step, new, mapping) {
            Fate::Stays => {}
            Fate::Moves { .. } => any_moves = true,
            Fate::Stranded => return Err(step.to_string()),
        }
    }
    if !any_moves {
        return Ok(None);
    }
    // Every step it waits on now has a place in the new definition.
    let index = |name: &str| {
        let name = mapping.get(name).map_or(name, String::as_str);
        new.step_index(name).ok_or_else(|| name.to_string())
    };
    let due = Waiting::Backoff { until_ms: now_ms };
    Ok(Some(match state {
        SagaState::Running { step, .. } => {
            let name = old.steps.get(*step).map_or("", |s| s.name.as_str());
            SagaState::Running { step: index(name)?, attempt: 0, waiting: due }
        }
        SagaState::Compensating { pending, reason, .. } => {
            let mut moved = Vec::new();
            for i in pending {
                let at = index(old.steps.get(*i).map_or("", |s| s.name.as_str()))?;
                // A mapped step without a compensation has nothing to undo.
                if new.steps[at].compensation.is_some() && !moved.contains(&at) {
                    moved.push(at);
                }
            }
            if moved.is_empty() {
                SagaState::Cancelled { reason: reason.clone() }
            } else {
                SagaState::Compensating { pending: moved, attempt: 0, waiting: due, reason: reason.clone() }
            }
        }
        other => other.clone(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A definition of the named steps, each with a compensation or none.
    fn definition(steps: &[&str], compensations: bool) -> SagaDefinition {
        SagaDefinition {
            name: "order".into(),
            trigger: "order.created".into(),
            on_completed: "order.completed".into(),
            on_cancelled: "order.cancelled".into(),
            on_failed: "order.failed".into(),
            steps: steps.iter().map(|name| crate::saga::tests::step(name, compensations)).collect(),
        }
    }

    fn running(step: usize) -> SagaState {
        SagaState::Running { step, attempt: 2, waiting: Waiting::Reply { deadline_ms: 5_000 } }
    }

    #[test]
    fn instances_stay_unless_their_step_is_gone_and_then_move_only_where_mapped() {
        let old = definition(&["payment", "inventory", "shipping"], true);
        let reordered = definition(&["inventory", "payment", "shipping"], true);
        let without_shipping = definition(&["payment", "inventory"], true);
        let renamed = definition(&["payment", "stock", "shipping"], true);
        let none = BTreeMap::new();
        let mapping: BTreeMap<String, String> = [("inventory".to_string(), "stock".to_string())].into();

        // A reorder or a removed step nobody waits on: everyone stays on the old definition.
        assert_eq!(moved(&old, &reordered, &none, &running(0), 9_000), Ok(None));
        assert_eq!(moved(&old, &without_shipping, &none, &running(1), 9_000), Ok(None));
        // Waiting on a removed step: stranded without a mapping, moved with one.
        assert_eq!(moved(&old, &without_shipping, &none, &running(2), 9_000), Err("shipping".into()));
        assert_eq!(moved(&old, &renamed, &none, &running(1), 9_000), Err("inventory".into()));
        assert_eq!(
            moved(&old, &renamed, &mapping, &running(1), 9_000),
            Ok(Some(SagaState::Running { step: 1, attempt: 0, waiting: Waiting::Backoff { until_ms: 9_000 } }))
        );
        assert_eq!(fate("inventory", &renamed, &mapping), Fate::Moves { to: "stock".into() });
        assert_eq!(fate("payment", &renamed, &mapping), Fate::Stays);
        assert_eq!(fate("shipping", &without_shipping, &mapping), Fate::Stranded);
        // A mapping to a step the new definition lacks strands too.
        let wrong: BTreeMap<String, String> = [("inventory".to_string(), "nowhere".to_string())].into();
        assert_eq!(fate("inventory", &renamed, &wrong), Fate::Stranded);
        // Finished instances wait on nothing.
        assert_eq!(moved(&old, &definition(&[], true), &none, &SagaState::Completed, 1), Ok(None));
    }

    #[test]
    fn an_undoing_instance_moves_its_pending_steps_and_ends_when_none_has_a_compensation() {
        let old = definition(&["payment", "inventory", "shipping"], true);
        let renamed = definition(&["payment", "stock", "shipping"], false);
        let mapping: BTreeMap<String, String> = [("inventory".to_string(), "stock".to_string())].into();
        let undoing = SagaState::Compensating {
            pending: vec![1, 0],
            attempt: 3,
            waiting: Waiting::Reply { deadline_ms: 1 },
            reason: "shipping failed".into(),
        };
        assert_eq!(waiting_on(&old, &undoing), vec!["inventory", "payment"]);
        // The test definitions have no compensations: nothing is left to undo.
        assert_eq!(
            moved(&old, &renamed, &mapping, &undoing, 7),
            Ok(Some(SagaState::Cancelled { reason: "shipping failed".into() }))
        );
        let with_undo = definition(&["payment", "stock", "shipping"], true);
        assert_eq!(
            moved(&old, &with_undo, &mapping, &undoing, 7),
            Ok(Some(SagaState::Compensating {
                pending: vec![1, 0],
                attempt: 0,
                waiting: Waiting::Backoff { until_ms: 7 },
                reason: "shipping failed".into()
            }))
        );
    }
}
