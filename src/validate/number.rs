//! Exact comparison of JSON numbers as written, without converting them to binary floating
//! point: `9007199254740993` stays above `9007199254740992`, and `0.1` is exactly a tenth.
//!
//! A number is read as its significant digits and the power of ten of its first digit, so two
//! numbers compare by sign, then by that power, then digit by digit. An exponent beyond
//! ±10^15 is held at that bound; the parser's number-length bound keeps real documents far
//! inside it.

use std::cmp::Ordering;
use std::hash::Hasher;

const MAX_EXP: i64 = 1_000_000_000_000_000;

/// A number's text seen as `±0.d1d2d3… × 10^exp`, with `d1` not zero.
#[derive(Clone, Copy, Debug)]
pub struct Num<'a> {
    neg: bool,
    /// Integer and fraction digits as written.
    int: &'a [u8],
    frac: &'a [u8],
    /// Leading zeros of `int` followed by `frac` (not significant).
    skip: usize,
    /// Significant digits, trailing zeros excluded; 0 for zero.
    len: usize,
    exp: i64,
}

impl<'a> Num<'a> {
    /// Reads a number in JSON's grammar; `None` for anything else.
    pub fn read(text: &'a str) -> Option<Num<'a>> {
        let b = text.as_bytes();
        let (neg, rest) = match b.first() {
            Some(b'-') => (true, &b[1..]),
            _ => (false, b),
        };
        let mantissa_end = rest
            .iter()
            .position(|c| matches!(c, b'e' | b'E'))
            .unwrap_or(rest.len());
        let (mantissa, exponent) = rest.split_at(mantissa_end);
        let (int, frac) = match mantissa.iter().position(|&c| c == b'.') {
            Some(p) => (&mantissa[..p], &mantissa[p + 1..]),
            None => (mantissa, &[][..]),
        };
        let digits_ok = |d: &[u8]| !d.is_empty() && d.iter().all(u8::is_ascii_digit);
        if !digits_ok(int) || (mantissa.contains(&b'.') && !digits_ok(frac)) {
            return None;
        }
        if int.len() > 1 && int[0] == b'0' {
            return None;
        }
        let mut exp: i64 = 0;
        if !exponent.is_empty() {
            let e = &exponent[1..];
            let (eneg, edigits) = match e.first() {
                Some(b'-') => (true, &e[1..]),
                Some(b'+') => (false, &e[1..]),
                _ => (false, e),
            };
            if !digits_ok(edigits) {
                return None;
            }
            for &d in edigits {
                exp = (exp * 10 + i64::from(d - b'0')).min(MAX_EXP);
            }
            if eneg {
                exp = -exp;
            }
        }
        let all = || int.iter().chain(frac.iter());
        let skip = all().take_while(|&&d| d == b'0').count();
        let total = int.len() + frac.len();
        // A digit other than zero ends both runs, so they cannot overlap.
        let len = if skip == total {
            0
        } else {
            total - skip - all().rev().take_while(|&&d| d == b'0').count()
        };
        Some(Num {
            neg,
            int,
            frac,
            skip,
            len,
            exp: exp + int.len() as i64 - skip as i64,
        })
    }

    fn is_zero(&self) -> bool {
        self.len == 0
    }

    /// The `k`th significant digit (from 0), or 0 past the last.
    fn digit(&self, k: usize) -> u8 {
        if k >= self.len {
            return 0;
        }
        let at = self.skip + k;
        let d = if at < self.int.len() {
            self.int[at]
        } else {
            self.frac[at - self.int.len()]
        };
        d - b'0'
    }

    fn magnitude(&self, other: &Num) -> Ordering {
        self.exp.cmp(&other.exp).then_with(|| {
            (0..self.len.max(other.len))
                .map(|k| self.digit(k).cmp(&other.digit(k)))
                .find(|o| o.is_ne())
                .unwrap_or(Ordering::Equal)
        })
    }
}

/// The value, not the spelling: numbers that compare equal hash alike.
impl std::hash::Hash for Num<'_> {
    fn hash<H: Hasher>(&self, h: &mut H) {
        if self.is_zero() {
            h.write_u8(0);
            return;
        }
        h.write_u8(if self.neg { 1 } else { 2 });
        h.write_i64(self.exp);
        for k in 0..self.len {
            h.write_u8(self.digit(k));
        }
    }
}

impl PartialEq for Num<'_> {
    fn eq(&self, other: &Num) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Num<'_> {}

impl PartialOrd for Num<'_> {
    fn partial_cmp(&self, other: &Num) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Num<'_> {
    fn cmp(&self, other: &Num) -> Ordering {
        match (self.is_zero(), other.is_zero()) {
            (true, true) => return Ordering::Equal,
            (true, false) => {
                return if other.neg {
                    Ordering::Greater
                } else {
                    Ordering::Less
                };
            }
            (false, true) => {
                return if self.neg {
                    Ordering::Less
                } else {
                    Ordering::Greater
                };
            }
            _ => {}
        }
        match (self.neg, other.neg) {
            (false, true) => Ordering::Greater,
            (true, false) => Ordering::Less,
            (false, false) => self.magnitude(other),
            (true, true) => other.magnitude(self),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str) -> Num<'_> {
        Num::read(s).unwrap_or_else(|| panic!("{s} is a number"))
    }

    #[test]
    fn equal_values_spelled_differently() {
        for (a, b) in [
            ("1", "1.0"),
            ("1", "10e-1"),
            ("100", "1e2"),
            ("0", "-0"),
            ("0", "0.000e5"),
            ("0.5", "5E-1"),
            ("12.3400", "1234e-2"),
        ] {
            assert_eq!(n(a), n(b), "{a} = {b}");
        }
    }

    #[test]
    fn order_is_exact() {
        let ascending = [
            "-1e400",
            "-9007199254740993",
            "-9007199254740992",
            "-1.5",
            "-1",
            "-0.1",
            "0",
            "1e-400",
            "0.1",
            "0.10000000000000001",
            "1",
            "1.0000000000000000000001",
            "9007199254740992",
            "9007199254740993",
            "18446744073709551616",
            "1e400",
        ];
        for (i, a) in ascending.iter().enumerate() {
            for (j, b) in ascending.iter().enumerate() {
                assert_eq!(n(a).cmp(&n(b)), i.cmp(&j), "{a} vs {b}");
            }
        }
    }

    #[test]
    fn only_json_numbers_read() {
        for bad in [
            "", "-", "01", "1.", ".5", "1e", "1e+", "+1", "inf", "NaN", "0x10", "1 ",
        ] {
            assert!(Num::read(bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn hashes_follow_equality() {
        use std::collections::hash_map::RandomState;
        use std::hash::BuildHasher;
        let s = RandomState::new();
        let h = |x: &str| s.hash_one(n(x));
        assert_eq!(h("1"), h("1.00"));
        assert_eq!(h("0"), h("-0.0"));
        assert_ne!(h("1"), h("-1"));
        assert_ne!(h("1"), h("10"));
    }
}
