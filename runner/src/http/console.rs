//! The web console (`ui/`, Angular) as the runner serves it: every path that is not an API
//! route answers a file of the built console, or its `index.html` (the app routes in the
//! browser). Paths under `/api/` that match no route answer a JSON `404`.
//!
//! The console is served from its built folder, not embedded in the binary: rebuilding the
//! UI then needs no Rust build, the binary stays small, and a container image copies the
//! folder beside the binary. The folder is `RUNNER_CONSOLE_DIR`, else
//! `ui/dist/console/browser` under the working directory (`scripts/up` runs from the
//! repository's root). A console that was never built answers a page saying how to build it.
//!
//! Where the console links out — a trace UI and Grafana — is the deployment's to say:
//! `RUNNER_CONSOLE_TRACE_URL` (with `{traceId}`) and `RUNNER_CONSOLE_GRAFANA_URL`, served at
//! `GET /api/console/settings`; a browser may override both for itself.

use std::path::{Component, Path, PathBuf};

use axum::body::Body;
use axum::http::{header, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use serde::Serialize;

use super::ApiError;

/// Where the built console is looked for when `RUNNER_CONSOLE_DIR` is not set.
pub const DEFAULT_DIR: &str = "ui/dist/console/browser";

/// The folder the console is served from.
pub fn console_dir() -> PathBuf {
    std::env::var_os("RUNNER_CONSOLE_DIR").map(PathBuf::from).unwrap_or_else(|| PathBuf::from(DEFAULT_DIR))
}

/// Whether a built console is there.
pub fn is_built(dir: &Path) -> bool {
    dir.join("index.html").is_file()
}

/// The environment variables of the console's links.
pub const TRACE_URL_VAR: &str = "RUNNER_CONSOLE_TRACE_URL";
pub const GRAFANA_URL_VAR: &str = "RUNNER_CONSOLE_GRAFANA_URL";
/// The longest link address taken.
const MAX_URL_LEN: usize = 2048;

/// Where the console links out to, as `GET /api/console/settings` answers.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConsoleLinks {
    /// A trace UI's page of one trace, `{traceId}` standing for its id.
    pub trace_url: Option<String>,
    pub grafana_url: Option<String>,
}

impl ConsoleLinks {
    /// The links the environment sets; an unusable one is an error that names the variable.
    pub fn from_env() -> Result<Self, String> {
        let read = |var: &str| match std::env::var(var) {
            Ok(value) if value.trim().is_empty() => Ok(None),
            Ok(value) => Ok(Some(value)),
            Err(std::env::VarError::NotPresent) => Ok(None),
            Err(std::env::VarError::NotUnicode(_)) => Err(format!("{var} is not UTF-8 text")),
        };
        Self::checked(read(TRACE_URL_VAR)?, read(GRAFANA_URL_VAR)?)
    }

    /// Both links checked: http(s) addresses without spaces or control characters (a link
    /// must never become `javascript:`), the trace one holding `{traceId}`.
    pub fn checked(trace_url: Option<String>, grafana_url: Option<String>) -> Result<Self, String> {
        let web = |var: &str, value: Option<String>| -> Result<Option<String>, String> {
            let Some(value) = value.map(|v| v.trim().to_owned()) else { return Ok(None) };
            let shown = crate::chaos::rule::shortened(&value);
            let scheme_ok = value.starts_with("http://") || value.starts_with("https://");
            if value.len() > MAX_URL_LEN || !scheme_ok || value.chars().any(|c| c.is_whitespace() || c.is_control()) {
                return Err(format!(
                    "{var} is `{shown}`; give an http:// or https:// address without spaces, at most {MAX_URL_LEN} characters"
                ));
            }
            Ok(Some(value.trim_end_matches('/').to_owned()))
        };
        let trace_url = web(TRACE_URL_VAR, trace_url)?;
        if let Some(url) = trace_url.as_deref().filter(|url| !url.contains("{traceId}")) {
            let shown = crate::chaos::rule::shortened(url);
            return Err(format!(
                "{TRACE_URL_VAR} is `{shown}` without `{{traceId}}`; say where the trace id goes, e.g. http://jaeger:16686/trace/{{traceId}}"
            ));
        }
        Ok(ConsoleLinks { trace_url, grafana_url: web(GRAFANA_URL_VAR, grafana_url)? })
    }
}

/// `GET /api/console/settings`: where the console links out to.
pub fn settings_routes(links: ConsoleLinks) -> super::Routes {
    super::Routes::new().get("/api/console/settings", settings).with_state(links)
}

async fn settings(axum::extract::State(links): axum::extract::State<ConsoleLinks>) -> axum::Json<ConsoleLinks> {
    axum::Json(links)
}

/// `router` with the console as its fallback for every path no route takes.
pub fn with_console(router: Router, dir: PathBuf) -> Router {
    router.fallback(move |method: Method, uri: Uri| {
        let dir = dir.clone();
        async move { answer(&dir, &method, uri.path()).await }
    })
}

async fn answer(dir: &Path, method: &Method, path: &str) -> Response {
    if path == "/api" || path.starts_with("/api/") {
        let shown = crate::chaos::rule::shortened(path);
        return ApiError::new(
            StatusCode::NOT_FOUND,
            format!("no route {method} {shown}; GET /api/runtime/routes lists them"),
        )
        .into_response();
    }
    if method != Method::GET && method != Method::HEAD {
        return ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "the console's pages are only read (GET)")
            .into_response();
    }
    if !is_built(dir) {
        return not_built(dir);
    }
    // A file of the build (scripts, styles, fonts), else the app's page: the browser routes.
    match file_under(dir, path) {
        Some(file) => match tokio::fs::read(&file).await {
            Ok(bytes) => file_response(&file, bytes, true),
            Err(_) => index(dir).await,
        },
        None => index(dir).await,
    }
}

/// The file `path` names inside `dir`, if it is a plain file there. `..`, absolute parts and
/// anything not a normal name are refused, so nothing outside the folder is ever read.
fn file_under(dir: &Path, path: &str) -> Option<PathBuf> {
    let relative = Path::new(path.trim_start_matches('/'));
    if path.len() > 1024 || path.contains('\0') || relative.as_os_str().is_empty() {
        return None;
    }
    if !relative.components().all(|c| matches!(c, Component::Normal(_))) {
        return None;
    }
    let file = dir.join(relative);
    file.is_file().then_some(file)
}

async fn index(dir: &Path) -> Response {
    match tokio::fs::read(dir.join("index.html")).await {
        Ok(bytes) => file_response(Path::new("index.html"), bytes, false),
        Err(_) => not_built(dir),
    }
}

fn file_response(file: &Path, bytes: Vec<u8>, hashed_name_may_be_cached: bool) -> Response {
    let kind = match file.extension().and_then(|e| e.to_str()).unwrap_or_default() {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" | "map" => "application/json",
        "svg" => "image/svg+xml",
        "ico" => "image/x-icon",
        "png" => "image/png",
        "woff2" => "font/woff2",
        "txt" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    };
    // index.html must be fetched again after a rebuild; the other files carry a hash in their name.
    let cache = if hashed_name_may_be_cached && kind != "text/html; charset=utf-8" {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    };
    let mut response = Response::new(Body::from(bytes));
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    response
}

/// The page of a console that was never built: what to run.
fn not_built(dir: &Path) -> Response {
    let page = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Chaos Symphony: console not built</title></head>\
         <body><main><h1>The console is not built</h1>\
         <p>No <code>index.html</code> in <code>{}</code>. Build it from the repository's root with</p>\
         <pre>npm --prefix ui ci &amp;&amp; npm --prefix ui run build</pre>\
         <p>(<code>scripts/up</code> does it for you), or point <code>RUNNER_CONSOLE_DIR</code> at a built console. \
         The APIs answer meanwhile: <a href=\"/api/runtime/routes\">/api/runtime/routes</a> lists them.</p></main></body></html>",
        escape(&dir.display().to_string())
    );
    (StatusCode::SERVICE_UNAVAILABLE, [(header::CONTENT_TYPE, "text/html; charset=utf-8")], page).into_response()
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_are_http_addresses_and_the_trace_link_says_where_the_id_goes() {
        let links = ConsoleLinks::checked(
            Some("http://jaeger:16686/trace/{traceId}".into()),
            Some(" https://grafana.example/ ".into()),
        )
        .unwrap();
        assert_eq!(links.trace_url.as_deref(), Some("http://jaeger:16686/trace/{traceId}"));
        assert_eq!(links.grafana_url.as_deref(), Some("https://grafana.example"));
        assert_eq!(ConsoleLinks::checked(None, None).unwrap(), ConsoleLinks::default());
        for (trace, grafana, says) in [
            (Some("javascript:alert(1)//{traceId}"), None, "RUNNER_CONSOLE_TRACE_URL is `javascript:"),
            (Some("http://jaeger/trace/"), None, "without `{traceId}`"),
            (None, Some("http://grafana\u{0}x"), "RUNNER_CONSOLE_GRAFANA_URL"),
            (None, Some("http://a b"), "without spaces"),
        ] {
            let error = ConsoleLinks::checked(trace.map(String::from), grafana.map(String::from)).unwrap_err();
            assert!(error.contains(says), "{error}");
        }
        let long = format!("http://grafana/{}", "x".repeat(3000));
        assert!(ConsoleLinks::checked(None, Some(long)).unwrap_err().contains("at most 2048"));
    }

    #[test]
    fn only_plain_files_inside_the_folder_are_served() {
        let dir = std::env::temp_dir().join(format!("console-test-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("assets")).unwrap();
        std::fs::write(dir.join("main.js"), "x").unwrap();
        std::fs::write(dir.join("assets/a.css"), "y").unwrap();
        assert_eq!(file_under(&dir, "/main.js"), Some(dir.join("main.js")));
        assert_eq!(file_under(&dir, "/assets/a.css"), Some(dir.join("assets/a.css")));
        for hostile in ["/../etc/passwd", "/assets/../../x", "/", "//etc/passwd", "/main.js\0", "/orders/42", "/assets"]
        {
            assert_eq!(file_under(&dir, hostile), None, "{hostile:?}");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
