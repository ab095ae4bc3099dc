//! The invariants ARCHITECTURE.md states about the code's structure, checked on the sources:
//! no cycle between the library's top-level modules, only the runtime and the binary import
//! `config`, only `transport` imports rdkafka, every route goes through the route table, and
//! every file says what it is for.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Each source file of the library with the top-level module it belongs to.
fn sources() -> Vec<(String, PathBuf, String)> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files
        .into_iter()
        .map(|path| {
            let relative = path.strip_prefix(&src).unwrap();
            let first = relative.components().next().unwrap().as_os_str().to_string_lossy();
            let module = first.trim_end_matches(".rs").to_string();
            let text = std::fs::read_to_string(&path).unwrap();
            (module, path, text)
        })
        .collect()
}

/// `crate::x` names used by each top-level module, restricted to top-level modules.
fn module_graph() -> BTreeMap<String, BTreeSet<String>> {
    let files = sources();
    let modules: BTreeSet<String> = files.iter().map(|(m, _, _)| m.clone()).collect();
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (module, _, text) in &files {
        for (i, _) in text.match_indices("crate::") {
            let name: String = text[i + 7..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
            if &name != module && modules.contains(&name) {
                graph.entry(module.clone()).or_default().insert(name);
            }
        }
    }
    graph
}

#[test]
fn top_level_modules_form_no_cycle() {
    let graph = module_graph();
    // Depth-first search; a module met again while on the path closes a cycle.
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(start) = path.iter().position(|n| n == node) {
            let mut cycle = path[start..].to_vec();
            cycle.push(node.to_string());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_string());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, graph, path, done) {
                return Some(cycle);
            }
        }
        path.pop();
        done.insert(node.to_string());
        None
    }
    let mut done = BTreeSet::new();
    for node in graph.keys() {
        if let Some(cycle) = visit(node, &graph, &mut Vec::new(), &mut done) {
            panic!("module cycle: {}", cycle.join(" -> "));
        }
    }
}

#[test]
fn only_the_runtime_and_the_binary_import_config() {
    let graph = module_graph();
    let importers: Vec<&String> =
        graph.iter().filter(|(_, uses)| uses.contains("config")).map(|(module, _)| module).collect();
    // Above `config`, beside the runtime: the generated deployment files, `runner test` and
    // `runner simulate`, which read compiled pipelines. Everything else is below it and must
    // not import it.
    assert_eq!(
        importers,
        ["deploy", "pipeline_tests", "runtime", "simulate"],
        "modules below `config` must not import it"
    );
}

#[test]
fn only_transport_imports_rdkafka() {
    let offenders: Vec<String> = sources()
        .into_iter()
        .filter(|(module, _, text)| module != "transport" && text.contains("rdkafka::"))
        .map(|(_, path, _)| path.display().to_string())
        .collect();
    assert!(offenders.is_empty(), "rdkafka used outside transport: {offenders:?}");
}

#[test]
fn every_source_file_says_what_it_is_for() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    for dir in ["src", "tests", "benches"] {
        rust_files(&root.join(dir), &mut files);
    }
    let silent: Vec<String> = files
        .iter()
        .filter(|path| !std::fs::read_to_string(path).unwrap().starts_with("//!"))
        .map(|path| path.display().to_string())
        .collect();
    assert!(silent.is_empty(), "files without a `//!` line at the top: {silent:?}");
}

#[test]
fn every_route_is_added_through_the_route_table() {
    // `Routes` (http/routes.rs) is the one caller of axum's `Router::route`, so every route
    // appears in `GET /api/runtime/routes`, which the admin-token walk reads.
    let offenders: Vec<String> = sources()
        .into_iter()
        .filter(|(_, path, text)| !path.ends_with("http/routes.rs") && text.contains(".route(\""))
        .map(|(_, path, _)| path.display().to_string())
        .collect();
    assert!(offenders.is_empty(), "routes added outside `http::Routes`: {offenders:?}");
}
