//! PLACEHOLDER (being written): the regular-expression subset of header-control and
//! parameter-control patterns.

#[derive(Debug, Clone)]
pub struct Pattern {
    source: String,
}

impl Pattern {
    pub fn compile(source: &str) -> Result<Pattern, String> {
        Ok(Pattern {
            source: source.to_string(),
        })
    }
    pub fn source(&self) -> &str {
        &self.source
    }
    pub fn matches(&self, name: &str, case_insensitive: bool) -> bool {
        if case_insensitive {
            self.source.eq_ignore_ascii_case(name)
        } else {
            self.source == name
        }
    }
}
