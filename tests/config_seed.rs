//! Loads the shipped `conf/gateway.yaml` with the seed's API and Product YAML and checks the
//! compiled model.

use std::path::PathBuf;
use wsgate::config::{Loaded, Overrides, load, summary};

fn conf() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("conf/gateway.yaml")
}

fn loaded(o: &Overrides) -> Loaded {
    match load(&conf(), o) {
        Ok(l) => l,
        Err(e) => panic!(
            "{}",
            e.iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join("\n")
        ),
    }
}

#[test]
fn prints_summary() {
    let l = loaded(&Overrides::default());
    for w in &l.warnings {
        println!("{w}");
    }
    println!("{}", summary(&l.model));
}
