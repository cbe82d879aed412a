//! The JSON result line and CPU time sampling.

use crate::sys;

/// Builds one flat JSON object by hand (no serde needed for a few fields).
pub struct Json(String);

impl Json {
    pub fn new(mode: &str, label: &Option<String>) -> Json {
        let mut j = Json(String::from("{"));
        j.str("mode", mode);
        if let Some(l) = label {
            j.str("label", l);
        }
        j
    }

    fn key(&mut self, k: &str) {
        if self.0.len() > 1 {
            self.0.push(',');
        }
        self.0.push_str(&format!("\"{k}\":"));
    }

    pub fn str(&mut self, k: &str, v: &str) -> &mut Json {
        self.key(k);
        self.0.push('"');
        for ch in v.chars() {
            match ch {
                '"' => self.0.push_str("\\\""),
                '\\' => self.0.push_str("\\\\"),
                c if (c as u32) < 0x20 => self.0.push_str(&format!("\\u{:04x}", c as u32)),
                c => self.0.push(c),
            }
        }
        self.0.push('"');
        self
    }

    pub fn int(&mut self, k: &str, v: u64) -> &mut Json {
        self.key(k);
        self.0.push_str(&v.to_string());
        self
    }

    /// A number with `prec` decimals.
    pub fn num(&mut self, k: &str, v: f64, prec: usize) -> &mut Json {
        self.key(k);
        if v.is_finite() {
            self.0.push_str(&format!("{v:.prec$}"));
        } else {
            self.0.push_str("null");
        }
        self
    }

    /// A nested object of counters, e.g. failures by kind.
    pub fn counts(&mut self, k: &str, v: &[(String, u64)]) -> &mut Json {
        self.key(k);
        let mut inner = Json(String::from("{"));
        for (n, c) in v {
            inner.int(n, *c);
        }
        inner.0.push('}');
        self.0.push_str(&inner.0);
        self
    }

    pub fn cpu(&mut self, k: &str, v: &[(String, f64)]) -> &mut Json {
        self.key(k);
        let mut inner = Json(String::from("{"));
        for (n, s) in v {
            inner.num(n, *s, 3);
        }
        inner.0.push('}');
        self.0.push_str(&inner.0);
        self
    }

    pub fn print(&mut self) {
        self.0.push('}');
        println!("{}", self.0);
    }
}

/// CPU seconds of several processes over a window.
pub struct Cpu {
    pids: Vec<(String, String)>,
    start: Vec<Option<f64>>,
}

impl Cpu {
    pub fn new(extra: &[(String, String)]) -> Cpu {
        let mut pids = vec![("loadgen".to_string(), "self".to_string())];
        pids.extend(extra.iter().cloned());
        Cpu {
            start: vec![None; pids.len()],
            pids,
        }
    }

    pub fn start(&mut self) {
        self.start = self.pids.iter().map(|(_, p)| sys::cpu_secs(p)).collect();
    }

    /// CPU seconds since `start`, per name; a process that vanished is left out.
    pub fn since(&self) -> Vec<(String, f64)> {
        self.pids
            .iter()
            .zip(&self.start)
            .filter_map(|((n, p), s)| Some((n.clone(), sys::cpu_secs(p)? - (*s)?)))
            .collect()
    }
}

/// Adds one to the counter named `k`.
pub fn bump(v: &mut Vec<(String, u64)>, k: String) {
    match v.iter_mut().find(|(n, _)| *n == k) {
        Some((_, c)) => *c += 1,
        None => v.push((k, 1)),
    }
}
