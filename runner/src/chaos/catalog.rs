//! What the running system is made of, as far as a rule or a canary change can name it:
//! services, handlers and consumers, topics, canary steps, and whether a runner hosts the
//! broker. Each runner announces its services on the control topic (`hello/<service>`, a
//! compacted key, so a service that is down for a moment stays known); chaos-svc checks
//! every target against what was announced and refuses one that names nothing, listing the
//! names that exist.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::rule::{FieldProblem, TargetSpec};

/// What one service consists of.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceCatalog {
    pub service: String,
    /// Consumer names (`charge`) and handler names (`payment.charge`).
    #[serde(default)]
    pub handlers: BTreeSet<String>,
    /// Topics it consumes or produces.
    #[serde(default)]
    pub topics: BTreeSet<String>,
    /// Saga steps with a canary.
    #[serde(default)]
    pub canary_steps: BTreeSet<String>,
    /// The runner of this service hosts the embedded broker.
    #[serde(default)]
    pub hosts_broker: bool,
}

/// Every announced service, by name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Catalog {
    pub services: BTreeMap<String, ServiceCatalog>,
}

/// At most this many names are listed in a refusal (the rest are counted).
const LISTED: usize = 20;

/// The names that exist, those closest to `wanted` first (a typo finds its fix at the front).
fn listed<'a>(wanted: &str, names: impl IntoIterator<Item = &'a String>) -> String {
    let mut names: Vec<&String> = names.into_iter().collect();
    if names.is_empty() {
        return "none is announced yet".to_string();
    }
    names.sort_by_key(|name| (edit_distance(wanted, name), name.as_str()));
    let mut text = names.iter().take(LISTED).map(|n| n.as_str()).collect::<Vec<_>>().join(", ");
    if names.len() > LISTED {
        text.push_str(&format!(" and {} more", names.len() - LISTED));
    }
    text
}

/// Levenshtein distance in characters (names are short: the quadratic table is fine).
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (above + 1).min(row[j] + 1).min(diagonal + usize::from(ca != *cb));
            diagonal = above;
        }
    }
    row[b.len()]
}

impl Catalog {
    fn service(&self, field: &str, name: &str) -> Result<&ServiceCatalog, FieldProblem> {
        self.services.get(name).ok_or_else(|| FieldProblem {
            field: field.to_string(),
            message: format!("no service `{name}` runs; services: {}", listed(name, self.services.keys())),
        })
    }

    /// `Ok` when `target` names things that exist; otherwise the field and what does exist.
    pub fn check_target(&self, target: &TargetSpec) -> Result<(), FieldProblem> {
        match target {
            TargetSpec::Service { service } | TargetSpec::Http { service, .. } | TargetSpec::Store { service } => {
                self.service("target.service", service).map(|_| ())
            }
            TargetSpec::Handler { handler, service } => {
                let candidates: Vec<&ServiceCatalog> = match service {
                    Some(name) => vec![self.service("target.service", name)?],
                    None => self.services.values().collect(),
                };
                if candidates.iter().any(|s| s.handlers.contains(handler)) {
                    return Ok(());
                }
                let known: BTreeSet<&String> = candidates.iter().flat_map(|s| &s.handlers).collect();
                Err(FieldProblem {
                    field: "target.handler".to_string(),
                    message: format!("no handler or consumer `{handler}` runs; handlers: {}", listed(handler, known)),
                })
            }
            TargetSpec::Topic { topic, .. } => {
                if self.services.values().any(|s| s.topics.contains(topic)) {
                    return Ok(());
                }
                let known: BTreeSet<&String> = self.services.values().flat_map(|s| &s.topics).collect();
                Err(FieldProblem {
                    field: "target.topic".to_string(),
                    message: format!("no service uses topic `{topic}`; topics: {}", listed(topic, known)),
                })
            }
            TargetSpec::Broker => {
                if self.services.values().any(|s| s.hosts_broker) {
                    return Ok(());
                }
                Err(FieldProblem {
                    field: "target.kind".to_string(),
                    message: "no runner hosts an embedded broker, so a broker rule would do nothing; \
                              target a topic or a service instead"
                        .to_string(),
                })
            }
        }
    }

    /// `Ok` when some saga has a canary at `step`; otherwise the steps that have one.
    pub fn check_canary_step(&self, step: &str) -> Result<(), FieldProblem> {
        if self.services.values().any(|s| s.canary_steps.contains(step)) {
            return Ok(());
        }
        let known: BTreeSet<&String> = self.services.values().flat_map(|s| &s.canary_steps).collect();
        Err(FieldProblem {
            field: "step".to_string(),
            message: format!("no saga has a canary at step `{step}`; steps with a canary: {}", listed(step, known)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn catalog() -> Catalog {
        let payment = ServiceCatalog {
            service: "payment-svc".into(),
            handlers: ["charge".to_string(), "payment.charge".to_string()].into(),
            topics: ["payment.requested".to_string()].into(),
            canary_steps: BTreeSet::new(),
            hosts_broker: true,
        };
        let orchestrator = ServiceCatalog {
            service: "orchestrator".into(),
            canary_steps: ["payment".to_string()].into(),
            ..ServiceCatalog::default()
        };
        Catalog { services: [("payment-svc".into(), payment), ("orchestrator".into(), orchestrator)].into() }
    }

    #[test]
    fn targets_naming_nothing_are_refused_with_what_exists() {
        let c = catalog();
        let refused = |target: TargetSpec| c.check_target(&target).map_err(|p| format!("{}: {}", p.field, p.message));
        assert_eq!(refused(TargetSpec::Service { service: "payment-svc".into() }), Ok(()));
        assert_eq!(
            refused(TargetSpec::Service { service: "paymnet-svc".into() }),
            Err("target.service: no service `paymnet-svc` runs; services: payment-svc, orchestrator".into())
        );
        assert_eq!(refused(TargetSpec::Handler { handler: "charge".into(), service: None }), Ok(()));
        assert_eq!(
            refused(TargetSpec::Handler { handler: "refund".into(), service: Some("payment-svc".into()) }),
            Err("target.handler: no handler or consumer `refund` runs; handlers: charge, payment.charge".into())
        );
        assert_eq!(
            refused(TargetSpec::Topic { topic: "nope".into(), side: Default::default() }),
            Err("target.topic: no service uses topic `nope`; topics: payment.requested".into())
        );
        assert_eq!(refused(TargetSpec::Broker), Ok(()));
        assert!(Catalog::default().check_target(&TargetSpec::Broker).is_err());
    }

    #[test]
    fn canary_steps_must_exist() {
        let c = catalog();
        assert!(c.check_canary_step("payment").is_ok());
        let problem = c.check_canary_step("nonsense").unwrap_err();
        assert_eq!(problem.message, "no saga has a canary at step `nonsense`; steps with a canary: payment");
    }
}
