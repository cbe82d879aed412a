//! The `format` values checked: the cheap ones that a message handler relies on.

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// RFC 3339 `date-time`: `2026-12-02T15:04:05.123Z`, with `Z` or an offset.
    DateTime,
    /// An address with one `@` between a non-empty local part and a domain of dot-separated
    /// labels, no spaces or control characters.
    Email,
    /// RFC 4122's text form: 8-4-4-4-12 hex digits.
    Uuid,
}

impl Format {
    pub fn by_name(name: &str) -> Option<Format> {
        Some(match name {
            "date-time" => Format::DateTime,
            "email" => Format::Email,
            "uuid" => Format::Uuid,
            _ => return None,
        })
    }

    pub fn holds(self, s: &str) -> bool {
        match self {
            Format::DateTime => date_time(s.as_bytes()),
            Format::Email => email(s),
            Format::Uuid => uuid(s.as_bytes()),
        }
    }
}

fn num(b: &[u8], at: usize, n: usize) -> Option<u32> {
    let digits = b.get(at..at + n)?;
    digits.iter().try_fold(0u32, |v, &d| {
        d.is_ascii_digit().then(|| v * 10 + u32::from(d - b'0'))
    })
}

fn date_time(b: &[u8]) -> bool {
    let date = || -> Option<()> {
        let (y, m, d) = (num(b, 0, 4)?, num(b, 5, 2)?, num(b, 8, 2)?);
        let leap = y % 4 == 0 && (y % 100 != 0 || y % 400 == 0);
        let days = match m {
            1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
            4 | 6 | 9 | 11 => 30,
            2 if leap => 29,
            2 => 28,
            _ => return None,
        };
        (b[4] == b'-' && b[7] == b'-' && (1..=days).contains(&d)).then_some(())
    };
    let time = || -> Option<()> {
        if !matches!(b.get(10), Some(b'T' | b't')) {
            return None;
        }
        let (h, mi, s) = (num(b, 11, 2)?, num(b, 14, 2)?, num(b, 17, 2)?);
        if b[13] != b':' || b[16] != b':' || h > 23 || mi > 59 || s > 60 {
            return None;
        }
        let mut at = 19;
        if b.get(at) == Some(&b'.') {
            let digits = b[at + 1..]
                .iter()
                .take_while(|d| d.is_ascii_digit())
                .count();
            if digits == 0 {
                return None;
            }
            at += 1 + digits;
        }
        match b.get(at)? {
            b'Z' | b'z' => (at + 1 == b.len()).then_some(()),
            b'+' | b'-' => {
                let (oh, om) = (num(b, at + 1, 2)?, num(b, at + 4, 2)?);
                (b[at + 3] == b':' && oh <= 23 && om <= 59 && at + 6 == b.len()).then_some(())
            }
            _ => None,
        }
    };
    b.len() >= 20 && date().is_some() && time().is_some()
}

fn email(s: &str) -> bool {
    let Some((local, domain)) = s.split_once('@') else {
        return false;
    };
    let clean = |p: &str| !p.is_empty() && !p.chars().any(|c| c.is_whitespace() || c.is_control());
    clean(local)
        && clean(domain)
        && !domain.contains('@')
        && domain.split('.').all(|label| !label.is_empty())
}

fn uuid(b: &[u8]) -> bool {
    b.len() == 36
        && b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_hexdigit(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_format_in_a_table() {
        let cases: &[(Format, &str, bool)] = &[
            (Format::DateTime, "2026-12-02T15:04:05Z", true),
            (Format::DateTime, "2026-12-02t15:04:05.123456+01:30", true),
            (Format::DateTime, "2024-02-29T00:00:60-00:00", true),
            (Format::DateTime, "2023-02-29T00:00:00Z", false),
            (Format::DateTime, "2026-13-02T15:04:05Z", false),
            (Format::DateTime, "2026-12-02T24:00:00Z", false),
            (Format::DateTime, "2026-12-02 15:04:05Z", false),
            (Format::DateTime, "2026-12-02T15:04:05", false),
            (Format::DateTime, "2026-12-02T15:04:05.Z", false),
            (Format::DateTime, "2026-12-02T15:04:05+0100", false),
            (Format::DateTime, "2026-12-02", false),
            (Format::DateTime, "", false),
            (Format::Email, "a@example.com", true),
            (Format::Email, "first.last+tag@sub.example", true),
            (Format::Email, "no-at.example.com", false),
            (Format::Email, "@example.com", false),
            (Format::Email, "a@", false),
            (Format::Email, "a@b@c", false),
            (Format::Email, "a b@example.com", false),
            (Format::Email, "a@example..com", false),
            (Format::Uuid, "123e4567-e89b-12d3-a456-426614174000", true),
            (Format::Uuid, "123E4567-E89B-12D3-A456-426614174000", true),
            (Format::Uuid, "123e4567e89b12d3a456426614174000", false),
            (Format::Uuid, "123e4567-e89b-12d3-a456-42661417400g", false),
            (Format::Uuid, "123e4567-e89b-12d3-a456-4266141740000", false),
        ];
        for &(f, s, ok) in cases {
            assert_eq!(f.holds(s), ok, "{f:?} {s:?}");
        }
    }
}
