//! Pure parsing and evaluation of request headers: `Host`, which every
//! request must get right, `Range` and the conditional headers, which
//! shape a file response, and the forwarded-for list that IP-bound links
//! are checked against behind proxies. No I/O here.

pub(crate) mod conditional;
pub(crate) mod forwarded;
pub(crate) mod host;
pub(crate) mod range;

use std::borrow::Cow;

use http::HeaderMap;
use http::header::HeaderName;

/// A list-valued field (`If-Match`, `If-None-Match`): all of its lines,
/// joined with `", "` as RFC 9110 §5.3 allows, so that a tag on a second
/// line counts. `None` when absent, or when a line is not visible ASCII.
pub(crate) fn list(headers: &HeaderMap, name: HeaderName) -> Option<Cow<'_, str>> {
    let mut lines = headers.get_all(name).iter();
    let first = lines.next()?.to_str().ok()?;
    let mut joined: Option<String> = None;
    for line in lines {
        let all = joined.get_or_insert_with(|| first.to_owned());
        all.push_str(", ");
        all.push_str(line.to_str().ok()?);
    }
    Some(joined.map_or(Cow::Borrowed(first), Cow::Owned))
}

/// A singleton field (`Range`, `If-Range`, the dates) as received.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Single<'a> {
    /// Not sent.
    Absent,
    /// Exactly one line, of visible ASCII.
    One(&'a str),
    /// Several lines, or bytes that are not visible ASCII: not a valid
    /// value (several lines would join into a list, which a singleton's
    /// grammar does not allow).
    Invalid,
}

impl<'a> Single<'a> {
    /// The value, when there is exactly one valid line.
    pub(crate) fn valid(self) -> Option<&'a str> {
        match self {
            Single::One(v) => Some(v),
            Single::Absent | Single::Invalid => None,
        }
    }
}

/// Reads a singleton field.
pub(crate) fn single(headers: &HeaderMap, name: HeaderName) -> Single<'_> {
    let mut lines = headers.get_all(name).iter();
    match (lines.next(), lines.next()) {
        (None, _) => Single::Absent,
        (Some(v), None) => v.to_str().map_or(Single::Invalid, Single::One),
        (Some(_), Some(_)) => Single::Invalid,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;
    use http::header::{IF_NONE_MATCH, RANGE};

    fn map(name: HeaderName, lines: &[&[u8]]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for l in lines {
            m.append(name.clone(), HeaderValue::from_bytes(l).unwrap());
        }
        m
    }

    #[test]
    fn lists_join_every_line() {
        assert_eq!(list(&map(IF_NONE_MATCH, &[]), IF_NONE_MATCH), None);
        let one = map(IF_NONE_MATCH, &[b"\"a\""]);
        assert!(matches!(
            list(&one, IF_NONE_MATCH),
            Some(Cow::Borrowed("\"a\""))
        ));
        let two = map(IF_NONE_MATCH, &[b"\"a\"", b"W/\"b\", \"c\""]);
        assert_eq!(
            list(&two, IF_NONE_MATCH).as_deref(),
            Some("\"a\", W/\"b\", \"c\"")
        );
        let opaque = map(IF_NONE_MATCH, &[b"\"a\"", b"\"\xff\""]);
        assert_eq!(list(&opaque, IF_NONE_MATCH), None);
    }

    #[test]
    fn singletons_take_exactly_one_line() {
        assert_eq!(single(&map(RANGE, &[]), RANGE), Single::Absent);
        assert_eq!(
            single(&map(RANGE, &[b"bytes=0-1"]), RANGE),
            Single::One("bytes=0-1")
        );
        let two = map(RANGE, &[b"bytes=0-1", b"bytes=0-1"]);
        assert_eq!(single(&two, RANGE), Single::Invalid);
        assert_eq!(
            single(&map(RANGE, &[b"bytes=\xff"]), RANGE),
            Single::Invalid
        );
        assert_eq!(Single::Invalid.valid(), None);
        assert_eq!(Single::One("x").valid(), Some("x"));
    }
}
