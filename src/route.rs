//! The route table: request path and method to (API, operation), without allocating.
//!
//! The longest base path that matches at a segment boundary wins (spec §1.1). Within the API,
//! operation templates are matched segment by segment; a literal segment beats a `{param}`
//! segment at the first position where two candidates differ, and a `{param}` matches exactly
//! one non-empty segment. The remainders `""` and `/` after the base path both reach `/`.

use crate::model::{Api, ApiIdx};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    Found {
        api: ApiIdx,
        operation: usize,
    },
    /// 404 "API not found for requested URI".
    NoApi,
    /// 404 "No resources match requested URI".
    NoResource {
        api: ApiIdx,
    },
    /// 405 "The method is not allowed for the requested URL."
    MethodNotAllowed {
        api: ApiIdx,
        operation: usize,
    },
}

#[derive(Debug, Clone)]
struct Op {
    segments: Vec<Option<String>>,
    methods: crate::model::Methods,
}

#[derive(Debug, Clone)]
struct Entry {
    api: ApiIdx,
    base: String,
    ops: Vec<Op>,
}

#[derive(Debug, Clone, Default)]
pub struct RouteTable {
    /// Longest base path first.
    entries: Vec<Entry>,
}

impl RouteTable {
    pub fn new(apis: &[Api]) -> RouteTable {
        let mut entries: Vec<Entry> = apis
            .iter()
            .enumerate()
            .filter_map(|(i, a)| {
                Some(Entry {
                    api: ApiIdx::try_from(i).ok()?,
                    base: normalize_base(&a.base_path),
                    ops: a
                        .operations
                        .iter()
                        .map(|o| Op {
                            segments: o.segments.clone(),
                            methods: o.methods,
                        })
                        .collect(),
                })
            })
            .collect();
        entries.sort_by_key(|e| std::cmp::Reverse(e.base.len()));
        RouteTable { entries }
    }

    /// `path` is the request path without the query string.
    pub fn lookup(&self, path: &str, method: &str) -> Route {
        let Some((e, rest)) = self
            .entries
            .iter()
            .find_map(|e| remainder(&e.base, path).map(|r| (e, r)))
        else {
            return Route::NoApi;
        };
        // Best matching operation overall, and best one that allows the method.
        let mut best_any: Option<usize> = None;
        let mut best_allowed: Option<usize> = None;
        for (i, op) in e.ops.iter().enumerate() {
            if !matches(&op.segments, rest) {
                continue;
            }
            if best_any.is_none_or(|b| more_specific(&op.segments, &e.ops[b].segments)) {
                best_any = Some(i);
            }
            if op.methods.allows(method)
                && best_allowed.is_none_or(|b| more_specific(&op.segments, &e.ops[b].segments))
            {
                best_allowed = Some(i);
            }
        }
        match (best_allowed, best_any) {
            (Some(operation), _) => Route::Found {
                api: e.api,
                operation,
            },
            (None, Some(operation)) => Route::MethodNotAllowed {
                api: e.api,
                operation,
            },
            (None, None) => Route::NoResource { api: e.api },
        }
    }
}

/// The model promises this shape already; keep the table safe if it is handed something else.
fn normalize_base(b: &str) -> String {
    let t = b.trim_end_matches('/');
    if t.is_empty() {
        "/".to_string()
    } else if t.starts_with('/') {
        t.to_string()
    } else {
        format!("/{t}")
    }
}

/// The path after `base` when `base` matches at a segment boundary.
fn remainder<'p>(base: &str, path: &'p str) -> Option<&'p str> {
    if base == "/" {
        return path.starts_with('/').then_some(path);
    }
    let rest = path.strip_prefix(base)?;
    (rest.is_empty() || rest.starts_with('/')).then_some(rest)
}

/// Request segments after the base path: `""` and `"/"` have none.
fn request_segments(rest: &str) -> impl Iterator<Item = &str> {
    let body = if rest == "/" || rest.is_empty() {
        None
    } else {
        Some(rest.strip_prefix('/').unwrap_or(rest))
    };
    body.into_iter().flat_map(|b| b.split('/'))
}

fn matches(template: &[Option<String>], rest: &str) -> bool {
    let mut t = template.iter();
    for seg in request_segments(rest) {
        match t.next() {
            Some(Some(lit)) if lit == seg => {}
            Some(None) if !seg.is_empty() => {}
            _ => return false,
        }
    }
    t.next().is_none()
}

/// Whether `a` beats `b`: at the first position where one is literal and the other a
/// parameter, the literal wins.
fn more_specific(a: &[Option<String>], b: &[Option<String>]) -> bool {
    for (x, y) in a.iter().zip(b) {
        match (x.is_some(), y.is_some()) {
            (true, false) => return true,
            (false, true) => return false,
            _ => {}
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::*;

    fn op(path: &str, methods: u16) -> Operation {
        let rest = path.strip_prefix('/').unwrap_or(path);
        let segments = if rest.is_empty() {
            Vec::new()
        } else {
            rest.split('/')
                .map(|s| (!s.starts_with('{')).then(|| s.to_string()))
                .collect()
        };
        Operation {
            path: path.to_string(),
            segments,
            methods: Methods(methods),
            operation_ids: Vec::new(),
        }
    }

    fn api(base: &str, ops: Vec<Operation>) -> Api {
        Api {
            name: base.to_string(),
            version: "1.0.0".into(),
            title: String::new(),
            file: Default::default(),
            base_path: base.to_string(),
            schemes: Schemes::ALL,
            operations: ops,
            properties: Vec::new(),
            security: Security::default(),
            cors: Cors::default(),
            activity_log: ActivityLog::default(),
            assembly: Assembly::default(),
            plans: Vec::new(),
        }
    }

    const GET: u16 = Methods::GET;
    const POST: u16 = Methods::POST;

    fn table() -> RouteTable {
        RouteTable::new(&[
            api("/a", vec![op("/", GET), op("/x", GET)]),
            api("/a/b", vec![op("/", GET)]),
            api(
                "/things",
                vec![
                    op("/{id}", GET | POST),
                    op("/special", GET),
                    op("/{id}/parts/{part}", GET),
                    op("/{id}/parts/main", GET),
                ],
            ),
            api("/", vec![op("/root-only", GET)]),
        ])
    }

    #[test]
    fn longest_base_path_at_segment_boundary() {
        let t = table();
        assert_eq!(
            t.lookup("/a", "GET"),
            Route::Found {
                api: 0,
                operation: 0
            }
        );
        assert_eq!(
            t.lookup("/a/", "GET"),
            Route::Found {
                api: 0,
                operation: 0
            }
        );
        assert_eq!(
            t.lookup("/a/x", "GET"),
            Route::Found {
                api: 0,
                operation: 1
            }
        );
        assert_eq!(
            t.lookup("/a/b", "GET"),
            Route::Found {
                api: 1,
                operation: 0
            }
        );
        assert_eq!(
            t.lookup("/a/b/", "GET"),
            Route::Found {
                api: 1,
                operation: 0
            }
        );
        // `/ab` is not under `/a`; it falls to the `/` API, which has no such resource.
        assert_eq!(t.lookup("/ab", "GET"), Route::NoResource { api: 3 });
        assert_eq!(
            t.lookup("/root-only", "GET"),
            Route::Found {
                api: 3,
                operation: 0
            }
        );
    }

    #[test]
    fn trailing_slash_only_for_the_root_operation() {
        let t = table();
        assert_eq!(t.lookup("/a/x/", "GET"), Route::NoResource { api: 0 });
        assert_eq!(t.lookup("/things/1/", "GET"), Route::NoResource { api: 2 });
        assert_eq!(t.lookup("/a//", "GET"), Route::NoResource { api: 0 });
    }

    #[test]
    fn literal_beats_template() {
        let t = table();
        assert_eq!(
            t.lookup("/things/special", "GET"),
            Route::Found {
                api: 2,
                operation: 1
            }
        );
        assert_eq!(
            t.lookup("/things/42", "GET"),
            Route::Found {
                api: 2,
                operation: 0
            }
        );
        assert_eq!(
            t.lookup("/things/42/parts/main", "GET"),
            Route::Found {
                api: 2,
                operation: 3
            }
        );
        assert_eq!(
            t.lookup("/things/42/parts/7", "GET"),
            Route::Found {
                api: 2,
                operation: 2
            }
        );
        // A parameter never matches an empty segment.
        assert_eq!(
            t.lookup("/things//parts/7", "GET"),
            Route::NoResource { api: 2 }
        );
        assert_eq!(t.lookup("/things/", "GET"), Route::NoResource { api: 2 });
    }

    #[test]
    fn method_not_allowed_and_fallback_to_a_template_that_allows_it() {
        let t = table();
        assert_eq!(
            t.lookup("/a/x", "POST"),
            Route::MethodNotAllowed {
                api: 0,
                operation: 1
            }
        );
        // `/special` has no POST, but `/{id}` does.
        assert_eq!(
            t.lookup("/things/special", "POST"),
            Route::Found {
                api: 2,
                operation: 0
            }
        );
        assert_eq!(
            t.lookup("/things/1/parts/main", "DELETE"),
            Route::MethodNotAllowed {
                api: 2,
                operation: 3
            }
        );
        assert_eq!(
            t.lookup("/a", "get"),
            Route::MethodNotAllowed {
                api: 0,
                operation: 0
            }
        );
    }

    #[test]
    fn no_api() {
        let t = RouteTable::new(&[api("/a", vec![op("/", GET)])]);
        assert_eq!(t.lookup("/b", "GET"), Route::NoApi);
        assert_eq!(t.lookup("", "GET"), Route::NoApi);
        assert_eq!(t.lookup("/", "GET"), Route::NoApi);
        assert_eq!(RouteTable::new(&[]).lookup("/a", "GET"), Route::NoApi);
    }
}
