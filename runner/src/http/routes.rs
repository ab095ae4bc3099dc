//! The route table: every API route is added through [`Routes`], which builds the axum
//! router and, beside it, the list of what it serves — method, full path and who may call it.
//!
//! The list is served at `GET /api/runtime/routes` and walked by the tests: every route that
//! changes something must refuse a caller without an admin token, and the only writes open
//! to anyone are the ones declared with [`Routes::public_post`] (placing an order). No other
//! module calls axum's `Router::route` (an architecture test checks it), so a route cannot
//! be added without appearing in the table.

use axum::handler::Handler;
use axum::routing::{delete, get, post, put, MethodRouter};
use axum::Router;
use serde::Serialize;

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Access {
    /// A read: anyone.
    Read,
    /// A write the system exists to take from anyone (placing an order).
    Public,
    /// A write that changes how the system runs: a bearer token from `[admin] tokens`.
    Admin,
}

/// One line of the route table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RouteEntry {
    pub method: &'static str,
    pub path: String,
    pub access: Access,
}

/// An axum router together with the table of the routes it serves.
pub struct Routes<S = ()> {
    router: Router<S>,
    table: Vec<RouteEntry>,
}

impl<S: Clone + Send + Sync + 'static> Default for Routes<S> {
    fn default() -> Self {
        Self::new()
    }
}

impl<S: Clone + Send + Sync + 'static> Routes<S> {
    pub fn new() -> Self {
        Routes { router: Router::new(), table: Vec::new() }
    }

    fn add(mut self, method: &'static str, path: &str, access: Access, route: MethodRouter<S>) -> Self {
        self.router = self.router.route(path, route);
        self.table.push(RouteEntry { method, path: path.to_string(), access });
        self
    }

    /// A read anyone may make.
    pub fn get<H, T>(self, path: &str, handler: H) -> Self
    where
        H: Handler<T, S>,
        T: 'static,
    {
        self.add("GET", path, Access::Read, get(handler))
    }

    /// A write open to anyone; the system's business entry points only.
    pub fn public_post<H, T>(self, path: &str, handler: H) -> Self
    where
        H: Handler<T, S>,
        T: 'static,
    {
        self.add("POST", path, Access::Public, post(handler))
    }

    /// A write that needs the admin token (the handler takes an `Admin` argument).
    pub fn admin_post<H, T>(self, path: &str, handler: H) -> Self
    where
        H: Handler<T, S>,
        T: 'static,
    {
        self.add("POST", path, Access::Admin, post(handler))
    }

    /// As [`Routes::admin_post`], for `PUT`.
    pub fn admin_put<H, T>(self, path: &str, handler: H) -> Self
    where
        H: Handler<T, S>,
        T: 'static,
    {
        self.add("PUT", path, Access::Admin, put(handler))
    }

    /// As [`Routes::admin_post`], for `DELETE`.
    pub fn admin_delete<H, T>(self, path: &str, handler: H) -> Self
    where
        H: Handler<T, S>,
        T: 'static,
    {
        self.add("DELETE", path, Access::Admin, delete(handler))
    }

    /// `other`'s routes under `prefix` (which starts with `/` and has no trailing `/`).
    pub fn nest(mut self, prefix: &str, other: Routes<S>) -> Self {
        self.table.extend(other.table.into_iter().map(|mut entry| {
            entry.path = if entry.path == "/" { prefix.to_string() } else { format!("{prefix}{}", entry.path) };
            entry
        }));
        self.router = self.router.nest(prefix, other.router);
        self
    }

    /// Both sets of routes in one.
    pub fn merge(mut self, other: Routes<S>) -> Self {
        self.table.extend(other.table);
        self.router = self.router.merge(other.router);
        self
    }

    /// Changes the router (layers, body rules) without adding routes.
    pub fn map(mut self, change: impl FnOnce(Router<S>) -> Router<S>) -> Self {
        self.router = change(self.router);
        self
    }

    /// Gives the routes their state.
    pub fn with_state<S2>(self, state: S) -> Routes<S2> {
        Routes { router: self.router.with_state(state), table: self.table }
    }

    /// The table so far.
    pub fn table(&self) -> &[RouteEntry] {
        &self.table
    }

    /// The router and its table, sorted by path then method.
    pub fn into_parts(self) -> (Router<S>, Vec<RouteEntry>) {
        let mut table = self.table;
        table.sort_by(|a, b| (&a.path, a.method).cmp(&(&b.path, b.method)));
        (self.router, table)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_and_merged_routes_keep_their_full_paths() {
        let inner: Routes = Routes::new().get("/", || async {}).admin_post("/{id}/replay", || async {});
        let other: Routes = Routes::new().public_post("/api/orders", || async {});
        let (_, table) = Routes::new().nest("/api/dlq", inner).merge(other).into_parts();
        let lines: Vec<_> = table.iter().map(|e| (e.method, e.path.as_str(), e.access)).collect();
        assert_eq!(
            lines,
            vec![
                ("GET", "/api/dlq", Access::Read),
                ("POST", "/api/dlq/{id}/replay", Access::Admin),
                ("POST", "/api/orders", Access::Public),
            ]
        );
    }
}
