//! Renders a saga as a Mermaid flowchart (`runner graph`).

use std::fmt::Write;

use crate::saga::machine::SagaDefinition;

pub fn mermaid(def: &SagaDefinition) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "flowchart LR");
    let _ = writeln!(out, "    start([\"{}\"]) --> s0", def.trigger);
    let n = def.steps.len();
    for (i, step) in def.steps.iter().enumerate() {
        let retry = format!("timeout {} x{}", humantime::format_duration(step.timeout), step.retry.attempts);
        let _ = writeln!(out, "    s{i}[\"{}<br/>{} → {}<br/>{retry}\"]", step.name, step.request, step.success);
        let next = if i + 1 < n { format!("s{}", i + 1) } else { "completed".to_string() };
        let _ = writeln!(out, "    s{i} -- \"{}\" --> {next}", step.success);
        if let Some(comp) = &step.compensation {
            let _ = writeln!(out, "    c{i}[/\"undo {}<br/>{} → {}\"/]", step.name, comp.request, comp.success);
            let below = (0..i)
                .rev()
                .find(|j| def.steps[*j].compensation.is_some())
                .map_or("cancelled".to_string(), |j| format!("c{j}"));
            let _ = writeln!(out, "    c{i} -- \"{}\" --> {below}", comp.success);
            if let Some(failure) = &comp.failure {
                let _ = writeln!(out, "    c{i} -. \"{failure}\" .-> failed");
            }
            let _ = writeln!(out, "    c{i} -. \"timeout x{}\" .-> failed", comp.retry.attempts);
        }
        // Where a failing step goes: undo the previous completed step, or end cancelled.
        let undo_previous = (0..i).rev().find(|j| def.steps[*j].compensation.is_some());
        let target = undo_previous.map_or("cancelled".to_string(), |j| format!("c{j}"));
        if let Some(failure) = &step.failure {
            let _ = writeln!(out, "    s{i} -. \"{failure}\" .-> {target}");
        }
        let timeout_target = if step.compensation.is_some() { format!("c{i}") } else { target };
        let _ = writeln!(out, "    s{i} -. \"timeout\" .-> {timeout_target}");
    }
    let _ = writeln!(out, "    completed([\"COMPLETED: {}\"])", def.on_completed);
    let _ = writeln!(out, "    cancelled([\"CANCELLED: {}\"])", def.on_cancelled);
    let _ = writeln!(out, "    failed([\"FAILED: {}\"])", def.on_failed);
    out
}
