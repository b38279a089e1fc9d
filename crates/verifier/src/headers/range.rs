//! `Range: bytes=...` (RFC 9110 §14).
//!
//! One range is served as a 206. A header that is not valid syntax, names
//! another unit, or asks for several ranges (empty list elements do not
//! count) is ignored and the whole file is sent: that is allowed by the RFC, never amplifies a response, and cannot
//! be abused with overlapping or many tiny ranges.

use std::ops::Range;

/// What a `Range` header asks of a file of a given length.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RangeRequest {
    /// No usable range: send the whole file.
    Full,
    /// Send these bytes (end exclusive, never empty).
    Partial(Range<u64>),
    /// The range cannot be satisfied: 416 with `Content-Range: bytes */len`.
    Unsatisfiable,
}

/// Longest `Range` header considered; longer ones are ignored.
const MAX_HEADER_LEN: usize = 256;

/// A decimal position: digits only (no sign, no spaces). The grammar puts
/// no bound on its size, so one beyond `u64` saturates: it is past the end
/// of any file, as a position that large would be.
fn number(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(s.bytes().fold(0u64, |n, b| {
        n.saturating_mul(10).saturating_add(u64::from(b - b'0'))
    }))
}

/// Evaluates a `Range` header value against a file of `len` bytes.
pub(crate) fn evaluate(header: &str, len: u64) -> RangeRequest {
    if header.len() > MAX_HEADER_LEN {
        return RangeRequest::Full;
    }
    let Some(spec) = header
        .split_once('=')
        .filter(|(unit, _)| unit.trim().eq_ignore_ascii_case("bytes"))
        .map(|(_, spec)| spec.trim())
    else {
        return RangeRequest::Full;
    };
    // A list may hold empty elements ("bytes=0-1,"), which a recipient
    // ignores (RFC 9110 §5.6.1.2); two ranges or more are served whole.
    let mut specs = spec.split(',').map(str::trim).filter(|s| !s.is_empty());
    let (Some(spec), None) = (specs.next(), specs.next()) else {
        return RangeRequest::Full;
    };
    let Some((first, last)) = spec.split_once('-') else {
        return RangeRequest::Full;
    };
    let (first, last) = (first.trim(), last.trim());
    if first.is_empty() {
        // Suffix range: the last N bytes.
        let Some(n) = number(last) else {
            return RangeRequest::Full;
        };
        if n == 0 || len == 0 {
            return RangeRequest::Unsatisfiable;
        }
        return RangeRequest::Partial(len.saturating_sub(n)..len);
    }
    let Some(start) = number(first) else {
        return RangeRequest::Full;
    };
    let end = if last.is_empty() {
        len
    } else {
        match number(last) {
            Some(end) if end >= start => end.saturating_add(1).min(len),
            _ => return RangeRequest::Full,
        }
    };
    if start >= len {
        return RangeRequest::Unsatisfiable;
    }
    RangeRequest::Partial(start..end)
}

#[cfg(test)]
mod tests {
    use super::*;
    use RangeRequest::*;
    use proptest::prelude::*;

    #[test]
    fn single_ranges() {
        assert_eq!(evaluate("bytes=0-0", 10), Partial(0..1));
        assert_eq!(evaluate("bytes=2-5", 10), Partial(2..6));
        assert_eq!(evaluate("bytes=2-", 10), Partial(2..10));
        assert_eq!(evaluate("bytes=-3", 10), Partial(7..10));
        assert_eq!(evaluate("bytes=-30", 10), Partial(0..10));
        assert_eq!(evaluate("bytes=5-100", 10), Partial(5..10));
        assert_eq!(evaluate("Bytes = 1-2", 10), Partial(1..3));
        assert_eq!(evaluate("bytes=0-18446744073709551615", 10), Partial(0..10));
        // Empty list elements are ignored, not taken for a second range.
        assert_eq!(evaluate("bytes=0-1,", 10), Partial(0..2));
        assert_eq!(evaluate("bytes=, 2-5 ,\t,", 10), Partial(2..6));
        assert_eq!(evaluate("bytes=,-3", 10), Partial(7..10));
        // Positions beyond u64 are valid syntax, and past any end.
        let huge = "99999999999999999999999";
        assert_eq!(evaluate(&format!("bytes=3-{huge}"), 10), Partial(3..10));
        assert_eq!(evaluate(&format!("bytes=-{huge}"), 10), Partial(0..10));
    }

    #[test]
    fn unsatisfiable() {
        assert_eq!(evaluate("bytes=10-", 10), Unsatisfiable);
        assert_eq!(evaluate("bytes=10-20", 10), Unsatisfiable);
        assert_eq!(evaluate("bytes=-0", 10), Unsatisfiable);
        assert_eq!(evaluate("bytes=0-", 0), Unsatisfiable);
        assert_eq!(evaluate("bytes=-5", 0), Unsatisfiable);
        assert_eq!(evaluate("bytes=18446744073709551616-", 10), Unsatisfiable);
        assert_eq!(
            evaluate("bytes=99999999999999999999999-99999999999999999999999", 10),
            Unsatisfiable
        );
    }

    #[test]
    fn ignored() {
        for h in [
            "",
            "bytes",
            "bytes=",
            "bytes=-",
            "bytes=5-2",
            "bytes=a-b",
            "bytes=+1-2",
            "bytes=0x1-2",
            "bytes=1.5-2",
            "items=0-1",
            "bytes=0-1,2-3",
            "bytes=0-,0-,0-,0-",
            "bytes=,",
            "bytes= , ",
            "bytes=0-1,,2-3",
            "bytes=１-2",
        ] {
            assert_eq!(evaluate(h, 10), Full, "{h:?}");
        }
        assert_eq!(evaluate(&format!("bytes={}", "1".repeat(300)), 10), Full);
    }

    proptest! {
        #[test]
        fn partial_ranges_are_in_bounds(h in "bytes=[0-9]{0,21}-[0-9]{0,21}", len in 0u64..1_000_000) {
            if let Partial(r) = evaluate(&h, len) {
                prop_assert!(r.start < r.end && r.end <= len);
            }
        }

        #[test]
        fn never_panics(h in "\\PC{0,60}", len in any::<u64>()) {
            let _ = evaluate(&h, len);
        }
    }
}
