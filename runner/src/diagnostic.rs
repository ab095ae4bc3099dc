//! Diagnostics: problems named by key path ([`Problem`]), and located by line and column
//! in one pipeline file ([`Diagnostic`]).
//!
//! Semantic checks (the config compiler, handler parameters, chaos rules) name the offending
//! value by its path (`saga.steps[1].timeout`), built with [`KeyPath::section`], [`KeyPath::key`]
//! and [`KeyPath::index`]; [`SourceMap`] turns that path into a position using the spans of the
//! parsed document. This module sits below every component: it imports none of them.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// A key path into a pipeline document, e.g. `saga.steps[1].timeout`.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct KeyPath(pub Vec<Segment>);

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Segment {
    Key(String),
    Index(usize),
}

impl KeyPath {
    pub fn root() -> Self {
        KeyPath(Vec::new())
    }

    /// The path of a top-level section, e.g. `relay`.
    pub fn section(name: &str) -> Self {
        KeyPath(vec![Segment::Key(name.to_string())])
    }

    /// Parses `a.b[2].c` (for tests and tools; code builds paths with `section`/`key`/`index`).
    pub fn parse(text: &str) -> Self {
        let mut segments = Vec::new();
        for part in text.split('.').filter(|p| !p.is_empty()) {
            let (key, rest) = part.split_once('[').map_or((part, ""), |(k, r)| (k, r));
            if !key.is_empty() {
                segments.push(Segment::Key(key.to_string()));
            }
            for index in rest.split('[') {
                if let Ok(i) = index.trim_end_matches(']').parse() {
                    segments.push(Segment::Index(i));
                }
            }
        }
        KeyPath(segments)
    }

    pub fn key(&self, key: &str) -> Self {
        let mut next = self.clone();
        next.0.push(Segment::Key(key.to_string()));
        next
    }

    pub fn index(&self, index: usize) -> Self {
        let mut next = self.clone();
        next.0.push(Segment::Index(index));
        next
    }

    /// This path followed by `relative` (a path relative to the value at this one).
    pub fn join(&self, relative: &KeyPath) -> Self {
        let mut next = self.clone();
        next.0.extend(relative.0.iter().cloned());
        next
    }
}

impl fmt::Display for KeyPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, segment) in self.0.iter().enumerate() {
            match segment {
                Segment::Key(key) if i == 0 => write!(f, "{key}")?,
                Segment::Key(key) => write!(f, ".{key}")?,
                Segment::Index(index) => write!(f, "[{index}]")?,
            }
        }
        Ok(())
    }
}

/// What a diagnostic points at when the whole key path exists.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Anchor {
    /// The value (a wrong type, a bad setting); a table's key when the path names a table.
    #[default]
    Value,
    /// The key itself (an unknown key, a key to remove).
    Key,
}

/// A problem at a key path of one file, before it is located.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub path: KeyPath,
    /// Whether the diagnostic points at the key or at its value.
    pub anchor: Anchor,
    pub message: String,
}

impl Problem {
    /// A problem with the value at `path`.
    pub fn at_value(path: KeyPath, message: impl Into<String>) -> Self {
        Problem { path, anchor: Anchor::Value, message: message.into() }
    }

    /// A problem with the key at `path` itself (unknown, or to be removed).
    pub fn at_key(path: KeyPath, message: impl Into<String>) -> Self {
        Problem { path, anchor: Anchor::Key, message: message.into() }
    }

    /// The same problem, its path taken relative to `base`.
    pub fn under(self, base: &KeyPath) -> Self {
        Problem { path: base.join(&self.path), ..self }
    }
}

/// A problem found in a pipeline file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub file: PathBuf,
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}: {}", self.file.display(), self.line, self.column, self.message)
    }
}

/// A list of diagnostics, printable one per line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Diagnostics(pub Vec<Diagnostic>);

/// At most this many diagnostics are printed; the rest are counted in one last line.
pub const MAX_PRINTED_DIAGNOSTICS: usize = 100;

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.0.iter().take(MAX_PRINTED_DIAGNOSTICS).enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{d}")?;
        }
        if self.0.len() > MAX_PRINTED_DIAGNOSTICS {
            write!(
                f,
                "\n... and {} more problems not shown; fix these first and check again",
                self.0.len() - MAX_PRINTED_DIAGNOSTICS
            )?;
        }
        Ok(())
    }
}

impl std::error::Error for Diagnostics {}

/// The text of one pipeline file with the spans of its keys and values.
pub struct SourceMap {
    file: PathBuf,
    text: String,
    document: Option<toml_edit::ImDocument<String>>,
}

impl SourceMap {
    pub fn new(file: &Path, text: &str) -> Self {
        let document = toml_edit::ImDocument::parse(text.to_string()).ok();
        SourceMap { file: file.to_path_buf(), text: text.to_string(), document }
    }

    pub fn file(&self) -> &Path {
        &self.file
    }

    /// A diagnostic at a byte offset of the file.
    pub fn at_offset(&self, offset: usize, message: impl Into<String>) -> Diagnostic {
        let (line, column) = line_column(&self.text, offset);
        Diagnostic { file: self.file.clone(), line, column, message: message.into() }
    }

    /// A diagnostic at the value (or key) named by `path`; falls back to the nearest
    /// enclosing element that exists, so a missing key points at its table.
    pub fn at_path(&self, path: &KeyPath, message: impl Into<String>) -> Diagnostic {
        self.at(path, Anchor::Value, message)
    }

    /// A diagnostic at the key named by `path` (for a key that should not be there),
    /// with the same fall-back as [`at_path`](Self::at_path).
    pub fn at_key(&self, path: &KeyPath, message: impl Into<String>) -> Diagnostic {
        self.at(path, Anchor::Key, message)
    }

    /// A diagnostic at `path`, pointing at its key or its value.
    pub fn at(&self, path: &KeyPath, anchor: Anchor, message: impl Into<String>) -> Diagnostic {
        let offset = self.locate(path, anchor).map_or(0, |span| span.start);
        self.at_offset(offset, message)
    }

    fn locate(&self, path: &KeyPath, anchor: Anchor) -> Option<Range<usize>> {
        let document = self.document.as_ref()?;
        let mut best: Option<Range<usize>> = None;
        let mut current = Node::Table(document.as_table());
        let mut walked = 0;
        for segment in &path.0 {
            let Some(next) = current.child(segment, &mut best) else { break };
            current = next;
            walked += 1;
        }
        // When the whole path exists and ends at a plain value, point at the value itself.
        if walked == path.0.len() && anchor == Anchor::Value {
            if let Some(span) = current.value_span() {
                return Some(span);
            }
        }
        best
    }
}

#[derive(Clone, Copy)]
enum Node<'a> {
    Table(&'a toml_edit::Table),
    Item(&'a toml_edit::Item),
    Value(&'a toml_edit::Value),
}

impl<'a> Node<'a> {
    /// The child named by `segment`, remembering the span of the key or element reached.
    fn child(self, segment: &Segment, best: &mut Option<Range<usize>>) -> Option<Node<'a>> {
        use toml_edit::{Item, Value};
        let table_like: Option<&'a dyn toml_edit::TableLike> = match self {
            Node::Table(t) | Node::Item(Item::Table(t)) => Some(t),
            Node::Item(Item::Value(Value::InlineTable(t))) | Node::Value(Value::InlineTable(t)) => Some(t),
            _ => None,
        };
        match segment {
            Segment::Key(key) => {
                let table = table_like?;
                let (k, item) = table.get_key_value(key)?;
                if let Some(span) = k.span() {
                    *best = Some(span);
                }
                Some(match item {
                    Item::Value(v) => Node::Value(v),
                    other => Node::Item(other),
                })
            }
            Segment::Index(i) => match self {
                Node::Item(Item::ArrayOfTables(array)) => {
                    let table = array.get(*i)?;
                    if let Some(span) = table.span() {
                        *best = Some(span);
                    }
                    Some(Node::Table(table))
                }
                Node::Item(Item::Value(Value::Array(array))) | Node::Value(Value::Array(array)) => {
                    let value = array.get(*i)?;
                    if let Some(span) = value.span() {
                        *best = Some(span);
                    }
                    Some(Node::Value(value))
                }
                _ => None,
            },
        }
    }

    fn value_span(&self) -> Option<Range<usize>> {
        match self {
            Node::Item(toml_edit::Item::Value(v)) => v.span(),
            Node::Value(v) => v.span(),
            _ => None,
        }
    }
}

/// 1-based line and column (in characters) of a byte offset.
pub fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}
