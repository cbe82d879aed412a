//! TEMPORARY stand-in until the loader branch lands.
use crate::model::{Api, ApiIdx};
pub struct RouteTable {
    bases: Vec<String>,
}
pub enum Route {
    Found { api: ApiIdx, operation: usize },
    NoApi,
    NoResource { api: ApiIdx },
    MethodNotAllowed { api: ApiIdx, operation: usize },
}
impl RouteTable {
    pub fn new(apis: &[Api]) -> RouteTable {
        RouteTable {
            bases: apis.iter().map(|a| a.base_path.clone()).collect(),
        }
    }
    pub fn lookup(&self, path: &str, _method: &str) -> Route {
        for (i, b) in self.bases.iter().enumerate() {
            if path == b || path.starts_with(&format!("{b}/")) {
                return Route::Found {
                    api: i as ApiIdx,
                    operation: 0,
                };
            }
        }
        Route::NoApi
    }
}
