//! Event schemas: one JSON Schema per event type, read from `schemas/events/<type>.schema.json`.
//! Producers validate a payload before writing it to the outbox; consumers validate on
//! receipt, and an invalid event is dead-lettered with the reason.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde_json::Value;

/// The compiled schemas of every known event type.
#[derive(Default)]
pub struct SchemaRegistry {
    dir: Option<PathBuf>,
    validators: BTreeMap<String, jsonschema::Validator>,
}

impl fmt::Debug for SchemaRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SchemaRegistry").field("dir", &self.dir).field("types", &self.types()).finish()
    }
}

/// The file name of an event type's schema.
pub fn file_name(event_type: &str) -> String {
    format!("{event_type}.schema.json")
}

impl SchemaRegistry {
    /// No schemas: nothing is validated (used where no schema directory is configured).
    pub fn empty() -> Self {
        SchemaRegistry::default()
    }

    /// Reads and compiles every `*.schema.json` of `dir`; returns every problem at once.
    pub fn load(dir: &Path) -> Result<Self, Vec<String>> {
        let entries = std::fs::read_dir(dir).map_err(|e| {
            vec![format!(
                "cannot read the event schema directory {}: {e}; create it or set [schemas] dir",
                dir.display()
            )]
        })?;
        let mut files: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
        files.sort();
        let mut problems = Vec::new();
        let mut validators = BTreeMap::new();
        for file in files {
            let Some(name) = file.file_name().and_then(|n| n.to_str()) else { continue };
            let Some(event_type) = name.strip_suffix(".schema.json") else { continue };
            let text = match std::fs::read_to_string(&file) {
                Ok(text) => text,
                Err(e) => {
                    problems.push(format!("{}: cannot read: {e}", file.display()));
                    continue;
                }
            };
            let schema: Value = match serde_json::from_str(&text) {
                Ok(schema) => schema,
                Err(e) => {
                    problems.push(format!("{}:{}:{}: not JSON: {e}", file.display(), e.line(), e.column()));
                    continue;
                }
            };
            match jsonschema::validator_for(&schema) {
                Ok(validator) => {
                    validators.insert(event_type.to_string(), validator);
                }
                Err(e) => problems.push(format!("{}: not a valid JSON Schema: {e}", file.display())),
            }
        }
        if problems.is_empty() {
            Ok(SchemaRegistry { dir: Some(dir.to_path_buf()), validators })
        } else {
            Err(problems)
        }
    }

    pub fn dir(&self) -> Option<&Path> {
        self.dir.as_deref()
    }

    /// Whether schemas are in use at all (a configured directory).
    pub fn enabled(&self) -> bool {
        self.dir.is_some()
    }

    pub fn has(&self, event_type: &str) -> bool {
        self.validators.contains_key(event_type)
    }

    pub fn types(&self) -> Vec<&str> {
        self.validators.keys().map(String::as_str).collect()
    }

    /// Checks a payload against its type's schema. With no schema directory configured
    /// everything passes; with one, a type without a schema fails.
    pub fn validate(&self, event_type: &str, payload: &Value) -> Result<(), String> {
        let problems = self.problems(event_type, payload)?;
        if problems.is_empty() {
            Ok(())
        } else {
            Err(summary(event_type, &problems))
        }
    }

    /// The payload's schema problems (at most ten), each at the JSON pointer of the value it
    /// concerns, for an editor to show at the field. `Err` when the type has no schema.
    pub fn problems(&self, event_type: &str, payload: &Value) -> Result<Vec<SchemaProblem>, String> {
        if !self.enabled() {
            return Ok(Vec::new());
        }
        let Some(validator) = self.validators.get(event_type) else {
            return Err(format!("no schema for event type `{event_type}`; add {}", file_name(event_type)));
        };
        Ok(validator
            .iter_errors(payload)
            .take(10)
            .map(|e| SchemaProblem { pointer: e.instance_path().to_string(), message: e.to_string() })
            .collect())
    }
}

/// One line for a payload's schema problems: what `validate` answers.
pub fn summary(event_type: &str, problems: &[SchemaProblem]) -> String {
    let listed: Vec<String> = problems
        .iter()
        .map(|p| if p.pointer.is_empty() { p.message.clone() } else { format!("{}: {}", p.pointer, p.message) })
        .collect();
    format!("`{event_type}` payload does not match its schema: {}", listed.join("; "))
}

/// One way a payload misses its schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaProblem {
    /// Where, as a JSON pointer into the payload (`/items/0/sku`; empty for the whole payload).
    pub pointer: String,
    pub message: String,
}
