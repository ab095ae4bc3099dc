//! Paging of list endpoints, read one way by every API: the query's `limit` (bounded by the
//! service's maximum) and `cursor`, the `nextCursor` of the page answered, and the check
//! that a query names only parameters the endpoint knows.
//!
//! Lists are newest first by a growing number (an id or a sequence): the cursor is the key of
//! the last item of the previous page, and the next page holds the items below it.

use std::collections::HashMap;

use axum::http::StatusCode;

use super::ApiError;

/// The page size when the query does not give `limit` (or the maximum, when that is smaller).
pub const DEFAULT_LIMIT: u32 = 50;

/// Which page of a list a request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    /// How many items, from 1 to the service's maximum.
    pub limit: u32,
    /// The key of the last item of the previous page; none for the first page.
    pub cursor: Option<i64>,
}

impl Page {
    /// Reads `limit` (1 to `max`) and `cursor` (the `nextCursor` of a previous page) from the
    /// query; `400` naming the parameter.
    pub fn from_query(query: &HashMap<String, String>, max: u32) -> Result<Page, ApiError> {
        let bad = |message: String| ApiError::new(StatusCode::BAD_REQUEST, message);
        let limit = match query.get("limit") {
            Some(l) => match l.parse::<u32>() {
                Ok(n) if (1..=max).contains(&n) => n,
                _ => return Err(bad(format!("limit must be a number from 1 to {max}"))),
            },
            None => DEFAULT_LIMIT.min(max),
        };
        let cursor = match query.get("cursor") {
            Some(c) => Some(
                c.parse::<i64>().map_err(|_| bad("cursor must be the nextCursor of a previous page".to_string()))?,
            ),
            None => None,
        };
        Ok(Page { limit, cursor })
    }

    /// The `nextCursor` to answer with `items`, this page's items, whose keys `key` gives: the
    /// last one's key when the page is full (more may follow), else none.
    pub fn next_cursor<T>(&self, items: &[T], key: impl Fn(&T) -> i64) -> Option<String> {
        if items.len() == self.limit as usize {
            items.last().map(|item| key(item).to_string())
        } else {
            None
        }
    }
}

/// `400` when the query has a parameter outside `known` (the first in alphabetical order),
/// listing the known ones.
pub fn known_params(query: &HashMap<String, String>, known: &[&str]) -> Result<(), ApiError> {
    let unknown = query.keys().filter(|k| !known.contains(&k.as_str())).min();
    match unknown {
        None => Ok(()),
        Some(key) => {
            let choices = match known.split_last() {
                Some((last, [])) => (*last).to_string(),
                Some((last, rest)) => format!("{} and {last}", rest.join(", ")),
                None => "none".to_string(),
            };
            Err(ApiError::new(StatusCode::BAD_REQUEST, format!("unknown query parameter `{key}`; use {choices}")))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(text: &str) -> HashMap<String, String> {
        text.split('&')
            .filter(|p| !p.is_empty())
            .map(|p| {
                let (k, v) = p.split_once('=').unwrap_or((p, ""));
                (k.to_string(), v.to_string())
            })
            .collect()
    }

    #[test]
    fn reads_limit_and_cursor() {
        let cases: [(&str, u32, Result<Page, &str>); 8] = [
            ("", 500, Ok(Page { limit: 50, cursor: None })),
            ("", 20, Ok(Page { limit: 20, cursor: None })),
            ("limit=500&cursor=42", 500, Ok(Page { limit: 500, cursor: Some(42) })),
            ("limit=1", 500, Ok(Page { limit: 1, cursor: None })),
            ("limit=0", 500, Err("limit must be a number from 1 to 500")),
            ("limit=501", 500, Err("limit must be a number from 1 to 500")),
            ("limit=ten", 100, Err("limit must be a number from 1 to 100")),
            ("cursor=abc", 500, Err("cursor must be the nextCursor of a previous page")),
        ];
        for (text, max, expected) in cases {
            let got = Page::from_query(&query(text), max).map_err(|e| {
                assert_eq!(e.status, StatusCode::BAD_REQUEST);
                e.message
            });
            assert_eq!(got, expected.map_err(str::to_string), "{text}");
        }
    }

    #[test]
    fn a_full_page_points_at_the_next() {
        let page = Page { limit: 2, cursor: None };
        assert_eq!(page.next_cursor(&[9, 7], |n| *n), Some("7".to_string()));
        assert_eq!(page.next_cursor(&[9], |n| *n), None);
        assert_eq!(page.next_cursor::<i64>(&[], |n| *n), None);
    }

    #[test]
    fn names_the_unknown_parameter() {
        assert!(known_params(&query("limit=2&cursor=3"), &["limit", "cursor"]).is_ok());
        let message = |text: &str, known: &[&str]| known_params(&query(text), known).unwrap_err().message;
        assert_eq!(
            message("colour=red", &["limit", "cursor"]),
            "unknown query parameter `colour`; use limit and cursor"
        );
        assert_eq!(
            message("size=1&colour=red", &["status", "limit", "cursor"]),
            "unknown query parameter `colour`; use status, limit and cursor"
        );
    }
}
