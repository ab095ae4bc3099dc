//! The shape pass: checks a parsed TOML document against the spec types and reports every
//! value of the wrong shape, trimming each one away so the next is found and the rest of the
//! file can still be compiled (one mistake hides no other).
//!
//! serde stops at the first error, so the pass repeats: report it, remove the value at fault
//! (an unknown or ill-typed key; a table lacking a required key), try again. Removing a
//! table from an array of tables renumbers the tables after it; [`Shaped::file_path`] maps a
//! path of the trimmed document back to the file's own numbering. A saga with any shape
//! problem is left out of compiling entirely: its steps refer to each other.

use std::collections::BTreeMap;

/// Shape problems reported per file at most: each round deserializes the whole document, so
/// this keeps a file full of mistakes (thousands of unknown tables) linear to check.
pub const MAX_SHAPE_PROBLEMS: usize = 50;

use crate::diagnostic::{Anchor, Diagnostic, Diagnostics, KeyPath, Segment, SourceMap};

/// The document with every ill-shaped value trimmed away, and what was wrong.
pub struct Shaped {
    /// What is left to compile, or `None` when nothing sensible is.
    pub document: Option<toml::Table>,
    /// One diagnostic per value of the wrong shape, in file order.
    pub problems: Vec<Diagnostic>,
    /// For each array a table was removed from (by its path in the trimmed document), the
    /// file's index of each table left.
    renumbered: BTreeMap<KeyPath, Vec<usize>>,
    /// Paths (in the file's numbering) of what was removed: compile problems there or below
    /// are about the removal, not the file.
    removed: Vec<KeyPath>,
}

impl Shaped {
    /// A path of the trimmed document as the file numbers it.
    pub fn file_path(&self, path: &KeyPath) -> KeyPath {
        let mut prefix = KeyPath::root();
        let mut mapped = KeyPath::root();
        for segment in &path.0 {
            let segment = match segment {
                Segment::Index(i) => {
                    Segment::Index(self.renumbered.get(&prefix).and_then(|kept| kept.get(*i)).copied().unwrap_or(*i))
                }
                key => key.clone(),
            };
            prefix.0.push(match &segment {
                Segment::Index(_) => path.0[prefix.0.len()].clone(),
                key => key.clone(),
            });
            mapped.0.push(segment);
        }
        mapped
    }

    /// Whether a compile problem at `path` (file numbering) stems from a removed value.
    pub fn is_about_removed(&self, path: &KeyPath) -> bool {
        self.removed.iter().any(|removed| path.0.starts_with(&removed.0))
    }

    /// The shape problems and the compile `problems` (trimmed-document paths) of a file of
    /// another type than a pipeline (a scenario, a test file), in file order; compile
    /// problems about a value the shape pass removed are left out.
    pub fn with_compile_problems(&self, source: &SourceMap, problems: Vec<crate::diagnostic::Problem>) -> Diagnostics {
        let mut diagnostics = self.problems.clone();
        diagnostics.extend(
            problems
                .into_iter()
                .map(|p| crate::diagnostic::Problem { path: self.file_path(&p.path), ..p })
                .filter(|p| !self.is_about_removed(&p.path))
                .map(|p| source.at(&p.path, p.anchor, p.message)),
        );
        diagnostics.sort_by_key(|d| (d.line, d.column));
        Diagnostics(diagnostics)
    }
}

/// Checks the shape of `table` as a `T` (a pipeline file, a game-day scenario), trimming what
/// is wrong (see the module docs).
pub fn check_as<T: serde::de::DeserializeOwned>(source: &SourceMap, table: toml::Table) -> Shaped {
    let mut document = toml::Value::Table(table);
    let mut shaped = Shaped { document: None, problems: Vec::new(), renumbered: BTreeMap::new(), removed: Vec::new() };
    // Tables a key was removed from: a "missing field" there is that key's, already reported.
    let mut trimmed: Vec<KeyPath> = Vec::new();
    let mut drop_saga = false;
    // Each round removes at least one value, so this bounds the rounds.
    let mut rounds = (count_values(&document) + 1).min(MAX_SHAPE_PROBLEMS);
    loop {
        let error = match serde_path_to_error::deserialize::<_, T>(document.clone()) {
            Ok(_) => break,
            Err(error) => error,
        };
        rounds -= 1;
        let path = key_path(error.path());
        // `message()` is the bare message: `to_string()` would add the toml crate's own context.
        let message = error.inner().message().trim().to_string();
        let missing = message.starts_with("missing field `");
        let file_path = shaped.file_path(&path);
        if !(missing && trimmed.contains(&path)) {
            // An unknown key: the path already ends at it; point at the key, not its value.
            let anchor = if message.starts_with("unknown field `") { Anchor::Key } else { Anchor::Value };
            let location = if path.0.is_empty() { String::new() } else { format!("`{file_path}`: ") };
            let text = match friendlier(&path) {
                Some(hint) if message.starts_with("invalid type") => hint.to_string(),
                _ => format!("{location}{message}"),
            };
            shaped.problems.push(source.at(&file_path, anchor, text));
        }
        drop_saga |= matches!(path.0.first(), Some(Segment::Key(section)) if section == "saga");
        // A missing key condemns its table; anything else condemns the value itself. A value
        // inside a list of plain values condemns the whole list.
        let mut target = path.clone();
        while matches!(target.0.last(), Some(Segment::Index(_))) && !is_table(&document, &target) {
            target.0.pop();
        }
        shaped.removed.push(shaped.file_path(&target));
        let removed = match target.0.last().cloned() {
            None => false,
            Some(Segment::Key(key)) => {
                let parent = KeyPath(target.0[..target.0.len() - 1].to_vec());
                let done = table_at(&mut document, &parent).is_some_and(|t| t.remove(&key).is_some());
                trimmed.push(parent);
                done
            }
            Some(Segment::Index(index)) => {
                let array_path = KeyPath(target.0[..target.0.len() - 1].to_vec());
                let len = array_at(&mut document, &array_path).map_or(0, |a| a.len());
                let kept = shaped.renumbered.entry(array_path.clone()).or_insert_with(|| (0..len).collect());
                if index < kept.len() {
                    kept.remove(index);
                }
                array_at(&mut document, &array_path)
                    .is_some_and(|a| (index < a.len()).then(|| a.remove(index)).is_some())
            }
        };
        if !removed || rounds == 0 {
            // Nothing more can be trimmed (or enough was found): report it, compile nothing.
            shaped.problems.sort_by_key(|d| (d.line, d.column));
            if removed {
                let more = format!(
                    "checking stopped after {MAX_SHAPE_PROBLEMS} keys of the wrong shape; fix these and check again"
                );
                shaped.problems.push(source.at_offset(0, more));
            }
            return shaped;
        }
    }
    let toml::Value::Table(mut table) = document else { return shaped };
    if drop_saga {
        table.remove("saga");
        shaped.removed.push(KeyPath::section("saga"));
    }
    shaped.problems.sort_by_key(|d| (d.line, d.column));
    shaped.document = Some(table);
    shaped
}

/// What to say instead of serde's words where a common mistake has a clearer fix.
fn friendlier(path: &KeyPath) -> Option<&'static str> {
    (*path == KeyPath::section("saga").key("steps"))
        .then_some("`saga.steps` must be an array of tables: write each step as [[saga.steps]]")
}

/// Whether a whole section (a top-level table, or one table of a top-level array such as
/// `[[consumers]]`) was taken out: then "this pipeline runs nothing" may only mean the section
/// was left out, and is no news.
pub fn removed_a_section(shaped: &Shaped) -> bool {
    shaped.removed.iter().any(|p| matches!(p.0.as_slice(), [Segment::Key(_)] | [Segment::Key(_), Segment::Index(_)]))
}

fn key_path(path: &serde_path_to_error::Path) -> KeyPath {
    let mut out = KeyPath::root();
    for segment in path.iter() {
        match segment {
            serde_path_to_error::Segment::Map { key } => out.0.push(Segment::Key(key.clone())),
            serde_path_to_error::Segment::Seq { index } => out.0.push(Segment::Index(*index)),
            _ => {}
        }
    }
    out
}

/// The value at `path`, if the path exists.
fn value_at<'a>(document: &'a toml::Value, path: &KeyPath) -> Option<&'a toml::Value> {
    let mut current = document;
    for segment in &path.0 {
        current = match (segment, current) {
            (Segment::Key(key), toml::Value::Table(table)) => table.get(key)?,
            (Segment::Index(i), toml::Value::Array(array)) => array.get(*i)?,
            _ => return None,
        };
    }
    Some(current)
}

fn value_at_mut<'a>(document: &'a mut toml::Value, path: &KeyPath) -> Option<&'a mut toml::Value> {
    let mut current = document;
    for segment in &path.0 {
        current = match (segment, current) {
            (Segment::Key(key), toml::Value::Table(table)) => table.get_mut(key)?,
            (Segment::Index(i), toml::Value::Array(array)) => array.get_mut(*i)?,
            _ => return None,
        };
    }
    Some(current)
}

fn table_at<'a>(document: &'a mut toml::Value, path: &KeyPath) -> Option<&'a mut toml::Table> {
    match value_at_mut(document, path)? {
        toml::Value::Table(table) => Some(table),
        _ => None,
    }
}

fn array_at<'a>(document: &'a mut toml::Value, path: &KeyPath) -> Option<&'a mut Vec<toml::Value>> {
    match value_at_mut(document, path)? {
        toml::Value::Array(array) => Some(array),
        _ => None,
    }
}

fn is_table(document: &toml::Value, path: &KeyPath) -> bool {
    matches!(value_at(document, path), Some(toml::Value::Table(_)))
}

fn count_values(value: &toml::Value) -> usize {
    match value {
        toml::Value::Table(table) => 1 + table.values().map(count_values).sum::<usize>(),
        toml::Value::Array(array) => 1 + array.iter().map(count_values).sum::<usize>(),
        _ => 1,
    }
}
