//! Command line parsing (being written).
pub fn main() -> i32 {
    2
}
