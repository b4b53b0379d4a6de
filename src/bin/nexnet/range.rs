//! HTTP `Range: bytes=...` headers, one range at a time.

/// What a `Range` header asks of a file of `size` bytes.
#[derive(Debug, PartialEq, Eq)]
pub enum Ranged {
    /// The whole file (no header, or one we do not serve: several ranges,
    /// another unit). RFC 9110 lets a server ignore a range.
    Whole,
    /// Bytes `offset .. offset + len`.
    Part { offset: u64, len: u64 },
    /// A range that starts past the end: 416.
    Unsatisfiable,
}

/// Parses `header` against a file of `size` bytes.
pub fn parse(header: Option<&str>, size: u64) -> Ranged {
    let Some(spec) = header.and_then(|h| h.trim().strip_prefix("bytes=")) else {
        return Ranged::Whole;
    };
    if spec.contains(',') {
        return Ranged::Whole;
    }
    let Some((start, end)) = spec.trim().split_once('-') else {
        return Ranged::Whole;
    };
    let (start, end) = (start.trim(), end.trim());
    let number = |s: &str| s.parse::<u64>().ok();
    match (start.is_empty(), end.is_empty()) {
        // bytes=-N: the last N bytes.
        (true, false) => match number(end) {
            Some(0) => Ranged::Unsatisfiable,
            Some(n) => {
                let len = n.min(size);
                if len == 0 {
                    Ranged::Unsatisfiable
                } else {
                    Ranged::Part {
                        offset: size - len,
                        len,
                    }
                }
            }
            None => Ranged::Whole,
        },
        // bytes=A- : from A to the end.
        (false, true) => match number(start) {
            Some(a) if a < size => Ranged::Part {
                offset: a,
                len: size - a,
            },
            Some(_) => Ranged::Unsatisfiable,
            None => Ranged::Whole,
        },
        // bytes=A-B, both inclusive.
        (false, false) => match (number(start), number(end)) {
            (Some(a), Some(b)) if a <= b => {
                if a >= size {
                    Ranged::Unsatisfiable
                } else {
                    Ranged::Part {
                        offset: a,
                        len: b.min(size - 1) - a + 1,
                    }
                }
            }
            _ => Ranged::Whole,
        },
        (true, true) => Ranged::Whole,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        let part = |offset, len| Ranged::Part { offset, len };
        assert_eq!(parse(None, 10), Ranged::Whole);
        assert_eq!(parse(Some("bytes=0-0"), 10), part(0, 1));
        assert_eq!(parse(Some("bytes=2-5"), 10), part(2, 4));
        assert_eq!(parse(Some("bytes=2-100"), 10), part(2, 8));
        assert_eq!(parse(Some("bytes=7-"), 10), part(7, 3));
        assert_eq!(parse(Some("bytes=-3"), 10), part(7, 3));
        assert_eq!(parse(Some("bytes=-30"), 10), part(0, 10));
        assert_eq!(parse(Some("bytes=10-"), 10), Ranged::Unsatisfiable);
        assert_eq!(parse(Some("bytes=10-12"), 10), Ranged::Unsatisfiable);
        assert_eq!(parse(Some("bytes=-0"), 10), Ranged::Unsatisfiable);
        assert_eq!(parse(Some("bytes=0-"), 0), Ranged::Unsatisfiable);
        for ignored in [
            "bytes=5-2",
            "bytes=a-b",
            "bytes=0-1,3-4",
            "items=0-1",
            "bytes=-",
            "bytes",
        ] {
            assert_eq!(parse(Some(ignored), 10), Ranged::Whole, "{ignored}");
        }
    }
}
