//! Shrinking a failing run: fewer orders, then fewer kinds of fault, then fewer single
//! faults, keeping each cut only while the same invariant still breaks.

use std::collections::BTreeSet;

use super::{run, FaultKind, Outcome, Scenario, System};

/// Runs at most tried while shrinking one failure.
const MAX_TRIES: usize = 300;

/// The run of `scenario` when it still breaks `check`.
async fn still_fails(system: &System, check: &str, scenario: Scenario) -> Result<Option<Outcome>, String> {
    let outcome = run(system, &scenario).await?;
    Ok(outcome.violations.iter().any(|v| v.check == check).then_some(outcome))
}

/// The smallest failing scenario found from `failing` within the budget, and its outcome.
pub async fn shrink(system: &System, failing: Outcome) -> Result<Outcome, String> {
    let Some(check) = failing.violations.first().map(|v| v.check.clone()) else { return Ok(failing) };
    let mut best = failing;
    let mut tries = 0usize;

    // Fewer orders: halve while it fails, then one at a time.
    while best.scenario.orders > 1 && tries < MAX_TRIES {
        tries += 1;
        let scenario = Scenario { orders: best.scenario.orders / 2, keep: None, ..best.scenario.clone() };
        match still_fails(system, &check, scenario).await? {
            Some(outcome) => best = outcome,
            None => break,
        }
    }
    while best.scenario.orders > 1 && tries < MAX_TRIES {
        tries += 1;
        let scenario = Scenario { orders: best.scenario.orders - 1, keep: None, ..best.scenario.clone() };
        match still_fails(system, &check, scenario).await? {
            Some(outcome) => best = outcome,
            None => break,
        }
    }

    // Fewer orders from the front: the seed's later orders are the same without them.
    while best.scenario.orders > 1 && tries < MAX_TRIES {
        tries += 1;
        let scenario = Scenario {
            orders: best.scenario.orders - 1,
            skip_orders: best.scenario.skip_orders + 1,
            keep: None,
            ..best.scenario.clone()
        };
        match still_fails(system, &check, scenario).await? {
            Some(outcome) => best = outcome,
            None => break,
        }
    }

    // Fewer kinds of fault.
    for kind in FaultKind::ALL {
        if best.scenario.faults.rate(kind) == 0.0 || tries >= MAX_TRIES {
            continue;
        }
        tries += 1;
        let scenario = Scenario { faults: best.scenario.faults.with(kind, 0.0), ..best.scenario.clone() };
        if let Some(outcome) = still_fails(system, &check, scenario).await? {
            best = outcome;
        }
    }

    // Fewer single faults: drop, latest first, each one the failure does not need.
    let mut keep: BTreeSet<u64> = best.stats.faults.iter().copied().collect();
    best.scenario.keep = Some(keep.clone());
    for number in best.stats.faults.clone().into_iter().rev() {
        if tries >= MAX_TRIES {
            break;
        }
        tries += 1;
        keep.remove(&number);
        match still_fails(system, &check, Scenario { keep: Some(keep.clone()), ..best.scenario.clone() }).await? {
            Some(outcome) => best = outcome,
            None => {
                keep.insert(number);
            }
        }
    }
    // What is kept is what struck: the same run, said exactly.
    best.scenario.keep = Some(best.stats.faults.iter().copied().collect());
    Ok(best)
}
