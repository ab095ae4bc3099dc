//! The control topic: a compacted topic chaos-svc writes and every runner follows from the
//! start. One record per rule (`rule/<id>`), per canary step (`canary/<step>`) and per
//! running service (`hello/<service>`, what it consists of); an empty value (tombstone)
//! removes it. The latest record of a key is its state.

use serde::{Deserialize, Serialize};

use super::catalog::ServiceCatalog;
use super::rule::RuleSpec;

/// Rules and canary settings, compacted by key.
pub const CONTROL_TOPIC: &str = "chaos.control";
/// Every injection of every runner, for chaos-svc's list.
pub const INJECTIONS_TOPIC: &str = "chaos.injections";

/// A rule as chaos-svc stores it: the spec plus its lease, fixed at creation so every
/// runner ends it at the same moment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ControlRule {
    pub rule: RuleSpec,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at_ms: Option<i64>,
    /// Who made the last change (the admin token's holder).
    pub by: String,
}

/// A canary percentage set at runtime, by an operator or by the automated analysis.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CanarySetting {
    pub percent: f64,
    pub at_ms: i64,
    pub by: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Lease: at this time the percentage goes back to `then_percent` by itself (a game day
    /// that dies leaves no canary shift behind).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at_ms: Option<i64>,
    /// The percentage in force once the lease ends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub then_percent: Option<f64>,
}

/// One record of the control topic, decoded.
#[derive(Debug, Clone, PartialEq)]
pub enum ControlRecord {
    Rule(String, Option<Box<ControlRule>>),
    Canary(String, Option<CanarySetting>),
    /// A runner announcing one of its services at start and on every reload (`hello/<service>`):
    /// what rules and canary changes may name. It also gets every follower past its first
    /// fetch before the first real change.
    Hello(String, Option<Box<ServiceCatalog>>),
}

impl ControlRecord {
    /// The record's key on the topic.
    pub fn key(&self) -> String {
        match self {
            ControlRecord::Rule(id, _) => format!("rule/{id}"),
            ControlRecord::Canary(step, _) => format!("canary/{step}"),
            ControlRecord::Hello(service, _) => format!("hello/{service}"),
        }
    }

    /// The record's value; `None` is a tombstone.
    pub fn value(&self) -> Option<Vec<u8>> {
        match self {
            ControlRecord::Rule(_, rule) => rule.as_ref().map(|r| serde_json::to_vec(r).unwrap_or_default()),
            ControlRecord::Canary(_, setting) => setting.as_ref().map(|s| serde_json::to_vec(s).unwrap_or_default()),
            ControlRecord::Hello(_, catalog) => catalog.as_ref().map(|c| serde_json::to_vec(c).unwrap_or_default()),
        }
    }

    /// Reads a record of the control topic; `Err` says why it is not one.
    pub fn decode(key: Option<&[u8]>, value: Option<&[u8]>) -> Result<Self, String> {
        let key = key.map(String::from_utf8_lossy).ok_or("control record without a key")?;
        let value = value.filter(|v| !v.is_empty());
        if let Some(id) = key.strip_prefix("rule/") {
            let rule = value
                .map(|v| {
                    serde_json::from_slice::<ControlRule>(v).map(Box::new).map_err(|e| format!("rule `{id}`: {e}"))
                })
                .transpose()?;
            Ok(ControlRecord::Rule(id.to_string(), rule))
        } else if let Some(step) = key.strip_prefix("canary/") {
            let setting = value
                .map(|v| serde_json::from_slice::<CanarySetting>(v).map_err(|e| format!("canary `{step}`: {e}")))
                .transpose()?;
            Ok(ControlRecord::Canary(step.to_string(), setting))
        } else if let Some(service) = key.strip_prefix("hello/") {
            let catalog = value
                .map(|v| {
                    serde_json::from_slice::<ServiceCatalog>(v)
                        .map(Box::new)
                        .map_err(|e| format!("hello `{service}`: {e}"))
                })
                .transpose()?;
            Ok(ControlRecord::Hello(service.to_string(), catalog))
        } else {
            Err(format!("unknown control key `{key}`"))
        }
    }
}
