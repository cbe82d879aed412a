//! Durations and byte sizes in the gateway config.

use std::time::Duration;

/// Splits `"10 s"` into (10, "s"); the unit is lower-cased.
fn number_and_unit(text: &str) -> Option<(u64, String)> {
    let t = text.trim();
    let digits = t.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 {
        return None;
    }
    let n = t[..digits].parse().ok()?;
    Some((n, t[digits..].trim().to_ascii_lowercase()))
}

/// A duration: whole seconds, or a number with `ms`, `s`, `m` or `h`.
pub fn duration(text: &str) -> Result<Duration, String> {
    let expected =
        "expected whole seconds or a number with ms, s, m or h (e.g. 500ms, 10s, 5m, 1h)";
    let Some((n, unit)) = number_and_unit(text) else {
        return Err(format!("'{text}' is not a duration: {expected}"));
    };
    let ms_per = match unit.as_str() {
        "ms" => 1,
        "" | "s" => 1000,
        "m" => 60_000,
        "h" => 3_600_000,
        _ => {
            return Err(format!(
                "'{unit}' in '{text}' is not a duration unit: {expected}"
            ));
        }
    };
    n.checked_mul(ms_per)
        .map(Duration::from_millis)
        .ok_or_else(|| format!("'{text}' is too long"))
}

/// A byte size: a whole number of bytes, or a number with K/KiB/KB, M/MiB/MB or G/GiB/GB
/// (all multiples of 1024).
pub fn size(text: &str) -> Result<u64, String> {
    let expected = "expected bytes or a number with K, KiB, M, MiB, G or GiB (e.g. 64KiB, 16MiB)";
    let Some((n, unit)) = number_and_unit(text) else {
        return Err(format!("'{text}' is not a size: {expected}"));
    };
    let mult: u64 = match unit.as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        _ => {
            return Err(format!(
                "'{unit}' in '{text}' is not a size unit: {expected}"
            ));
        }
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("'{text}' is too large"))
}

/// `bytes` in the largest unit [`size`] reads that divides it exactly (`1024GiB`, `64KiB`).
pub fn show_size(bytes: u64) -> String {
    for (shift, unit) in [(30, "GiB"), (20, "MiB"), (10, "KiB")] {
        if bytes != 0 && bytes.is_multiple_of(1 << shift) {
            return format!("{}{unit}", bytes >> shift);
        }
    }
    format!("{bytes}B")
}

/// `t` in the largest unit [`duration`] reads that divides it exactly (`168h`, `90s`).
pub fn show_duration(t: Duration) -> String {
    let ms = t.as_millis();
    for (per, unit) in [(3_600_000, "h"), (60_000, "m"), (1000, "s")] {
        if ms != 0 && ms.is_multiple_of(per) {
            return format!("{}{unit}", ms / per);
        }
    }
    format!("{ms}ms")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(duration("10"), Ok(Duration::from_secs(10)));
        assert_eq!(duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(duration(" 1 H "), Ok(Duration::from_secs(3600)));
        assert!(duration("ten").unwrap_err().contains("is not a duration"));
        assert!(
            duration("10 fortnights")
                .unwrap_err()
                .contains("not a duration unit")
        );
        assert!(duration("-1s").is_err());
        assert!(duration("1.5s").is_err());
        assert!(duration("99999999999999999999h").is_err());
    }

    #[test]
    fn sizes() {
        assert_eq!(size("1000"), Ok(1000));
        assert_eq!(size("64KiB"), Ok(65536));
        assert_eq!(size("64k"), Ok(65536));
        assert_eq!(size("16MiB"), Ok(16 << 20));
        assert_eq!(size("16 M"), Ok(16 << 20));
        assert_eq!(size("1GiB"), Ok(1 << 30));
        assert!(size("lots").unwrap_err().contains("is not a size"));
        assert!(size("3TiB").unwrap_err().contains("not a size unit"));
        assert!(size("99999999999999GiB").unwrap_err().contains("too large"));
    }

    #[test]
    fn shown_values_read_back() {
        for b in [1u64 << 40, 1 << 30, 64 << 10, 1000, 0] {
            assert_eq!(size(&show_size(b)), Ok(b), "{}", show_size(b));
        }
        assert_eq!(show_size(1 << 40), "1024GiB");
        for t in [168 * 3600, 90, 0] {
            let t = Duration::from_secs(t);
            assert_eq!(duration(&show_duration(t)), Ok(t), "{}", show_duration(t));
        }
        assert_eq!(show_duration(Duration::from_secs(7 * 24 * 3600)), "168h");
    }
}
