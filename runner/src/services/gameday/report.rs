//! Renders a game-day run as a Markdown report and as a self-contained HTML page whose timeline
//! plots are inline SVG drawn here (no script, no external resource, no web font).
//!
//! Both forms show the same sections in the same order: summary, orders, timeline, hypothesis per
//! phase, audit, faults, stop / errors / dead letters, comparison with the previous run. Each
//! section is built once as plain data (a [`Table`]) and then written out by a Markdown or an
//! HTML renderer, so the two forms cannot drift apart.
//!
//! Everything in a record is untrusted: strings are cleaned of control characters and escaped
//! for the output format; numbers may be NaN, infinite or huge, so the formatters print "–" for
//! what is not finite and the plots skip such points.

use super::model::{AuditCheck, FaultRecord, OrderCounts, PhaseVerdict, RunRecord, RunState, Sample};

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

// Writing to a `String` cannot fail: the `fmt::Result`s of `write!` below are ignored on purpose.

/// Printed where a figure is unknown or not a finite number.
const DASH: &str = "–";

// ---------------------------------------------------------------------------------------------
// Public API

/// Markdown report.
pub fn markdown(run: &RunRecord, previous: Option<&RunRecord>) -> String {
    let mut out = String::with_capacity(16 * 1024);
    let _ = writeln!(out, "# Game day: {}\n", md_text(&run.scenario));
    md_table(&mut out, &summary_table(run));
    md_about(&mut out, run);
    md_section(&mut out, "Orders", None, Some(orders_table(&run.orders)), "");
    md_timeline(&mut out, run);
    md_phases(&mut out, &run.phases);
    let audit = (!run.audit.is_empty()).then(|| audit_table(&run.audit));
    md_section(&mut out, "Audit", Some(audit_line(&run.audit)), audit, "");
    let faults = (!run.faults.is_empty()).then(|| faults_table(&run.faults));
    md_section(&mut out, "Faults", None, faults, "no faults");
    if let Some(stop) = stop_table(run) {
        md_section(&mut out, "Stop", None, Some(stop), "");
    }
    md_errors(&mut out, &run.errors);
    let dead = (!run.dead_letters.is_empty()).then(|| dead_letters_table(&run.dead_letters));
    md_section(&mut out, "Dead letters", None, dead, "none");
    let (note, comparison) = comparison(run, previous);
    md_section(&mut out, "Comparison with the previous run", Some(note), comparison, "");
    out
}

/// Self-contained HTML page (inline CSS, inline `<svg>` plots; no script, no external URL, no
/// web fonts).
pub fn html(run: &RunRecord, previous: Option<&RunRecord>) -> String {
    let mut out = String::with_capacity(96 * 1024);
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>Game day: {} — run {}</title>\n<style>{CSS}</style>\n</head>\n<body>\n<main>\n",
        esc(&run.scenario),
        esc(&run.id),
    );
    html_summary(&mut out, run);
    html_section(&mut out, "Orders", None, Some(orders_table(&run.orders)), "");
    html_timeline(&mut out, run);
    html_phases(&mut out, &run.phases);
    let audit = (!run.audit.is_empty()).then(|| audit_table(&run.audit));
    html_section(&mut out, "Audit", Some(audit_line(&run.audit)), audit, "");
    let faults = (!run.faults.is_empty()).then(|| faults_table(&run.faults));
    html_section(&mut out, "Faults", None, faults, "no faults");
    if let Some(stop) = stop_table(run) {
        html_section(&mut out, "Stop", None, Some(stop), "");
    }
    html_errors(&mut out, &run.errors);
    let dead = (!run.dead_letters.is_empty()).then(|| dead_letters_table(&run.dead_letters));
    html_section(&mut out, "Dead letters", None, dead, "none");
    let (note, comparison) = comparison(run, previous);
    html_section(&mut out, "Comparison with the previous run", Some(note), comparison, "");
    out.push_str("</main>\n</body>\n</html>\n");
    out
}

// ---------------------------------------------------------------------------------------------
// Tables: each section as data, rendered by `md_table` and `html_table`

/// One cell of a report table. Strings are raw: the renderers escape them.
enum Cell {
    Text(String),
    /// A figure, right-aligned in HTML.
    Num(String),
    /// A yes/no result: a tick or a cross, then the word, so it reads without colour.
    Mark(bool, &'static str),
}

struct Table {
    head: &'static [&'static str],
    rows: Vec<Vec<Cell>>,
    /// The first cell of each row names the row (`<th scope="row">` in HTML).
    row_heads: bool,
}

fn text(s: impl Into<String>) -> Cell {
    Cell::Text(s.into())
}

fn num(s: impl Into<String>) -> Cell {
    Cell::Num(s.into())
}

/// The run at a glance: who, when, how long, where it is.
fn summary_table(run: &RunRecord) -> Table {
    let mut rows = vec![
        vec![text("Run"), text(&run.id)],
        vec![text("Outcome"), text(run.state.as_str())],
        vec![text("Started by"), text(&run.started_by)],
        vec![text("Started"), text(utc(run.started_at_ms))],
    ];
    if let Some(ended) = run.ended_at_ms {
        rows.push(vec![text("Ended"), text(utc(ended))]);
    }
    rows.push(vec![text("Duration"), text(format!("{} (planned {})", dur(run_length_ms(run)), dur(run.planned_ms)))]);
    if !run.state.is_over() {
        if let Some(phase) = &run.phase {
            rows.push(vec![text("Phase now"), text(phase)]);
        }
        rows.push(vec![text("Rate now"), text(format!("{} orders/s", fixed(run.rate, 1)))]);
        rows.push(vec![text("Burn rate now"), text(opt(run.burn_rate, burn))]);
    }
    Table { head: &["", ""], rows, row_heads: true }
}

/// Order counts, each with its share of the step before it.
fn orders_table(o: &OrderCounts) -> Table {
    let row = |name: &str, n: u64, of: u64, of_what: &str| {
        let share = if of_what.is_empty() { String::new() } else { format!("{} of {of_what}", pct(ratio(n, of))) };
        vec![text(name), num(n.to_string()), num(share)]
    };
    Table {
        head: &["Orders", "Count", "Share"],
        rows: vec![
            row("Sent", o.sent, 0, ""),
            row("Accepted", o.accepted, o.sent, "sent"),
            row("Refused", o.refused, o.sent, "sent"),
            row("Settled", o.settled, o.accepted, "accepted"),
            row("Completed", o.completed, o.settled, "settled"),
            row("Cancelled", o.cancelled, o.settled, "settled"),
            row("Failed", o.failed, o.settled, "settled"),
            row("Unexpected", o.unexpected, o.accepted, "accepted"),
        ],
        row_heads: true,
    }
}

/// The timeline by 10-second window, for the Markdown form (which has no plots).
fn timeline_table(samples: &[&Sample], faults: &[FaultRecord]) -> Table {
    // Sample `t` covers the second [t - 1, t), so t = 1..=10 is the first window.
    let mut windows: BTreeMap<u64, Vec<&Sample>> = BTreeMap::new();
    for s in samples {
        windows.entry(s.t.saturating_sub(1) / 10).or_default().push(s);
    }
    let rows = windows
        .into_iter()
        .map(|(w, ss)| {
            let from_s = w.saturating_mul(10);
            let to_s = from_s.saturating_add(10);
            let sum = |f: fn(&Sample) -> u64| ss.iter().fold(0u64, |acc, s| acc.saturating_add(f(s)));
            let p50 = weighted_quantile(ss.iter().map(|s| (s.p50_ms, s.settled)), 0.5);
            let (win_from_ms, win_to_ms) = (from_s.saturating_mul(1000), to_s.saturating_mul(1000));
            let active: Vec<&str> = faults
                .iter()
                .filter(|f| {
                    let (from, to, _) = fault_window_ms(f);
                    // A fault of no length still shows in the window it falls in.
                    from < win_to_ms && to.max(from.saturating_add(1)) > win_from_ms
                })
                .map(|f| f.name.as_str())
                .collect();
            vec![
                text(format!("{from_s}–{to_s} s")),
                num(sum(|s| s.sent).to_string()),
                num(sum(|s| s.settled).to_string()),
                num(sum(|s| s.bad).to_string()),
                num(opt(p50, ms)),
                num(opt(max_finite(ss.iter().map(|s| s.p99_ms)), ms)),
                num(opt(max_finite(ss.iter().map(|s| s.error_ratio)), pct)),
                num(opt(max_finite(ss.iter().map(|s| s.burn_rate)), burn)),
                text(active.join(", ")),
            ]
        })
        .collect();
    Table {
        head: &["Window", "Sent", "Settled", "Bad", "p50", "p99", "Error ratio", "Burn rate", "Faults"],
        rows,
        row_heads: false,
    }
}

/// The line under a phase's heading: its window and orders.
fn phase_line(phase: &PhaseVerdict) -> String {
    format!("from {} to {}, {} orders", dur(phase.from_ms), dur(phase.to_ms), phase.orders)
}

fn phase_table(phase: &PhaseVerdict) -> Table {
    let rows = phase
        .checks
        .iter()
        .map(|c| {
            vec![
                text(&c.name),
                text(&c.expected),
                text(&c.measured),
                Cell::Mark(c.held, if c.held { "held" } else { "not held" }),
            ]
        })
        .collect();
    Table { head: &["Check", "Expected", "Measured", "Held"], rows, row_heads: false }
}

fn audit_line(audit: &[AuditCheck]) -> String {
    if audit.is_empty() {
        return "no audit checks".to_string();
    }
    let passed = audit.iter().filter(|c| c.passed).count();
    format!("{passed} of {} checks passed", audit.len())
}

fn audit_table(audit: &[AuditCheck]) -> Table {
    let rows = audit
        .iter()
        .map(|c| {
            let figures: Vec<String> = c.numbers.iter().map(|(k, v)| format!("{k}: {}", number(*v))).collect();
            vec![
                text(&c.name),
                Cell::Mark(c.passed, if c.passed { "passed" } else { "failed" }),
                text(&c.detail),
                text(figures.join("\n")),
            ]
        })
        .collect();
    Table { head: &["Check", "Result", "Detail", "Numbers"], rows, row_heads: false }
}

fn faults_table(faults: &[FaultRecord]) -> Table {
    let at = |ms: Option<u64>| ms.map_or(DASH.to_string(), dur);
    let rows = faults
        .iter()
        .map(|f| {
            vec![
                text(&f.name),
                text(&f.kind),
                text(&f.summary),
                num(dur(f.at_ms)),
                num(dur(f.for_ms)),
                num(at(f.applied_ms)),
                num(at(f.removed_ms)),
                num(at(f.lease_ms)),
                num(f.injections.to_string()),
                text(&f.state),
                text(f.error.as_deref().unwrap_or("")),
            ]
        })
        .collect();
    Table {
        head: &[
            "Fault",
            "Kind",
            "Summary",
            "Planned at",
            "For",
            "Applied",
            "Removed",
            "Lease",
            "Injections",
            "State",
            "Error",
        ],
        rows,
        row_heads: false,
    }
}

fn stop_table(run: &RunRecord) -> Option<Table> {
    let stop = run.stop.as_ref()?;
    Some(Table {
        head: &["", ""],
        rows: vec![
            vec![text("Condition"), text(&stop.condition)],
            vec![text("At"), text(dur(stop.at_ms))],
            vec![text("Detail"), text(&stop.detail)],
        ],
        row_heads: true,
    })
}

fn dead_letters_table(dead: &BTreeMap<String, i64>) -> Table {
    let rows = dead.iter().map(|(key, n)| vec![text(key), num(n.to_string())]).collect();
    Table { head: &["Topic / kind", "Dead letters"], rows, row_heads: false }
}

/// The figures compared between two runs of a scenario.
struct Figures {
    accepted: u64,
    /// Completed orders over accepted ones.
    completed_share: f64,
    p50: Option<f64>,
    p99: Option<f64>,
    peak_burn: Option<f64>,
    audit_passed: usize,
    audit_total: usize,
    outcome: RunState,
}

fn figures(run: &RunRecord) -> Figures {
    // The whole run's latency comes from the per-second figures, each second weighted by the
    // orders it settled: p50 is the settled-weighted median of the per-second p50s, p99 the
    // settled-weighted 99th percentile of the per-second p99s. The exact figures would need every
    // order's latency, which the record does not keep; the weighting stops a quiet second from
    // counting as much as a busy one.
    let weighted = |pick: fn(&Sample) -> Option<f64>, q: f64| {
        weighted_quantile(run.samples.iter().map(|s| (pick(s), s.settled)), q)
    };
    Figures {
        accepted: run.orders.accepted,
        completed_share: ratio(run.orders.completed, run.orders.accepted),
        p50: weighted(|s| s.p50_ms, 0.5),
        p99: weighted(|s| s.p99_ms, 0.99),
        peak_burn: max_finite(run.samples.iter().map(|s| s.burn_rate)).or(finite(run.burn_rate)),
        audit_passed: run.audit.iter().filter(|c| c.passed).count(),
        audit_total: run.audit.len(),
        outcome: run.state,
    }
}

fn comparison_table(run: &RunRecord, previous: &RunRecord) -> Table {
    let (a, b) = (figures(previous), figures(run));
    let diff = |x: Option<f64>, y: Option<f64>| match (x, y) {
        (Some(x), Some(y)) => Some(y - x),
        _ => None,
    };
    let ms_change =
        |d: Option<f64>| d.map_or(DASH.to_string(), |d| signed(d, if d.abs() >= 10.0 { 0 } else { 1 }, " ms"));
    let accepted_change = {
        let d = b.accepted as f64 - a.accepted as f64;
        if a.accepted == 0 {
            signed(d, 0, "")
        } else {
            format!("{} ({})", signed(d, 0, ""), signed(d / a.accepted as f64 * 100.0, 1, "%"))
        }
    };
    let audit_change = b.audit_passed as f64 - a.audit_passed as f64;
    let outcome_change = if a.outcome == b.outcome { "same" } else { "changed" };
    let rows = vec![
        vec![text("Orders accepted"), num(a.accepted.to_string()), num(b.accepted.to_string()), num(accepted_change)],
        vec![
            text("Completed share (of accepted)"),
            num(pct(a.completed_share)),
            num(pct(b.completed_share)),
            num(signed((b.completed_share - a.completed_share) * 100.0, 2, " pp")),
        ],
        vec![text("p50 latency"), num(opt(a.p50, ms)), num(opt(b.p50, ms)), num(ms_change(diff(a.p50, b.p50)))],
        vec![text("p99 latency"), num(opt(a.p99, ms)), num(opt(b.p99, ms)), num(ms_change(diff(a.p99, b.p99)))],
        vec![
            text("Peak burn rate"),
            num(opt(a.peak_burn, burn)),
            num(opt(b.peak_burn, burn)),
            num(diff(a.peak_burn, b.peak_burn).map_or(DASH.to_string(), |d| signed(d, 2, ""))),
        ],
        vec![
            text("Audit checks passed"),
            num(format!("{} of {}", a.audit_passed, a.audit_total)),
            num(format!("{} of {}", b.audit_passed, b.audit_total)),
            num(signed(audit_change, 0, "")),
        ],
        vec![text("Outcome"), text(a.outcome.as_str()), text(b.outcome.as_str()), text(outcome_change)],
    ];
    Table { head: &["Figure", "Previous run", "This run", "Change"], rows, row_heads: true }
}

/// The line opening the comparison section, and its table when there is a previous run.
fn comparison(run: &RunRecord, previous: Option<&RunRecord>) -> (String, Option<Table>) {
    match previous {
        Some(prev) => (format!("Previous run: {}", prev.id), Some(comparison_table(run, prev))),
        None => ("first run of this scenario".to_string(), None),
    }
}

// ---------------------------------------------------------------------------------------------
// Markdown rendering

fn md_table(out: &mut String, table: &Table) {
    out.push('|');
    for h in table.head {
        let _ = write!(out, " {} |", md_cell(h));
    }
    out.push_str("\n|");
    for _ in table.head {
        out.push_str(" --- |");
    }
    out.push('\n');
    for row in &table.rows {
        out.push('|');
        for cell in row {
            let s = match cell {
                Cell::Text(s) | Cell::Num(s) => md_cell(s),
                Cell::Mark(ok, word) => format!("{} {word}", if *ok { "✔" } else { "✘" }),
            };
            let _ = write!(out, " {s} |");
        }
        out.push('\n');
    }
}

/// Description, hypothesis and verdict, under the summary table.
fn md_about(out: &mut String, run: &RunRecord) {
    if let Some(description) = &run.description {
        let _ = writeln!(out, "\n{}", md_quote(description));
    }
    if let Some(hypothesis) = &run.hypothesis_text {
        let _ = writeln!(out, "\n**Hypothesis**\n\n{}", md_quote(hypothesis));
    }
    match &run.verdict {
        Some(v) => {
            let _ = writeln!(
                out,
                "\n**Verdict: {}.** {}\n\nHypothesis {}; audit {}.",
                v.outcome.as_str(),
                md_text(&v.summary),
                if v.hypothesis_held { "✔ held" } else { "✘ not held" },
                if v.audit_passed { "✔ passed" } else { "✘ failed" },
            );
        }
        None => out.push_str("\n**Verdict:** none yet\n"),
    }
}

/// A `##` section: a line of text if any, then the table, or `empty` when there is none.
fn md_section(out: &mut String, heading: &str, note: Option<String>, table: Option<Table>, empty: &str) {
    let _ = writeln!(out, "\n## {heading}\n");
    if let Some(note) = note {
        let _ = writeln!(out, "{}\n", md_text(&note));
    }
    match table {
        Some(table) => md_table(out, &table),
        None if !empty.is_empty() => {
            let _ = writeln!(out, "{empty}");
        }
        None => {}
    }
}

/// The timeline as a table by 10-second window, in place of the plots.
fn md_timeline(out: &mut String, run: &RunRecord) {
    let samples = sorted_samples(run);
    let note = "_The plots are in the HTML form of this report; here is the timeline by 10-second window._";
    let _ = writeln!(out, "\n## Timeline\n\n{note}\n");
    if samples.is_empty() {
        out.push_str("no data\n");
        return;
    }
    md_table(out, &timeline_table(&samples, &run.faults));
    out.push_str("\n_Per window: sums of sent, settled and bad; p50 is the settled-weighted median of the ");
    out.push_str("per-second p50; p99, error ratio and burn rate are the highest per-second values._\n");
}

fn md_phases(out: &mut String, phases: &[PhaseVerdict]) {
    out.push_str("\n## Hypothesis per phase\n");
    if phases.is_empty() {
        out.push_str("\nno phase checked yet\n");
    }
    for phase in phases {
        let held = if phase.held { "✔ held" } else { "✘ not held" };
        let _ = writeln!(out, "\n### Phase {} — {held}\n", md_text(&phase.name));
        let _ = writeln!(out, "{}\n", md_text(&phase_line(phase)));
        if phase.checks.is_empty() {
            out.push_str("no checks\n");
        } else {
            md_table(out, &phase_table(phase));
        }
    }
}

fn md_errors(out: &mut String, errors: &[String]) {
    if errors.is_empty() {
        return;
    }
    out.push_str("\n## Errors\n\n");
    for e in errors {
        let _ = writeln!(out, "- {}", md_text(e));
    }
}

// ---------------------------------------------------------------------------------------------
// HTML rendering

const CSS: &str = "\
body{margin:0;color:#1b1b1b;background:#fff;\
font-family:system-ui,-apple-system,'Segoe UI',Roboto,'Helvetica Neue',Arial,sans-serif;line-height:1.4}\
main{max-width:980px;margin:0 auto;padding:1.5rem}\
h1{margin:.2rem 0 .6rem}h2{margin-top:2rem;border-bottom:1px solid #ddd}\
table{border-collapse:collapse;margin:.5rem 0 1rem;font-size:.9rem}\
th,td{border:1px solid #ccc;padding:.3rem .5rem;text-align:left;vertical-align:top}\
thead th{background:#f2f2f2}tbody th{background:#fafafa;font-weight:600}\
td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}\
.ok{color:#146c2e;font-weight:600}.bad{color:#b3261e;font-weight:600}\
.badge{display:inline-block;padding:.1rem .6rem;border-radius:.3rem;color:#fff;font-weight:600;background:#555}\
.state-passed{background:#146c2e}.state-failed{background:#b3261e}.state-aborted{background:#8a4b00}\
.state-interrupted{background:#5c5c5c}.state-running,.state-auditing{background:#0b5cad}\
.pre{white-space:pre-wrap}blockquote{margin:.5rem 0;padding:.2rem 1rem;border-left:4px solid #ccc}\
figure{margin:0 0 1.5rem}figcaption{font-weight:600;margin-bottom:.3rem}\
svg.chart{display:block;width:100%;max-width:720px;height:auto;font-size:11px}";

fn html_table(out: &mut String, table: &Table) {
    out.push_str("<table>\n");
    if table.head.iter().any(|h| !h.is_empty()) {
        out.push_str("<thead><tr>");
        for h in table.head {
            let _ = write!(out, "<th scope=\"col\">{}</th>", esc(h));
        }
        out.push_str("</tr></thead>\n");
    }
    out.push_str("<tbody>\n");
    for row in &table.rows {
        out.push_str("<tr>");
        for (i, cell) in row.iter().enumerate() {
            let (open, close) =
                if table.row_heads && i == 0 { ("<th scope=\"row\"", "</th>") } else { ("<td", "</td>") };
            match cell {
                Cell::Text(s) => {
                    let _ = write!(out, "{open}>{}{close}", esc(s).replace('\n', "<br>"));
                }
                Cell::Num(s) => {
                    let _ = write!(out, "{open} class=\"num\">{}{close}", esc(s));
                }
                Cell::Mark(ok, word) => {
                    let (class, sign) = if *ok { ("ok", "✔") } else { ("bad", "✘") };
                    let _ = write!(out, "{open}><span class=\"{class}\">{sign} {word}</span>{close}");
                }
            }
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</tbody>\n</table>\n");
}

/// Heading, outcome, summary table, description, hypothesis and verdict.
fn html_summary(out: &mut String, run: &RunRecord) {
    let state = run.state.as_str();
    let _ = writeln!(
        out,
        "<header>\n<h1>Game day: {}</h1>\n<p><span class=\"badge state-{state}\">{state}</span></p>",
        esc(&run.scenario)
    );
    html_table(out, &summary_table(run));
    if let Some(description) = &run.description {
        let _ = writeln!(out, "<p class=\"pre\">{}</p>", esc(description));
    }
    if let Some(hypothesis) = &run.hypothesis_text {
        let _ = writeln!(out, "<h2>Hypothesis</h2>\n<blockquote class=\"pre\">{}</blockquote>", esc(hypothesis));
    }
    out.push_str("<h2>Verdict</h2>\n");
    match &run.verdict {
        Some(v) => {
            let mark = |ok: bool, yes: &str, no: &str| {
                if ok {
                    format!("<span class=\"ok\">✔ {yes}</span>")
                } else {
                    format!("<span class=\"bad\">✘ {no}</span>")
                }
            };
            let _ = writeln!(
                out,
                "<p><strong>{}.</strong> {}</p>\n<p>Hypothesis: {}. Audit: {}.</p>",
                v.outcome.as_str(),
                esc(&v.summary),
                mark(v.hypothesis_held, "held", "not held"),
                mark(v.audit_passed, "passed", "failed"),
            );
        }
        None => out.push_str("<p>none yet</p>\n"),
    }
    out.push_str("</header>\n");
}

/// The four plots.
fn html_timeline(out: &mut String, run: &RunRecord) {
    let samples = sorted_samples(run);
    out.push_str("<section>\n<h2>Timeline</h2>\n");
    let frame = frame(run, &samples);
    for chart in charts(&samples) {
        let _ = writeln!(out, "<figure>\n<figcaption>{}</figcaption>", esc(chart.title));
        out.push_str(&line_chart(&chart, &frame));
        out.push_str("</figure>\n");
    }
    out.push_str("</section>\n");
}

fn html_phases(out: &mut String, phases: &[PhaseVerdict]) {
    out.push_str("<section>\n<h2>Hypothesis per phase</h2>\n");
    if phases.is_empty() {
        out.push_str("<p>no phase checked yet</p>\n");
    }
    for phase in phases {
        let held =
            if phase.held { "<span class=\"ok\">✔ held</span>" } else { "<span class=\"bad\">✘ not held</span>" };
        let _ = writeln!(out, "<h3>Phase {} — {held}</h3>\n<p>{}</p>", esc(&phase.name), esc(&phase_line(phase)));
        if phase.checks.is_empty() {
            out.push_str("<p>no checks</p>\n");
        } else {
            html_table(out, &phase_table(phase));
        }
    }
    out.push_str("</section>\n");
}

/// A `<section>` with an `<h2>`: a line of text if any, then the table, or `empty` when there
/// is none.
fn html_section(out: &mut String, heading: &str, note: Option<String>, table: Option<Table>, empty: &str) {
    let _ = writeln!(out, "<section>\n<h2>{}</h2>", esc(heading));
    if let Some(note) = note {
        let _ = writeln!(out, "<p>{}</p>", esc(&note));
    }
    match table {
        Some(table) => html_table(out, &table),
        None if !empty.is_empty() => {
            let _ = writeln!(out, "<p>{}</p>", esc(empty));
        }
        None => {}
    }
    out.push_str("</section>\n");
}

fn html_errors(out: &mut String, errors: &[String]) {
    if errors.is_empty() {
        return;
    }
    out.push_str("<section>\n<h2>Errors</h2>\n<ul>\n");
    for e in errors {
        let _ = writeln!(out, "<li class=\"pre\">{}</li>", esc(e));
    }
    out.push_str("</ul>\n</section>\n");
}

// ---------------------------------------------------------------------------------------------
// Charts

/// Size of a chart and the margins around its plot area, in SVG user units.
const WIDTH: f64 = 720.0;
const HEIGHT: f64 = 260.0;
const LEFT: f64 = 64.0;
const RIGHT: f64 = 16.0;
const TOP: f64 = 34.0;
const BOTTOM: f64 = 38.0;

/// Shading of a fault window that was applied, and of one only planned.
const APPLIED: &str = "#d55e00";
const PLANNED: &str = "#999999";

/// Values beyond this are drawn at it, so that axis arithmetic never overflows to infinity.
const LIMIT: f64 = 1e300;

/// One line of a chart: points (seconds, value); `None` leaves a gap.
struct Line {
    label: &'static str,
    colour: &'static str,
    /// `stroke-dasharray`, empty for a solid line (lines differ by more than their colour).
    dash: &'static str,
    points: Vec<(f64, Option<f64>)>,
}

/// A dashed horizontal reference line.
struct Rule {
    y: f64,
    label: &'static str,
}

struct Chart {
    title: &'static str,
    /// What the chart shows, for screen readers.
    about: &'static str,
    lines: Vec<Line>,
    rule: Option<Rule>,
    /// The y axis reaches at least this high, so a flat or empty series still has a scale.
    y_floor: f64,
    /// Formats a y tick.
    tick: fn(f64) -> String,
}

/// A fault's window on the time axis, in seconds since the start.
struct Band {
    from: f64,
    to: f64,
    label: String,
    /// Never applied: the window is the planned one.
    planned_only: bool,
}

/// What every chart of a run shares: the time axis, fault windows and the stop marker.
struct Frame {
    x_max: f64,
    bands: Vec<Band>,
    stop: Option<f64>,
}

/// The run's samples by time (the record does not promise they are sorted).
fn sorted_samples(run: &RunRecord) -> Vec<&Sample> {
    let mut samples: Vec<&Sample> = run.samples.iter().collect();
    samples.sort_by_key(|s| s.t);
    samples
}

/// When a fault was in force, in ms since the start, and whether it was applied at all. A fault
/// never applied shows its planned window; one applied and not (yet) removed shows its planned
/// length from when it was applied.
fn fault_window_ms(f: &FaultRecord) -> (u64, u64, bool) {
    let from = f.applied_ms.unwrap_or(f.at_ms);
    let to = f.removed_ms.unwrap_or_else(|| from.saturating_add(f.for_ms));
    (from, to.max(from), f.applied_ms.is_some())
}

fn seconds(ms: u64) -> f64 {
    ms as f64 / 1000.0
}

fn frame(run: &RunRecord, samples: &[&Sample]) -> Frame {
    let stop = run.stop.as_ref().map(|s| seconds(s.at_ms));
    let mut x_max = samples.last().map_or(0.0, |s| s.t as f64).max(stop.unwrap_or(0.0));
    if samples.is_empty() {
        x_max = x_max.max(seconds(run.elapsed_ms));
    }
    if !run.state.is_over() {
        // A live run's axis shows the whole plan, so the faults still to come are visible.
        x_max = x_max.max(seconds(run.planned_ms));
    }
    let bands = run
        .faults
        .iter()
        .map(|f| {
            let (from, to, applied) = fault_window_ms(f);
            Band { from: seconds(from), to: seconds(to), label: f.name.clone(), planned_only: !applied }
        })
        .collect();
    // At least 10 s, so that a run of a second or two still gets whole-second ticks.
    Frame { x_max: x_max.clamp(10.0, LIMIT), bands, stop }
}

/// A value as drawn: not finite means a gap; a huge one is held at [`LIMIT`].
fn plottable(v: Option<f64>) -> Option<f64> {
    finite(v).map(|v| v.clamp(-LIMIT, LIMIT))
}

fn series(samples: &[&Sample], pick: impl Fn(&Sample) -> Option<f64>) -> Vec<(f64, Option<f64>)> {
    samples.iter().map(|s| (s.t as f64, plottable(pick(s)))).collect()
}

/// The four timeline charts.
fn charts(samples: &[&Sample]) -> [Chart; 4] {
    const BLUE: &str = "#0072b2";
    const ORANGE: &str = "#e69f00";
    const PURPLE: &str = "#7b3294";
    [
        Chart {
            title: "Throughput (orders per second)",
            about: "orders sent and settled per second",
            lines: vec![
                Line { label: "sent", colour: BLUE, dash: "", points: series(samples, |s| Some(s.sent as f64)) },
                Line {
                    label: "settled",
                    colour: ORANGE,
                    dash: "6 3",
                    points: series(samples, |s| Some(s.settled as f64)),
                },
            ],
            rule: None,
            y_floor: 1.0,
            tick: compact,
        },
        Chart {
            title: "Latency (ms)",
            about: "p50 and p99 latency of the orders settled each second, in milliseconds",
            lines: vec![
                Line { label: "p50", colour: BLUE, dash: "", points: series(samples, |s| s.p50_ms) },
                Line { label: "p99", colour: ORANGE, dash: "6 3", points: series(samples, |s| s.p99_ms) },
            ],
            rule: None,
            y_floor: 1.0,
            tick: compact,
        },
        Chart {
            title: "Error ratio",
            about: "share of bad orders over the stop conditions' window",
            lines: vec![Line {
                label: "error ratio",
                colour: PURPLE,
                dash: "",
                points: series(samples, |s| s.error_ratio),
            }],
            rule: None,
            // Scaled to the data (1% at least) rather than 0..100%: a few percent must be readable.
            y_floor: 0.01,
            tick: |v| format!("{}%", compact(v * 100.0)),
        },
        Chart {
            title: "Burn rate",
            about: "highest burn rate of the objectives watched",
            lines: vec![Line {
                label: "burn rate",
                colour: PURPLE,
                dash: "",
                points: series(samples, |s| s.burn_rate),
            }],
            rule: Some(Rule { y: 1.0, label: "budget rate" }),
            y_floor: 1.0,
            tick: compact,
        },
    ]
}

/// Maps a value range onto a pixel range (the pixel range may run backwards, as y does).
struct Scale {
    lo: f64,
    hi: f64,
    px_lo: f64,
    px_hi: f64,
}

impl Scale {
    fn new(lo: f64, hi: f64, px_lo: f64, px_hi: f64) -> Scale {
        // `hi > lo` keeps the division in `at` away from zero.
        let hi = if hi > lo { hi } else { lo + 1.0 };
        Scale { lo, hi, px_lo, px_hi }
    }

    fn at(&self, v: f64) -> f64 {
        self.px_lo + (v - self.lo) / (self.hi - self.lo) * (self.px_hi - self.px_lo)
    }
}

/// About `n` ticks covering `lo..=hi` at a round step (1, 2 or 5 times a power of ten); the
/// first is at or below `lo`, the last at or above `hi`. Always two or more, all finite.
fn nice_ticks(lo: f64, hi: f64, n: usize) -> Vec<f64> {
    let plain = vec![lo, hi];
    if !(lo.is_finite() && hi.is_finite() && hi > lo) || n == 0 {
        return plain;
    }
    let raw = (hi - lo) / n as f64;
    let magnitude = 10f64.powf(raw.log10().floor());
    let step = match raw / magnitude {
        r if r <= 1.0 => 1.0,
        r if r <= 2.0 => 2.0,
        r if r <= 5.0 => 5.0,
        _ => 10.0,
    } * magnitude;
    let first = (lo / step).floor() * step;
    let last = (hi / step).ceil() * step;
    let count = ((last - first) / step).round();
    if !(step > 0.0 && first.is_finite() && last.is_finite() && (1.0..=4.0 * n as f64).contains(&count)) {
        return plain;
    }
    (0..=count as usize).map(|i| first + i as f64 * step).collect()
}

/// A coordinate for SVG: one decimal, and never "NaN" or "inf".
fn px(v: f64) -> String {
    if v.is_finite() {
        format!("{v:.1}")
    } else {
        "0".to_string()
    }
}

/// One line chart as an inline `<svg>`: the lines over time, fault windows shaded, the stop
/// marker, a reference rule if any, axes with ticks and a legend.
fn line_chart(chart: &Chart, frame: &Frame) -> String {
    let values = chart.lines.iter().flat_map(|l| l.points.iter().filter_map(|p| p.1));
    let has_data = values.clone().next().is_some();
    let rule_y = chart.rule.as_ref().map(|r| r.y);
    let lo = values.clone().chain(rule_y).fold(0.0, f64::min);
    let hi = values.chain(rule_y).fold(chart.y_floor, f64::max);
    let y_ticks = nice_ticks(lo, hi, 4);
    let x_ticks = nice_ticks(0.0, frame.x_max, 6);
    let last = |ticks: &[f64], or: f64| ticks.last().copied().unwrap_or(or);
    let first = |ticks: &[f64], or: f64| ticks.first().copied().unwrap_or(or);
    let x = Scale::new(0.0, last(&x_ticks, frame.x_max), LEFT, WIDTH - RIGHT);
    let y = Scale::new(first(&y_ticks, lo), last(&y_ticks, hi), HEIGHT - BOTTOM, TOP);

    let mut svg = String::with_capacity(8 * 1024);
    let mut label = format!("{} over time: {}", chart.title, chart.about);
    if !frame.bands.is_empty() {
        let _ = write!(label, "; {} fault window(s) shaded", frame.bands.len());
    }
    if let Some(stop) = frame.stop {
        let _ = write!(label, "; run stopped at {} s", compact(stop));
    }
    if !has_data {
        label.push_str("; no data");
    }
    let _ = writeln!(
        svg,
        "<svg class=\"chart\" viewBox=\"0 0 {WIDTH} {HEIGHT}\" role=\"img\" aria-label=\"{}\">\n<title>{}</title>",
        esc(&label),
        esc(chart.title),
    );
    let _ = writeln!(
        svg,
        "<rect x=\"{LEFT}\" y=\"{TOP}\" width=\"{}\" height=\"{}\" fill=\"#fcfcfc\" stroke=\"#ddd\"/>",
        px(WIDTH - LEFT - RIGHT),
        px(HEIGHT - TOP - BOTTOM),
    );
    svg_bands(&mut svg, &frame.bands, &x);
    svg_axes(&mut svg, &x, &x_ticks, &y, &y_ticks, chart.tick);
    if let Some(rule) = &chart.rule {
        let ry = px(y.at(rule.y));
        let _ = writeln!(
            svg,
            "<line x1=\"{LEFT}\" y1=\"{ry}\" x2=\"{}\" y2=\"{ry}\" stroke=\"#444\" stroke-dasharray=\"4 4\"/>\n\
             <text x=\"{}\" y=\"{}\" text-anchor=\"end\" fill=\"#444\">{}</text>",
            px(WIDTH - RIGHT),
            px(WIDTH - RIGHT - 4.0),
            px(y.at(rule.y) - 4.0),
            esc(rule.label),
        );
    }
    if has_data {
        for line in &chart.lines {
            svg_line(&mut svg, line, &x, &y);
        }
    } else {
        let _ = writeln!(
            svg,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\" fill=\"#666\" font-size=\"16\">no data</text>",
            px(LEFT + (WIDTH - LEFT - RIGHT) / 2.0),
            px(TOP + (HEIGHT - TOP - BOTTOM) / 2.0),
        );
    }
    if let Some(stop) = frame.stop {
        svg_stop(&mut svg, x.at(stop));
    }
    svg_legend(&mut svg, chart, frame);
    svg.push_str("</svg>\n");
    svg
}

/// The vertical marker where the run was stopped, labelled on the side that has room.
fn svg_stop(svg: &mut String, at: f64) {
    let (text_x, anchor) = if at + 40.0 > WIDTH - RIGHT { (at - 3.0, "end") } else { (at + 3.0, "start") };
    let _ = writeln!(
        svg,
        "<line class=\"stop\" x1=\"{at}\" y1=\"{TOP}\" x2=\"{at}\" y2=\"{}\" stroke=\"#b3261e\" \
         stroke-width=\"2\" stroke-dasharray=\"2 3\"/>\n\
         <text x=\"{}\" y=\"{}\" text-anchor=\"{anchor}\" fill=\"#b3261e\">stop</text>",
        px(HEIGHT - BOTTOM),
        px(text_x),
        px(HEIGHT - BOTTOM - 6.0),
        at = px(at),
    );
}

/// Fault windows as shaded bands across the plot, each labelled with the fault's name. Labels
/// alternate between two rows so that adjacent windows do not write over each other, and one
/// that would run past the right edge is written leftwards from it.
fn svg_bands(svg: &mut String, bands: &[Band], x: &Scale) {
    for (i, band) in bands.iter().enumerate() {
        if band.from > x.hi {
            continue;
        }
        let from = x.at(band.from.max(x.lo));
        let width = (x.at(band.to.min(x.hi)) - from).max(1.5);
        let (fill, stroke, shown) = if band.planned_only {
            (PLANNED, " stroke=\"#999\" stroke-dasharray=\"3 3\"", format!("{} (planned)", band.label))
        } else {
            (APPLIED, "", band.label.clone())
        };
        let shown: String = shown.chars().take(40).collect();
        // A rough text width at 11px.
        let text_width = 6.5 * shown.chars().count() as f64;
        let (text_x, anchor) =
            if from + 3.0 + text_width > WIDTH - RIGHT { (WIDTH - RIGHT - 3.0, "end") } else { (from + 3.0, "start") };
        let _ = writeln!(
            svg,
            "<rect class=\"band\" x=\"{}\" y=\"{TOP}\" width=\"{}\" height=\"{}\" fill=\"{fill}\" \
             fill-opacity=\"0.14\"{stroke}><title>fault {}: {} s to {} s</title></rect>\n\
             <text class=\"band-label\" x=\"{}\" y=\"{}\" text-anchor=\"{anchor}\" fill=\"#6b2f00\">{}</text>",
            px(from),
            px(width),
            px(HEIGHT - TOP - BOTTOM),
            esc(&band.label),
            compact(band.from),
            compact(band.to),
            px(text_x),
            px(TOP + 12.0 + 12.0 * (i % 2) as f64),
            esc(&shown),
        );
    }
}

/// Axis lines, grid lines and tick labels.
fn svg_axes(svg: &mut String, x: &Scale, x_ticks: &[f64], y: &Scale, y_ticks: &[f64], tick: fn(f64) -> String) {
    let bottom = HEIGHT - BOTTOM;
    for &v in y_ticks {
        let ty = px(y.at(v));
        let _ = writeln!(
            svg,
            "<line x1=\"{LEFT}\" y1=\"{ty}\" x2=\"{}\" y2=\"{ty}\" stroke=\"#e6e6e6\"/>\
             <text x=\"{}\" y=\"{}\" text-anchor=\"end\" fill=\"#333\">{}</text>",
            px(WIDTH - RIGHT),
            px(LEFT - 6.0),
            px(y.at(v) + 4.0),
            esc(&tick(v)),
        );
    }
    for &v in x_ticks {
        let tx = px(x.at(v));
        let _ = writeln!(
            svg,
            "<line x1=\"{tx}\" y1=\"{}\" x2=\"{tx}\" y2=\"{}\" stroke=\"#333\"/>\
             <text x=\"{tx}\" y=\"{}\" text-anchor=\"middle\" fill=\"#333\">{}</text>",
            px(bottom),
            px(bottom + 4.0),
            px(bottom + 16.0),
            esc(&compact(v)),
        );
    }
    let _ = writeln!(
        svg,
        "<line x1=\"{LEFT}\" y1=\"{TOP}\" x2=\"{LEFT}\" y2=\"{}\" stroke=\"#333\"/>\
         <line x1=\"{LEFT}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"#333\"/>\n\
         <text x=\"{}\" y=\"{}\" text-anchor=\"end\" fill=\"#555\">seconds since start</text>",
        px(bottom),
        px(bottom),
        px(WIDTH - RIGHT),
        px(bottom),
        px(WIDTH - RIGHT),
        px(HEIGHT - 4.0),
    );
}

/// One series as a path; a gap (`None`) lifts the pen. A point with no neighbour to join gets
/// a dot, so a lone sample still shows.
fn svg_line(svg: &mut String, line: &Line, x: &Scale, y: &Scale) {
    // Runs of consecutive points that have a value; a gap starts a new run.
    let mut runs: Vec<Vec<(f64, f64)>> = vec![Vec::new()];
    for &(t, v) in &line.points {
        match (v, runs.last_mut()) {
            (Some(v), Some(run)) => run.push((x.at(t), y.at(v))),
            (None, Some(run)) if !run.is_empty() => runs.push(Vec::new()),
            _ => {}
        }
    }
    let mut d = String::new();
    for run in runs.iter().filter(|r| r.len() > 1) {
        for (i, &(px_x, px_y)) in run.iter().enumerate() {
            let _ = write!(d, "{}{},{} ", if i == 0 { "M" } else { "L" }, px(px_x), px(px_y));
        }
    }
    let dash = if line.dash.is_empty() { String::new() } else { format!(" stroke-dasharray=\"{}\"", line.dash) };
    if !d.is_empty() {
        let _ = writeln!(
            svg,
            "<path d=\"{}\" fill=\"none\" stroke=\"{}\" stroke-width=\"1.8\"{dash}/>",
            d.trim_end(),
            line.colour
        );
    }
    for &(cx, cy) in runs.iter().filter(|r| r.len() == 1).flatten() {
        let _ = writeln!(svg, "<circle cx=\"{}\" cy=\"{}\" r=\"2.5\" fill=\"{}\"/>", px(cx), px(cy), line.colour);
    }
}

/// What a legend entry shows before its label.
enum Swatch {
    Stroke { colour: &'static str, dash: &'static str },
    Shade(&'static str),
}

/// A row of legend entries above the plot: each line, the reference rule, fault windows, stop.
fn svg_legend(svg: &mut String, chart: &Chart, frame: &Frame) {
    let mut entries: Vec<(Swatch, &str)> =
        chart.lines.iter().map(|l| (Swatch::Stroke { colour: l.colour, dash: l.dash }, l.label)).collect();
    if let Some(rule) = &chart.rule {
        entries.push((Swatch::Stroke { colour: "#444", dash: "4 4" }, rule.label));
    }
    if frame.bands.iter().any(|b| !b.planned_only) {
        entries.push((Swatch::Shade(APPLIED), "fault window"));
    }
    if frame.bands.iter().any(|b| b.planned_only) {
        entries.push((Swatch::Shade(PLANNED), "planned, not applied"));
    }
    if frame.stop.is_some() {
        entries.push((Swatch::Stroke { colour: "#b3261e", dash: "2 3" }, "stop"));
    }
    let y = 14.0;
    let mut x = LEFT;
    for (swatch, label) in entries {
        let sample = match swatch {
            Swatch::Stroke { colour, dash } => format!(
                "<line x1=\"{}\" y1=\"{y}\" x2=\"{}\" y2=\"{y}\" stroke=\"{colour}\" stroke-width=\"2\" \
                 stroke-dasharray=\"{}\"/>",
                px(x),
                px(x + 18.0),
                if dash.is_empty() { "none" } else { dash },
            ),
            Swatch::Shade(fill) => format!(
                "<rect x=\"{}\" y=\"{}\" width=\"18\" height=\"10\" fill=\"{fill}\" fill-opacity=\"0.25\"/>",
                px(x),
                px(y - 5.0),
            ),
        };
        let _ = writeln!(
            svg,
            "<g class=\"legend\">{sample}<text x=\"{}\" y=\"{}\" fill=\"#333\">{}</text></g>",
            px(x + 22.0),
            px(y + 4.0),
            esc(label)
        );
        // A rough text width at 11px, enough to keep the entries apart.
        x += 34.0 + 6.5 * label.chars().count() as f64;
    }
}

// ---------------------------------------------------------------------------------------------
// Figures

fn finite(v: Option<f64>) -> Option<f64> {
    v.filter(|v| v.is_finite())
}

/// The largest finite value, if any.
fn max_finite(values: impl Iterator<Item = Option<f64>>) -> Option<f64> {
    values.filter_map(finite).fold(None, |acc: Option<f64>, v| Some(acc.map_or(v, |a| a.max(v))))
}

/// `n / of`, NaN (printed "–") when `of` is zero.
fn ratio(n: u64, of: u64) -> f64 {
    if of == 0 {
        f64::NAN
    } else {
        n as f64 / of as f64
    }
}

/// The `q` quantile of values each weighted by a count; with no weight at all, every value
/// counts once. Missing and non-finite values are left out.
fn weighted_quantile(points: impl Iterator<Item = (Option<f64>, u64)>, q: f64) -> Option<f64> {
    let mut points: Vec<(f64, f64)> = points.filter_map(|(v, w)| finite(v).map(|v| (v, w as f64))).collect();
    points.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut total: f64 = points.iter().map(|p| p.1).sum();
    if total <= 0.0 {
        for p in &mut points {
            p.1 = 1.0;
        }
        total = points.len() as f64;
    }
    let target = q.clamp(0.0, 1.0) * total;
    let mut seen = 0.0;
    for &(v, w) in &points {
        seen += w;
        if seen >= target && w > 0.0 {
            return Some(v);
        }
    }
    points.last().map(|p| p.0)
}

/// How long the run lasted (or has lasted so far), in ms.
fn run_length_ms(run: &RunRecord) -> u64 {
    run.ended_at_ms
        .and_then(|end| end.checked_sub(run.started_at_ms))
        .and_then(|d| u64::try_from(d).ok())
        .unwrap_or(run.elapsed_ms)
}

// ---------------------------------------------------------------------------------------------
// Formatting

/// A Unix time in ms as RFC 3339 UTC, to the second.
fn utc(ms: i64) -> String {
    OffsetDateTime::from_unix_timestamp(ms.div_euclid(1000))
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| format!("{ms} ms after 1970-01-01 (out of range)"))
}

/// A duration, e.g. "1m 30s"; below 10 s it keeps the milliseconds ("2s 500ms").
fn dur(ms: u64) -> String {
    let ms = if ms >= 10_000 { ms / 1000 * 1000 } else { ms };
    humantime::format_duration(Duration::from_millis(ms)).to_string()
}

/// A number with a fixed count of decimals; exponent notation when huge; "–" when not finite.
fn fixed(v: f64, decimals: usize) -> String {
    if !v.is_finite() {
        DASH.to_string()
    } else if v.abs() >= 1e12 {
        format!("{v:.3e}")
    } else {
        format!("{v:.decimals$}")
    }
}

/// A change with its sign, e.g. "+12 ms", "-0.25".
fn signed(v: f64, decimals: usize, unit: &str) -> String {
    if !v.is_finite() {
        DASH.to_string()
    } else if v == 0.0 {
        format!("0{unit}")
    } else if v.abs() >= 1e12 {
        format!("{v:+.3e}{unit}")
    } else {
        format!("{v:+.decimals$}{unit}")
    }
}

/// A ratio as a percentage with one or two decimals: "99.95%", "12.5%".
fn pct(r: f64) -> String {
    let mut s = fixed(r * 100.0, 2);
    if s == DASH {
        return s;
    }
    if s.ends_with('0') && !s.contains('e') {
        s.pop();
    }
    s + "%"
}

/// Milliseconds: no decimals from 10 ms up, one below.
fn ms(v: f64) -> String {
    if !v.is_finite() {
        return DASH.to_string();
    }
    format!("{} ms", fixed(v, if v.abs() >= 10.0 { 0 } else { 1 }))
}

/// A burn rate, with two decimals.
fn burn(v: f64) -> String {
    fixed(v, 2)
}

fn opt(v: Option<f64>, format: fn(f64) -> String) -> String {
    finite(v).map_or(DASH.to_string(), format)
}

/// A figure of the audit: whole numbers as such, others with up to four decimals.
fn number(v: f64) -> String {
    if !v.is_finite() {
        DASH.to_string()
    } else if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{v:.0}")
    } else {
        trim_zeros(fixed(v, 4))
    }
}

/// A short axis label: "750", "1.5k", "2M", "0.25".
fn compact(v: f64) -> String {
    if !v.is_finite() {
        return DASH.to_string();
    }
    let a = v.abs();
    if a >= 1e15 {
        return format!("{v:.1e}");
    }
    let (scaled, suffix) = if a >= 1e9 {
        (v / 1e9, "G")
    } else if a >= 1e6 {
        (v / 1e6, "M")
    } else if a >= 1e4 {
        (v / 1e3, "k")
    } else {
        (v, "")
    };
    let s = trim_zeros(format!("{scaled:.2}"));
    if s == "-0" {
        "0".to_string()
    } else {
        s + suffix
    }
}

/// "1.500" → "1.5", "2.000" → "2".
fn trim_zeros(s: String) -> String {
    if s.contains('.') && !s.contains('e') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

// ---------------------------------------------------------------------------------------------
// Escaping

/// Control characters (NUL, escape sequences, carriage returns…) are dropped from any text
/// shown; newline and tab are kept.
fn keep(c: &char) -> bool {
    !c.is_control() || *c == '\n' || *c == '\t'
}

/// Text for HTML content or a quoted attribute.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars().filter(keep) {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Text for Markdown: backslash-escapes what would break a table (`|`) or turn into markup
/// (`<` for raw HTML, backtick, `*`, brackets), and writes newlines as `newline`.
fn md_escape(s: &str, newline: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars().filter(keep) {
        match c {
            '\\' | '|' | '<' | '>' | '`' | '*' | '[' | ']' => {
                out.push('\\');
                out.push(c);
            }
            '\n' => out.push_str(newline),
            c => out.push(c),
        }
    }
    out
}

/// One line of Markdown text (headings, list items).
fn md_text(s: &str) -> String {
    md_escape(s.trim(), " ")
}

/// A Markdown table cell: a newline would end the row, so it becomes `<br>`.
fn md_cell(s: &str) -> String {
    md_escape(s.trim(), "<br>")
}

/// Text of several lines as a Markdown block quote.
fn md_quote(s: &str) -> String {
    format!("> {}", md_escape(s.trim(), "\n> ")).replace("> \n", ">\n")
}

// ---------------------------------------------------------------------------------------------

#[cfg(test)]
mod tests {
    use super::super::model::{HypothesisCheck, StopRecord, Verdict};
    use super::*;

    const T0: i64 = 1_717_000_000_000;

    fn check(name: &str, held: bool) -> HypothesisCheck {
        HypothesisCheck { name: name.into(), expected: "≥ 99%".into(), measured: "99.4%".into(), held }
    }

    fn audit(name: &str, passed: bool) -> AuditCheck {
        let mut numbers = BTreeMap::new();
        numbers.insert("orders".to_string(), 2400.0);
        numbers.insert("ratio".to_string(), 0.9975);
        AuditCheck { name: name.into(), passed, detail: format!("{name}: 2400 of 2400 orders"), numbers }
    }

    const AUDIT_NAMES: [&str; 8] = [
        "every-order-final",
        "money-conserved",
        "no-double-charge",
        "stock-conserved",
        "outbox-drained",
        "no-orphan-payment",
        "dead-letters-explained",
        "events-ordered",
    ];

    /// A realistic finished run: 60 s of load, two faults, stopped at 50 s by a burn rate.
    fn run() -> RunRecord {
        let samples = (1..=60u64)
            .map(|t| {
                let faulty = (10..30).contains(&t) || t > 35;
                Sample {
                    t,
                    sent: 40,
                    settled: if t < 3 { 10 } else { 39 },
                    bad: if faulty { 2 } else { 0 },
                    p50_ms: if t == 20 { None } else { Some(if faulty { 420.0 } else { 95.0 } + t as f64) },
                    p99_ms: if t == 20 { None } else { Some(if faulty { 1900.0 } else { 310.0 }) },
                    error_ratio: Some(if faulty { 0.05 } else { 0.001 }),
                    burn_rate: Some(if t > 35 { 4.0 + t as f64 / 10.0 } else { 0.4 }),
                }
            })
            .collect();
        let mut dead_letters = BTreeMap::new();
        dead_letters.insert("payments.dlq/timeout".to_string(), 3);
        RunRecord {
            id: "run-7f3a".into(),
            scenario: "payment-latency".into(),
            description: Some("Slow payments, then a bad canary.\nTwo faults.".into()),
            hypothesis_text: Some("99% of orders settle within 2 s".into()),
            state: RunState::Aborted,
            started_by: "alice".into(),
            started_at_ms: T0,
            ended_at_ms: Some(T0 + 62_500),
            planned_ms: 120_000,
            elapsed_ms: 62_500,
            phase: Some("fault".into()),
            rate: 40.0,
            orders: OrderCounts {
                sent: 2400,
                accepted: 2390,
                refused: 10,
                settled: 2320,
                completed: 2200,
                cancelled: 80,
                failed: 40,
                unexpected: 12,
            },
            burn_rate: Some(10.0),
            faults: vec![
                FaultRecord {
                    name: "payment-latency-800ms".into(),
                    kind: "rule".into(),
                    summary: "latency 800ms on handler payment.charge, 25% of orders".into(),
                    at_ms: 10_000,
                    for_ms: 20_000,
                    rule_id: Some("r-1".into()),
                    applied_ms: Some(10_050),
                    removed_ms: Some(30_010),
                    lease_ms: Some(60_000),
                    injections: 180,
                    state: "removed".into(),
                    error: None,
                },
                FaultRecord {
                    name: "canary-25".into(),
                    kind: "canary".into(),
                    summary: "canary at 25%".into(),
                    at_ms: 35_000,
                    for_ms: 40_000,
                    rule_id: None,
                    applied_ms: Some(35_100),
                    removed_ms: Some(50_200),
                    lease_ms: None,
                    injections: 0,
                    state: "removed".into(),
                    error: Some("removed early: run stopped".into()),
                },
            ],
            samples,
            phases: vec![
                PhaseVerdict {
                    name: "baseline".into(),
                    from_ms: 0,
                    to_ms: 10_000,
                    orders: 400,
                    checks: vec![check("order-latency ≥ 99%", true), check("p99 ≤ 2s", true)],
                    held: true,
                },
                PhaseVerdict {
                    name: "fault".into(),
                    from_ms: 10_000,
                    to_ms: 50_000,
                    orders: 1600,
                    checks: vec![check("order-latency ≥ 99%", false), check("p99 ≤ 2s", true)],
                    held: false,
                },
            ],
            stop: Some(StopRecord {
                condition: "burn_rate order-latency > 10 over 30s".into(),
                at_ms: 50_000,
                detail: "burn rate 10.2 over 30s".into(),
            }),
            audit: AUDIT_NAMES.iter().enumerate().map(|(i, n)| audit(n, i != 3)).collect(),
            dead_letters,
            verdict: Some(Verdict {
                hypothesis_held: false,
                audit_passed: false,
                outcome: RunState::Aborted,
                summary: "stopped at 50 s: burn rate above 10".into(),
            }),
            errors: vec!["metrics endpoint timed out once".into()],
        }
    }

    fn empty_run() -> RunRecord {
        RunRecord {
            id: "run-0".into(),
            scenario: "empty".into(),
            description: None,
            hypothesis_text: None,
            state: RunState::Running,
            started_by: "bob".into(),
            started_at_ms: 0,
            ended_at_ms: None,
            planned_ms: 0,
            elapsed_ms: 0,
            phase: None,
            rate: 0.0,
            orders: OrderCounts::default(),
            burn_rate: None,
            faults: vec![],
            samples: vec![],
            phases: vec![],
            stop: None,
            audit: vec![],
            dead_letters: BTreeMap::new(),
            verdict: None,
            errors: vec![],
        }
    }

    /// The `<svg>…</svg>` parts of a page.
    fn svgs(html: &str) -> Vec<&str> {
        html.split("<svg").skip(1).map(|rest| rest.split("</svg>").next().unwrap_or("")).collect()
    }

    #[test]
    fn html_shows_every_section() {
        let mut previous = run();
        previous.id = "run-6e21".into();
        previous.state = RunState::Passed;
        previous.orders.accepted = 2300;
        let page = html(&run(), Some(&previous));

        assert_eq!(page.matches("<svg").count(), 4);
        assert_eq!(page.matches("</svg>").count(), 4);
        for svg in svgs(&page) {
            assert!(svg.contains("role=\"img\""));
            assert!(svg.contains("aria-label=\""));
            assert!(svg.contains("<title>"));
            // Both fault windows shaded and labelled, and the stop marker drawn, on every chart.
            assert_eq!(svg.matches("<rect class=\"band\"").count(), 2);
            assert!(svg.contains(">payment-latency-800ms</text>"));
            assert!(svg.contains(">canary-25</text>"));
            assert!(svg.contains("class=\"stop\""));
            assert!(svg.contains("<path d=\"M"));
        }
        assert!(page.contains("budget rate"));
        for name in AUDIT_NAMES {
            assert!(page.contains(&format!("<td>{name}</td>")), "audit check {name} missing");
        }
        assert!(page.contains("7 of 8 checks passed"));
        assert!(page.contains("<span class=\"bad\">✘ failed</span>"));
        assert!(page.contains("<span class=\"ok\">✔ held</span>"));
        assert!(page.contains("<td>payment-latency-800ms</td>"));
        assert!(page.contains("<td>canary-25</td>"));
        assert!(page.contains("Comparison with the previous run"));
        assert!(page.contains("Previous run: run-6e21"));
        assert!(page.contains("<td class=\"num\">+90 (+3.9%)</td>"));
        assert!(page.contains("burn_rate order-latency &gt; 10 over 30s"));
        assert!(page.contains("payments.dlq/timeout"));
        assert!(page.contains("2024-05-29T16:26:40Z"));
        assert!(!page.contains("first run of this scenario"));
        // Self-contained: no script, no link to anything.
        assert!(!page.contains("<script"));
        assert!(!page.contains("http"));
        assert!(!page.contains("@import") && !page.contains("url("));
    }

    #[test]
    fn empty_run_renders_and_says_no_data() {
        let page = html(&empty_run(), None);
        assert_eq!(page.matches("<svg").count(), 4);
        for svg in svgs(&page) {
            assert!(svg.contains(">no data</text>"));
            assert!(!svg.contains("<path"));
        }
        assert!(page.contains("first run of this scenario"));
        assert!(page.contains("no audit checks"));

        let md = markdown(&empty_run(), None);
        assert!(md.contains("no data"));
        assert!(md.contains("first run of this scenario"));
        assert!(md.contains("| Run | run-0 |"));
    }

    #[test]
    fn record_strings_are_escaped_in_html() {
        let evil = "<script>alert(1)</script>";
        let mut r = run();
        r.scenario = evil.into();
        r.audit[0].detail = format!("{evil} \"quoted\" & 'single'\0 end");
        r.faults[0].name = evil.into();
        r.errors.push(evil.into());
        let page = html(&r, Some(&r.clone()));
        assert!(!page.contains("<script"));
        assert!(!page.contains('\0'));
        assert!(page.contains("Game day: &lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(page.contains("&lt;script&gt;alert(1)&lt;/script&gt; &quot;quoted&quot; &amp; &#39;single&#39; end"));
    }

    #[test]
    fn nan_and_infinity_never_reach_the_svg() {
        let mut r = run();
        r.samples[5].p50_ms = Some(f64::NAN);
        r.samples[6].p99_ms = Some(f64::INFINITY);
        r.samples[7].error_ratio = Some(f64::NEG_INFINITY);
        r.samples[8].burn_rate = Some(f64::NAN);
        r.samples[9].p99_ms = Some(f64::MAX);
        r.samples[10].burn_rate = Some(-f64::MAX);
        r.burn_rate = Some(f64::INFINITY);
        r.audit[0].numbers.insert("nan".into(), f64::NAN);
        let page = html(&r, Some(&r.clone()));
        for svg in svgs(&page) {
            assert!(!svg.contains("NaN"), "NaN in {svg}");
            assert!(!svg.to_lowercase().contains("inf"), "inf in {svg}");
        }
        assert!(!page.contains("NaN"));
        let md = markdown(&r, Some(&r.clone()));
        assert!(!md.contains("NaN") && !md.contains("inf"));
    }

    #[test]
    fn one_sample_all_none_and_unsorted_samples() {
        let mut r = run();
        r.samples.truncate(1);
        let page = html(&r, None);
        assert_eq!(page.matches("<svg").count(), 4);
        assert!(page.contains("<circle"));

        let mut r = run();
        for s in &mut r.samples {
            s.p50_ms = None;
            s.p99_ms = None;
        }
        let page = html(&r, None);
        let latency = svgs(&page)[1];
        assert!(latency.contains(">no data</text>"));

        // Sample order in the record does not change the report.
        let mut shuffled = run();
        shuffled.samples.reverse();
        shuffled.samples.swap(3, 40);
        assert_eq!(html(&shuffled, None), html(&run(), None));
        assert_eq!(markdown(&shuffled, None), markdown(&run(), None));
    }

    #[test]
    fn huge_values_scale_the_axis() {
        let mut r = run();
        r.samples[30].sent = u64::MAX;
        r.samples[31].p99_ms = Some(1e308);
        let page = html(&r, None);
        for svg in svgs(&page) {
            assert!(!svg.contains("NaN") && !svg.contains("inf"));
        }
        assert!(svgs(&page)[0].contains("e19<") || svgs(&page)[0].contains("e18<"));
    }

    #[test]
    fn markdown_has_every_section_and_escapes_pipes() {
        let mut r = run();
        r.audit[2].detail = "a | b\nnext line".into();
        let mut previous = run();
        previous.state = RunState::Passed;
        let md = markdown(&r, Some(&previous));
        for name in AUDIT_NAMES {
            assert!(md.contains(&format!("\n| {name} | ")), "audit check {name} missing");
        }
        assert!(md.contains("| Check | Result | Detail | Numbers |"));
        assert!(md.contains("a \\| b<br>next line"));
        assert!(md.contains("| ✘ failed |"));
        assert!(md.contains("HTML form"));
        assert!(md.contains("| 0–10 s | 400 |"));
        assert!(md.contains("| Outcome | passed | aborted | changed |"));
        assert!(md.contains("### Phase fault — ✘ not held"));
        assert!(md.contains("payment-latency-800ms"));
        // Every table row has as many cells as its header.
        for line in md.lines().filter(|l| l.starts_with('|')) {
            let cells = line.replace("\\|", "").matches('|').count();
            assert!(cells >= 3, "{line}");
        }
        let mut evil = r.clone();
        evil.scenario = "<script>x</script>".into();
        assert!(markdown(&evil, None).contains("# Game day: \\<script\\>x\\</script\\>"));
    }

    #[test]
    fn figures_are_settled_weighted() {
        let w =
            weighted_quantile([(Some(10.0), 1), (Some(100.0), 10), (None, 50), (Some(f64::NAN), 5)].into_iter(), 0.5);
        assert_eq!(w, Some(100.0));
        assert_eq!(weighted_quantile([(Some(3.0), 0), (Some(1.0), 0), (Some(2.0), 0)].into_iter(), 0.5), Some(2.0));
        assert_eq!(weighted_quantile(std::iter::empty(), 0.5), None);
        let f = figures(&run());
        assert_eq!(f.audit_passed, 7);
        assert_eq!(f.peak_burn, Some(10.0));
        assert_eq!(f.p99, Some(1900.0));
    }

    #[test]
    fn formatting() {
        assert_eq!(pct(0.9995), "99.95%");
        assert_eq!(pct(0.125), "12.5%");
        assert_eq!(pct(f64::NAN), DASH);
        assert_eq!(ms(1234.56), "1235 ms");
        assert_eq!(ms(4.25), "4.2 ms");
        assert_eq!(burn(1.0), "1.00");
        assert_eq!(compact(1500.0), "1500");
        assert_eq!(compact(25_000.0), "25k");
        assert_eq!(dur(90_500), "1m 30s");
        assert_eq!(utc(0), "1970-01-01T00:00:00Z");
        assert!(!utc(i64::MAX).is_empty());
        let ticks = nice_ticks(0.0, 1e300, 4);
        assert!(ticks.len() >= 2 && ticks.iter().all(|t| t.is_finite()));
        assert_eq!(nice_ticks(0.0, 1.0, 4), vec![0.0, 0.5, 1.0]);
    }
}
