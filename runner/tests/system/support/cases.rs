//! Config-check cases as data: files written to a temporary directory and loaded as one
//! system, the diagnostics compared with the expected ones, every failing case reported at once.

use std::path::{Path, PathBuf};

use runner::config::{load_system, Diagnostics, LoadOptions};

/// Writes `files` (name, TOML text) into `dir`, each text without its leading newline (so a
/// case's line 1 is the line after `r#"`); returns their paths.
pub fn write_files(dir: &Path, files: &[(&str, &str)]) -> Vec<PathBuf> {
    files
        .iter()
        .map(|(name, toml)| {
            let path = dir.join(name);
            std::fs::write(&path, toml.strip_prefix('\n').unwrap_or(toml)).expect("the file is written");
            path
        })
        .collect()
}

/// The diagnostics of `files` loaded as one system with `context`, as printed: file names
/// relative to `dir`, and `dir` itself written `<tmp>` in messages.
pub fn system_diagnostics(dir: &Path, files: &[PathBuf], context: &[PathBuf]) -> Vec<String> {
    let tmp = dir.display().to_string();
    match load_system(files, context, &LoadOptions::default()) {
        Ok(_) => Vec::new(),
        Err(Diagnostics(diagnostics)) => diagnostics
            .into_iter()
            .map(|mut d| {
                d.file = d.file.strip_prefix(dir).expect("diagnostics name the checked files").to_path_buf();
                d.to_string().replace(&tmp, "<tmp>")
            })
            .collect(),
    }
}

/// Fails naming every case whose diagnostics are not exactly the expected ones; `results` are
/// (case name, expected, actual), `what` names the kind of case in the message.
pub fn assert_cases<'a>(what: &str, results: impl IntoIterator<Item = (&'a str, &'a [&'a str], Vec<String>)>) {
    let mut total = 0;
    let failures: Vec<String> = results
        .into_iter()
        .inspect(|_| total += 1)
        .filter(|(_, expected, actual)| actual != expected)
        .map(|(name, expected, actual)| format!("case `{name}`\n  expected: {expected:#?}\n  actual:   {actual:#?}"))
        .collect();
    assert!(failures.is_empty(), "{} of {total} {what} failed:\n{}", failures.len(), failures.join("\n"));
}
