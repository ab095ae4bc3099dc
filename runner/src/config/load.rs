//! Reading pipeline files: TOML syntax and shape first (every section checked, every problem
//! kept), then the layering `defaults < file < RUNNER_* environment < command-line flags`,
//! then [`compile`](super::compile::compile).

use std::path::{Path, PathBuf};

use figment::providers::{Env, Serialized};
use figment::Figment;
use serde_json::json;

use super::compile::{check_system, compile};
use super::model::Pipeline;
use super::shape::{self, Shaped};
use super::spec::PipelineSpec;
use crate::diagnostic::{Diagnostic, Diagnostics, KeyPath, Problem, SourceMap};

/// Values that win over the file: command-line flags.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub brokers: Option<String>,
    pub database_url: Option<String>,
    pub listen: Option<String>,
}

/// Values a file may override: the built-in defaults of the mode the runner is started in.
#[derive(Debug, Clone, Default)]
pub struct Defaults {
    pub brokers: Option<String>,
    pub database_url: Option<String>,
    /// Whether chaos is on unless a file or the environment says otherwise (`runner up`: on).
    pub chaos_enabled: Option<bool>,
}

#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    pub defaults: Defaults,
    pub overrides: Overrides,
    /// Read `RUNNER_*` environment variables (off in tests that must not see the caller's).
    pub use_environment: bool,
}

/// One pipeline file, compiled.
pub struct LoadedPipeline {
    pub path: PathBuf,
    pub pipeline: Pipeline,
    pub source: SourceMap,
    /// The spec after layering: what reloads compare, section by section.
    pub spec: PipelineSpec,
    /// A hash of the file's text, shown by the runtime's config endpoint.
    pub hash: String,
}

/// Environment variables with a short name, and the key each one sets.
pub const ENVIRONMENT_ALIASES: &[(&str, &str)] =
    &[("brokers", "broker.brokers"), ("database_url", "store.url"), ("listen", "service.listen")];

/// Lists the pipeline files (`*.toml`) of a directory, sorted by name.
pub fn pipeline_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    Ok(files)
}

/// Checks the TOML syntax (an error there stops everything), then the shape of every value
/// (see [`shape`](super::shape)).
pub fn parse_spec(source: &SourceMap, text: &str) -> Result<Shaped, Vec<Diagnostic>> {
    parse_spec_as::<PipelineSpec>(source, text)
}

/// As [`parse_spec`], for a file of another shape `T` (a game-day scenario).
pub fn parse_spec_as<T: serde::de::DeserializeOwned>(
    source: &SourceMap,
    text: &str,
) -> Result<Shaped, Vec<Diagnostic>> {
    let table: toml::Table = match toml::from_str(text) {
        Ok(table) => table,
        Err(e) => {
            let offset = e.span().map_or(0, |s| s.start);
            let message = e.message().trim().to_string();
            return Err(vec![source.at_offset(offset, format!("invalid TOML: {message}"))]);
        }
    };
    Ok(shape::check_as::<T>(source, table))
}

/// Reads, layers and compiles one pipeline file.
pub fn load(path: &Path, options: &LoadOptions) -> Result<LoadedPipeline, Diagnostics> {
    let text = read_pipeline_file(path)
        .map_err(|message| Diagnostics(vec![Diagnostic { file: path.to_path_buf(), line: 1, column: 1, message }]))?;
    load_text(path, &text, options)
}

/// The largest pipeline file read: a pipeline is a page of settings, never megabytes.
pub const MAX_FILE_BYTES: u64 = 1024 * 1024;

/// Reads a pipeline file: at most [`MAX_FILE_BYTES`], UTF-8; or why not.
pub fn read_pipeline_file(path: &Path) -> Result<String, String> {
    let size = std::fs::metadata(path).map_err(|e| format!("cannot read the pipeline file: {e}"))?.len();
    if size > MAX_FILE_BYTES {
        return Err(format!(
            "the file is {size} bytes; pipeline files are limited to {MAX_FILE_BYTES} bytes (1 MiB): split it or remove what it does not need"
        ));
    }
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read the pipeline file: {e}"))?;
    String::from_utf8(bytes).map_err(|e| {
        let at = e.utf8_error().valid_up_to();
        format!("the file is not UTF-8 text (invalid byte at offset {at}); save it as UTF-8")
    })
}

/// As [`load`], with the file's text already read.
pub fn load_text(path: &Path, text: &str, options: &LoadOptions) -> Result<LoadedPipeline, Diagnostics> {
    if text.len() as u64 > MAX_FILE_BYTES {
        let message =
            format!("the file is {} bytes; pipeline files are limited to {MAX_FILE_BYTES} bytes (1 MiB)", text.len());
        return Err(Diagnostics(vec![Diagnostic { file: path.to_path_buf(), line: 1, column: 1, message }]));
    }
    let source = SourceMap::new(path, text);
    let shaped = parse_spec(&source, text).map_err(Diagnostics)?;
    let Some(document) = &shaped.document else { return Err(Diagnostics(shaped.problems)) };
    let spec = layered(document, options).map_err(|e| Diagnostics(vec![source.at_offset(0, e)]))?;
    let default_name = path.file_stem().and_then(|s| s.to_str()).unwrap_or("service");
    let mut pipeline = match compile(&spec, default_name) {
        Ok(pipeline) if shaped.problems.is_empty() => pipeline,
        Ok(_) => return Err(Diagnostics(shaped.problems)),
        Err(problems) => {
            let section_removed = shape::removed_a_section(&shaped);
            let problems: Vec<Problem> = problems
                .into_iter()
                .map(|p| Problem { path: shaped.file_path(&p.path), ..p })
                // "Runs nothing" is no news when a section was left out for its shape, nor is
                // a problem with a value that was taken out.
                .filter(|p| !(shaped.is_about_removed(&p.path) || p.path.0.is_empty() && section_removed))
                .collect();
            let mut diagnostics = shaped.problems;
            diagnostics.extend(problems.into_iter().map(|p| source.at(&p.path, p.anchor, p.message)));
            diagnostics.sort_by_key(|d| (d.line, d.column));
            return Err(Diagnostics(diagnostics));
        }
    };
    attach_schemas(path, &spec, &source, &mut pipeline)?;
    if let Some(gameday) = &mut pipeline.gameday {
        // Scenario files and the system's objectives are found beside the pipeline file.
        let base = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        gameday.scenarios_dir = base.join(&gameday.scenarios_dir);
        gameday.system_dir = base.to_path_buf();
    }
    let hash = format!("{:016x}", crate::chaos::stable_hash("config", text));
    Ok(LoadedPipeline { path: path.to_path_buf(), pipeline, source, spec, hash })
}

/// Reads the event schemas named by `[schemas] dir` (relative to the pipeline file), or
/// from `../schemas/events` beside it when that folder exists.
fn attach_schemas(
    path: &Path,
    spec: &PipelineSpec,
    source: &SourceMap,
    pipeline: &mut Pipeline,
) -> Result<(), Diagnostics> {
    let base = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let configured = spec.schemas.as_ref().and_then(|s| s.dir.clone());
    let dir = base.join(configured.as_deref().unwrap_or("../schemas/events"));
    if configured.is_none() && !dir.is_dir() {
        return Ok(());
    }
    let registry = crate::schemas::SchemaRegistry::load(&dir).map_err(|problems| {
        let at = KeyPath::section("schemas").key("dir");
        Diagnostics(problems.into_iter().map(|p| source.at_path(&at, p)).collect())
    })?;
    pipeline.schemas_dir = Some(dir);
    pipeline.schemas = std::sync::Arc::new(registry);
    Ok(())
}

/// Loads several files and runs the system-wide checks over them (and over `context`,
/// pipelines that are part of the system but not being checked themselves).
pub fn load_system(
    paths: &[PathBuf],
    context: &[PathBuf],
    options: &LoadOptions,
) -> Result<Vec<LoadedPipeline>, Diagnostics> {
    let mut diagnostics = Vec::new();
    let mut loaded = Vec::new();
    for path in paths {
        match load(path, options) {
            Ok(pipeline) => loaded.push(pipeline),
            Err(Diagnostics(mut d)) => diagnostics.append(&mut d),
        }
    }
    // `pipelines/a.toml` and `./pipelines/a.toml` are the same file.
    let same = |a: &PathBuf, b: &PathBuf| {
        a == b || (a.canonicalize().ok().is_some() && a.canonicalize().ok() == b.canonicalize().ok())
    };
    let extra: Vec<LoadedPipeline> =
        context.iter().filter(|c| !paths.iter().any(|p| same(p, c))).filter_map(|p| load(p, options).ok()).collect();
    let all: Vec<&Pipeline> = loaded.iter().chain(extra.iter()).map(|l| &l.pipeline).collect();
    for (index, problem) in check_system(&all) {
        if let Some(file) = loaded.get(index) {
            diagnostics.push(file.source.at(&problem.path, problem.anchor, problem.message));
        }
    }
    // A broken schema file is one problem, however many pipelines share the folder.
    let mut seen = std::collections::HashSet::new();
    diagnostics.retain(|d| {
        let schema_load = d.message.starts_with("cannot read the event schema directory")
            || d.message.split_once(": ").is_some_and(|(head, _)| head.contains(".schema.json"));
        !schema_load || seen.insert(d.message.clone())
    });
    // File by file, each in file order.
    diagnostics.sort_by(|a, b| (&a.file, a.line, a.column).cmp(&(&b.file, b.line, b.column)));
    if diagnostics.is_empty() {
        Ok(loaded)
    } else {
        Err(Diagnostics(diagnostics))
    }
}

/// The file's well-shaped sections layered between the defaults and the overrides.
fn layered(file: &toml::Table, options: &LoadOptions) -> Result<PipelineSpec, String> {
    let mut defaults = json!({});
    if let Some(brokers) = &options.defaults.brokers {
        defaults["broker"] = json!({ "brokers": brokers });
    }
    if let Some(url) = &options.defaults.database_url {
        defaults["store"] = json!({ "url": url });
    }
    if let Some(enabled) = options.defaults.chaos_enabled {
        defaults["chaos"] = json!({ "enabled": enabled });
    }
    let mut figment = Figment::from(Serialized::defaults(defaults)).merge(Serialized::defaults(file));
    if options.use_environment {
        figment = figment.merge(Env::prefixed("RUNNER_").filter_map(|key| {
            let key = key.as_str().to_ascii_lowercase();
            if let Some((_, target)) = ENVIRONMENT_ALIASES.iter().find(|(alias, _)| *alias == key) {
                return Some(target.to_string().into());
            }
            // RUNNER_BROKER__PARTITIONS=8 sets broker.partitions; RUNNER_ADMIN__TOKENS__OPERATOR
            // sets an admin token; RUNNER_GAMEDAY__CHAOS_URL where a deployment's chaos-svc
            // answers. Only these sections.
            let nested = key.replace("__", ".");
            ["broker.", "store.", "service.", "admin.", "chaos.", "gameday."]
                .iter()
                .any(|p| nested.starts_with(p))
                .then(|| nested.into())
        }));
    }
    let o = &options.overrides;
    let mut flags = json!({});
    if let Some(brokers) = &o.brokers {
        flags["broker"] = json!({ "brokers": brokers });
    }
    if let Some(url) = &o.database_url {
        flags["store"] = json!({ "url": url });
    }
    if let Some(listen) = &o.listen {
        flags["service"] = json!({ "listen": listen });
    }
    figment = figment.merge(Serialized::defaults(flags));
    figment.extract::<PipelineSpec>().map_err(|e| {
        // figment names the layer (file, `RUNNER_` environment variable, flag) in its message.
        let problems: Vec<String> = e.into_iter().map(|error| error.to_string()).collect();
        format!("invalid setting: {}; fix the value or remove the override", problems.join("; "))
    })
}
