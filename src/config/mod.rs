//! TEMPORARY stand-in until the loader lands: the signatures the CLI and engine use.
use crate::model::Model;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub properties: Vec<(String, String)>,
    pub listen: Option<Vec<SocketAddr>>,
    pub admin: Option<SocketAddr>,
}
pub struct Loaded {
    pub model: Model,
    pub warnings: Vec<Diagnostic>,
}
#[derive(Debug)]
pub struct Diagnostic {
    pub file: PathBuf,
    pub message: String,
}
impl std::fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.file.display(), self.message)
    }
}
pub fn load(path: &Path, _o: &Overrides) -> Result<Loaded, Vec<Diagnostic>> {
    Err(vec![Diagnostic {
        file: path.to_path_buf(),
        message: "loader not merged yet".into(),
    }])
}
pub fn summary(_m: &Model) -> String {
    String::new()
}
