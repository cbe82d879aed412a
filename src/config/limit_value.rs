//! The limit value grammar of spec §3.2:
//!
//! ```text
//! value    := ws* ( "unlimited" | count ws* [ "/" ws* [interval ws*] unit ] ) ws*   (any case)
//! unit     := second|seconds|sec|secs|s | minute|minutes|min|mins|m | hour|hours|hr|hrs|h
//!           | day|days|d | week|weeks|wk|wks|w
//! ```
//!
//! A bare count is allowed only for count limits; burst limits take second and minute units
//! only; a count of 0 means unlimited.

use crate::model::{LimitKind, LimitValue};

const UNITS: &[(&[&str], u64)] = &[
    (&["second", "seconds", "sec", "secs", "s"], 1),
    (&["minute", "minutes", "min", "mins", "m"], 60),
    (&["hour", "hours", "hr", "hrs", "h"], 3600),
    (&["day", "days", "d"], 86_400),
    (&["week", "weeks", "wk", "wks", "w"], 604_800),
];

/// Units people write that API Connect does not accept, so the message can say so plainly.
const UNSUPPORTED: &[&str] = &[
    "month",
    "months",
    "mon",
    "mo",
    "year",
    "years",
    "yr",
    "yrs",
    "y",
    "ms",
    "millisecond",
    "milliseconds",
    "fortnight",
    "fortnights",
];

fn example(kind: LimitKind) -> &'static str {
    match kind {
        LimitKind::Rate => {
            "a rate like 100/1hour or 3/1minute (count/[interval]unit), or unlimited"
        }
        LimitKind::Burst => "a burst like 10/1second or 50/1minute, or unlimited",
        LimitKind::Count => "a whole number (the most open at once), or unlimited",
    }
}

fn units_for(kind: LimitKind) -> &'static str {
    match kind {
        LimitKind::Burst => "second or minute",
        _ => "second, minute, hour, day or week",
    }
}

/// Parses a limit value as written in a plan, catalog or gateway limit.
pub fn parse(text: &str, kind: LimitKind) -> Result<LimitValue, String> {
    let lower = text.trim().to_ascii_lowercase();
    if lower == "unlimited" {
        return Ok(LimitValue::Unlimited);
    }
    let b = lower.as_bytes();
    let mut i = 0;
    let digits = |i: &mut usize| {
        let start = *i;
        while *i < b.len() && b[*i].is_ascii_digit() {
            *i += 1;
        }
        &lower[start..*i]
    };
    let spaces = |i: &mut usize| {
        while *i < b.len() && b[*i].is_ascii_whitespace() {
            *i += 1;
        }
    };
    let count_text = digits(&mut i);
    if count_text.is_empty() {
        return Err(format!(
            "'{text}' is not a limit value: expected {}",
            example(kind)
        ));
    }
    let count: u64 = count_text
        .parse()
        .ok()
        .filter(|&n| n <= crate::model::LIMIT_MAX)
        .ok_or_else(|| {
            format!(
                "the count in '{text}' is too large: at most {} is supported",
                crate::model::LIMIT_MAX
            )
        })?;
    spaces(&mut i);
    if i == b.len() {
        return match kind {
            LimitKind::Count if count == 0 => Ok(LimitValue::Unlimited),
            LimitKind::Count => Ok(LimitValue::Count { max: count }),
            _ => Err(format!(
                "'{text}' has no time unit: a bare number is only allowed for count limits; \
                 expected {}",
                example(kind)
            )),
        };
    }
    if b[i] != b'/' {
        return Err(format!(
            "unexpected '{}' in '{text}': expected {}",
            &text.trim()[i..],
            example(kind)
        ));
    }
    if kind == LimitKind::Count {
        return Err(format!(
            "'{text}' is a rate, but count limits take {}",
            example(kind)
        ));
    }
    i += 1;
    spaces(&mut i);
    let interval_text = digits(&mut i);
    let interval: u64 = if interval_text.is_empty() {
        1
    } else {
        interval_text
            .parse()
            .map_err(|_| format!("the interval in '{text}' is too large"))?
    };
    if interval == 0 {
        return Err(format!("the interval in '{text}' must be at least 1"));
    }
    spaces(&mut i);
    let unit_start = i;
    while i < b.len() && b[i].is_ascii_alphabetic() {
        i += 1;
    }
    let unit = &lower[unit_start..i];
    spaces(&mut i);
    if i != b.len() {
        return Err(format!(
            "unexpected '{}' in '{text}': expected {}",
            &text.trim()[i..],
            example(kind)
        ));
    }
    if unit.is_empty() {
        return Err(format!(
            "'{text}' has no time unit after the '/': expected {}",
            example(kind)
        ));
    }
    let Some(&(_, secs)) = UNITS.iter().find(|(names, _)| names.contains(&unit)) else {
        let what = if UNSUPPORTED.contains(&unit) {
            "is not supported"
        } else {
            "is not a time unit"
        };
        return Err(format!(
            "'{unit}' in '{text}' {what}: expected {}",
            units_for(kind)
        ));
    };
    if kind == LimitKind::Burst && secs > 60 {
        return Err(format!(
            "burst limits take only second or minute units, not '{unit}' in '{text}'"
        ));
    }
    let period_secs = interval
        .checked_mul(secs)
        .ok_or_else(|| format!("the period of '{text}' is too long"))?;
    if count == 0 {
        return Ok(LimitValue::Unlimited);
    }
    Ok(LimitValue::Rate {
        max: count,
        period_secs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use LimitKind::*;

    fn rate(max: u64, period_secs: u64) -> Result<LimitValue, String> {
        Ok(LimitValue::Rate { max, period_secs })
    }

    #[test]
    fn forms_from_ibm_material() {
        assert_eq!(parse("100/hour", Rate), rate(100, 3600));
        assert_eq!(parse("100/1hour", Rate), rate(100, 3600));
        assert_eq!(parse("10/1second", Burst), rate(10, 1));
        assert_eq!(parse("5/3second", Rate), rate(5, 3));
        assert_eq!(parse("200/5minute", Rate), rate(200, 300));
        assert_eq!(parse("50/1minute", Burst), rate(50, 60));
        assert_eq!(parse("3/1minute", Rate), rate(3, 60));
        assert_eq!(parse("unlimited", Rate), Ok(LimitValue::Unlimited));
    }

    #[test]
    fn every_unit_spelling() {
        for (names, secs) in UNITS {
            for n in *names {
                assert_eq!(parse(&format!("7/2{n}"), Rate), rate(7, 2 * secs), "{n}");
                assert_eq!(parse(&format!("7/{n}"), Rate), rate(7, *secs), "{n}");
            }
        }
        for n in [
            "second", "seconds", "sec", "secs", "s", "minute", "minutes", "min", "mins", "m",
        ] {
            assert!(parse(&format!("1/{n}"), Burst).is_ok(), "{n}");
        }
    }

    #[test]
    fn case_and_spaces() {
        assert_eq!(parse("  100 / 1 HOUR ", Rate), rate(100, 3600));
        assert_eq!(parse("3/1Minute", Rate), rate(3, 60));
        assert_eq!(parse("UNLIMITED", Burst), Ok(LimitValue::Unlimited));
        assert_eq!(parse(" Unlimited ", Count), Ok(LimitValue::Unlimited));
        assert_eq!(parse("5 /2 wks", Rate), rate(5, 2 * 604_800));
    }

    #[test]
    fn zero_means_unlimited() {
        assert_eq!(parse("0", Count), Ok(LimitValue::Unlimited));
        assert_eq!(parse("0/1hour", Rate), Ok(LimitValue::Unlimited));
        assert_eq!(parse("0/1second", Burst), Ok(LimitValue::Unlimited));
    }

    #[test]
    fn count_limits() {
        assert_eq!(parse("2", Count), Ok(LimitValue::Count { max: 2 }));
        assert_eq!(parse(" 10 ", Count), Ok(LimitValue::Count { max: 10 }));
        let e = parse("5/1minute", Count).unwrap_err();
        assert!(e.contains("count limits take a whole number"), "{e}");
    }

    fn err(text: &str, kind: LimitKind, words: &str) {
        let e = parse(text, kind).expect_err(text);
        assert!(e.contains(words), "'{text}': {e}");
    }

    #[test]
    fn malformed() {
        err(
            "3/1fortnight",
            Rate,
            "'fortnight' in '3/1fortnight' is not supported",
        );
        err(
            "3/1parsec",
            Rate,
            "is not a time unit: expected second, minute, hour, day or week",
        );
        err("10/1month", Rate, "'month' in '10/1month' is not supported");
        err("10/1year", Rate, "is not supported");
        err(
            "100",
            Rate,
            "a bare number is only allowed for count limits",
        );
        err(
            "100",
            Burst,
            "a bare number is only allowed for count limits",
        );
        err(
            "two",
            Count,
            "'two' is not a limit value: expected a whole number",
        );
        err(
            "10/1hour",
            Burst,
            "burst limits take only second or minute units, not 'hour'",
        );
        err("10/1day", Burst, "not 'day'");
        err("100/", Rate, "has no time unit after the '/'");
        err("100/5", Rate, "has no time unit after the '/'");
        err("100/0minute", Rate, "must be at least 1");
        err("", Rate, "is not a limit value");
        err("/hour", Rate, "is not a limit value");
        err("-1", Count, "is not a limit value");
        err("1.5/hour", Rate, "unexpected '.5/hour'");
        // A counter holds 40 bits: 2^40 - 2 is the largest maximum.
        assert_eq!(
            parse("1099511627774/1hour", Rate),
            rate(1_099_511_627_774, 3_600)
        );
        err(
            "1099511627775/1hour",
            Rate,
            "too large: at most 1099511627774 is supported",
        );
        err("1099511627775", Count, "too large");
        err("99999999999999999999", Count, "too large");
        err("10/1 hour extra", Rate, "unexpected 'extra'");
        err("10/h our", Rate, "unexpected 'our'");
        err("99999999999999999999999/hour", Rate, "too large");
        err("5/99999999999999999week", Rate, "too long");
        err("10 per hour", Rate, "unexpected 'per hour'");
    }
}
