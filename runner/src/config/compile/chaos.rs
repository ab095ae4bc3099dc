//! The `[chaos]` pass: whether faults are on for this service, and the rules of its file.

use std::collections::BTreeSet;

use super::Compiler;
use crate::chaos::ChaosSettings;
use crate::config::spec::ChaosSpec;
use crate::diagnostic::KeyPath;

pub(super) fn compile_chaos(c: &mut Compiler, spec: Option<&ChaosSpec>) -> ChaosSettings {
    let Some(spec) = spec else { return ChaosSettings::default() };
    let mut rules = Vec::new();
    let mut ids = BTreeSet::new();
    for (i, rule) in spec.rules.iter().enumerate() {
        let at = KeyPath::section("chaos").key("rules").index(i);
        if !ids.insert(rule.id.clone()) {
            c.problem(at.key("id"), format!("rule id `{}` is used twice in this file", rule.id));
        }
        match crate::chaos::compile_rule(rule) {
            Ok(rule) => rules.push(rule),
            Err(problems) => {
                for p in problems {
                    // A rule names its fields relative to itself (the API answers them as such).
                    c.problem(at.join(&KeyPath::parse(&p.field)), p.message);
                }
            }
        }
    }
    ChaosSettings { enabled: spec.enabled.unwrap_or(false), allow_crash: spec.allow_crash.unwrap_or(false), rules }
}
