//! PLACEHOLDER (being written): the JSONata subset of switch conditions (spec decision 2).

#[derive(Debug, Clone)]
pub struct Condition {
    source: String,
}

impl Condition {
    pub fn compile(source: &str) -> Result<Condition, String> {
        Ok(Condition {
            source: source.to_string(),
        })
    }
    pub fn source(&self) -> &str {
        &self.source
    }
}
