//! HTTP/1 request heads as they arrive, before hyper parses them: the
//! rules the bundled server enforces on the raw bytes, which hyper's parsed
//! request no longer shows.
//!
//! - A raw `#` in the request target is refused (400 `bad_target`, RFC 9112
//!   §3.2 allows none): the URI parser would drop everything after it, so a
//!   proxy in front and mediagate would read two different targets
//!   (`?mg_token=A#&mg_token=B` is one token here and two there).
//! - A request line longer than [`MAX_REQUEST_LINE`] is refused with 414
//!   `uri_too_long`, a head longer than the configured limit with 431
//!   `head_too_large`, more than [`MAX_EMPTY_LINES`] empty lines before a
//!   request (RFC 9112 §2.2 asks a server to skip "at least one") or bytes
//!   that cannot start one with 400 `malformed_request`: each with a body
//!   that names the reason, where hyper would answer with an empty one.
//! - A head is handed to hyper only once it is complete, so hyper parses
//!   it at once and a half-sent head never counts as a request.
//!
//! [`HeadGuard`] is a pure state machine over the connection's bytes: it
//! tells how much of them may go to hyper (whole heads, and the bodies
//! after them by `Content-Length`), or that the head must be refused.
//! A refused head never reaches hyper: the connection hands hyper a
//! stand-in request instead (see [`STAND_IN`]) and then the end of the
//! stream, and the server's service answers that stand-in with the
//! refusal, which [`Verdicts`] carries from here to there in order.
//!
//! After a head with `Transfer-Encoding`, whose body length only a full
//! chunked decoder could follow, the rest of the connection is passed
//! through unscanned and the response closes the connection, so no later
//! head goes unchecked.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use mediagate_signer::limits::is_token_byte;

use crate::reject::Reject;

/// The longest request line accepted: method, target and version. A link's
/// token is at most 2,211 bytes and its path at most 1,024 bytes (3,072
/// percent-encoded), so every link fits with room to spare.
pub(crate) const MAX_REQUEST_LINE: usize = 8 * 1024;

/// Empty lines skipped before a request line (RFC 9112 §2.2: a client may
/// send one after a POST body); more is not a client but a connection
/// holding its place.
pub(crate) const MAX_EMPTY_LINES: usize = 4;

/// What hyper is handed in place of a refused head: a request it parses
/// without fail, which closes the connection once answered.
pub(crate) const STAND_IN: &[u8] = b"GET / HTTP/1.1\r\nhost: refused\r\nconnection: close\r\n\r\n";

/// What may happen to the bytes that have arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scan {
    /// The first `n` bytes may go to hyper.
    Pass(usize),
    /// They hold no complete head yet: wait for more.
    NeedMore,
    /// The head is refused: hand hyper the stand-in, then nothing more.
    Refuse(Reject),
}

/// What the service is to do with the next request hyper parses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Answer it.
    Serve,
    /// Answer it, then close the connection (its body was not followed).
    ServeThenClose,
    /// It is the stand-in for a refused head: refuse it so.
    Refuse(Reject),
}

/// The verdicts on the heads handed to hyper, in order, from the
/// connection's reads to its service. Heads are served but for at most one
/// refused (the last: nothing follows it) and one after which the
/// connection closes (the last one followed), so a few counters tell every
/// verdict without a queue or a lock.
#[derive(Debug, Clone, Default)]
pub(crate) struct Verdicts(Arc<Counts>);

#[derive(Debug, Default)]
struct Counts {
    /// Heads handed to hyper.
    handed: AtomicU64,
    /// Requests the service has asked about.
    asked: AtomicU64,
    /// The number (from 1) of the head after which the connection closes;
    /// 0 for none.
    close_after: AtomicU64,
    /// The number of the refused head, 0 for none, and why.
    refused: AtomicU64,
    why: OnceLock<Reject>,
}

impl Verdicts {
    fn push(&self, verdict: Verdict) {
        let counts = &*self.0;
        let number = counts.handed.fetch_add(1, Ordering::AcqRel) + 1;
        match verdict {
            Verdict::Serve => {}
            Verdict::ServeThenClose => counts.close_after.store(number, Ordering::Release),
            Verdict::Refuse(reject) => {
                let _ = counts.why.set(reject);
                counts.refused.store(number, Ordering::Release);
            }
        }
    }

    /// The verdict on the next request. hyper parses only heads it was
    /// handed, each with its verdict; should one be missing all the same,
    /// the request is refused rather than served unchecked.
    pub(crate) fn next(&self) -> Verdict {
        let counts = &*self.0;
        let number = counts.asked.fetch_add(1, Ordering::AcqRel) + 1;
        let missing = Verdict::Refuse(Reject::MalformedRequest);
        if number > counts.handed.load(Ordering::Acquire) {
            return missing;
        }
        if number == counts.refused.load(Ordering::Acquire) {
            return counts
                .why
                .get()
                .map_or(missing, |&why| Verdict::Refuse(why));
        }
        if number == counts.close_after.load(Ordering::Acquire) {
            return Verdict::ServeThenClose;
        }
        Verdict::Serve
    }
}

/// One HTTP/1 connection's guard (see the module docs).
#[derive(Debug)]
pub(crate) struct HeadGuard {
    state: State,
    max_head: usize,
    verdicts: Verdicts,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Waiting for a head.
    Head,
    /// Passing this many body bytes, then a head again.
    Body(u64),
    /// Passing everything through (after a chunked body).
    Through,
    /// A head was refused: nothing more goes to hyper.
    Refused,
}

impl HeadGuard {
    /// A guard for heads of at most `max_head` bytes, reporting to
    /// `verdicts`.
    pub(crate) fn new(max_head: usize, verdicts: Verdicts) -> Self {
        HeadGuard {
            state: State::Head,
            max_head,
            verdicts,
        }
    }

    /// Whether a head was refused: the connection reads nothing more.
    pub(crate) fn refused(&self) -> bool {
        self.state == State::Refused
    }

    /// Looks at `bytes`, the connection's bytes not yet handed to hyper,
    /// and says what may happen to them. A [`Scan::Pass`] is final: the
    /// guard has moved past those bytes.
    pub(crate) fn scan(&mut self, bytes: &[u8]) -> Scan {
        if bytes.is_empty() {
            return Scan::NeedMore;
        }
        match self.state {
            State::Refused => Scan::NeedMore,
            State::Through => Scan::Pass(bytes.len()),
            State::Body(left) => {
                let n = usize::try_from(left).map_or(bytes.len(), |l| l.min(bytes.len()));
                let left = left - n as u64;
                self.state = if left == 0 {
                    State::Head
                } else {
                    State::Body(left)
                };
                Scan::Pass(n)
            }
            State::Head => self.take(check_head(bytes, self.max_head)),
        }
    }

    /// [`scan`](Self::scan), where `head` is what [`check_head`] says of
    /// `bytes` already (they were read ahead and checked): a head is not
    /// looked at twice.
    pub(crate) fn scan_checked(&mut self, bytes: &[u8], head: Head) -> Scan {
        match self.state {
            State::Head if !bytes.is_empty() => self.take(head),
            _ => self.scan(bytes),
        }
    }

    /// Moves past the head at the start of the bytes, as checked.
    fn take(&mut self, head: Head) -> Scan {
        match head {
            Head::Incomplete => Scan::NeedMore,
            Head::Refused(reject) => {
                self.state = State::Refused;
                self.verdicts.push(Verdict::Refuse(reject));
                Scan::Refuse(reject)
            }
            Head::Complete { len, body } => {
                let (state, verdict) = match body {
                    Body::None => (State::Head, Verdict::Serve),
                    Body::Length(n) => (State::Body(n), Verdict::Serve),
                    Body::Chunked => (State::Through, Verdict::ServeThenClose),
                };
                self.state = state;
                self.verdicts.push(verdict);
                Scan::Pass(len)
            }
        }
    }
}

/// What the bytes at the start of a request hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Head {
    /// Not a whole head yet.
    Incomplete,
    /// A whole head of `len` bytes (leading empty lines included), and
    /// what body follows it.
    Complete { len: usize, body: Body },
    /// A head to refuse.
    Refused(Reject),
}

/// The body a head announces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Body {
    None,
    Length(u64),
    Chunked,
}

/// Checks the head at the start of `bytes` against the rules of the module
/// docs, as far as it has arrived.
pub(crate) fn check_head(bytes: &[u8], max_head: usize) -> Head {
    let refuse = Head::Refused;
    // Empty lines first: "\r\n" or "\n".
    let mut start = 0;
    let mut empty = 0;
    loop {
        let rest = &bytes[start..];
        let skip = if rest.starts_with(b"\r\n") {
            2
        } else if rest.starts_with(b"\n") {
            1
        } else if rest == b"\r" {
            return Head::Incomplete;
        } else {
            break;
        };
        empty += 1;
        if empty > MAX_EMPTY_LINES {
            return refuse(Reject::MalformedRequest);
        }
        start += skip;
    }
    let rest = &bytes[start..];
    // The method: token characters up to the first space.
    let method_end = rest.iter().position(|&b| b == b' ').unwrap_or(rest.len());
    if rest[..method_end].iter().any(|&b| !is_token_byte(b)) {
        return refuse(Reject::MalformedRequest);
    }
    // The request line.
    let line_end = memchr::memchr(b'\n', rest);
    let line = &rest[..line_end.unwrap_or(rest.len())];
    if line.len() > MAX_REQUEST_LINE {
        return Head::Refused(Reject::UriTooLong);
    }
    if memchr::memchr(b'#', line).is_some() {
        return refuse(Reject::BadTarget);
    }
    let Some(line_end) = line_end else {
        return if start + rest.len() > max_head {
            Head::Refused(Reject::HeadTooLarge)
        } else {
            Head::Incomplete
        };
    };
    // The header fields, up to the empty line that ends the head.
    let mut body = Body::None;
    let mut at = line_end + 1;
    loop {
        let Some(nl) = memchr::memchr(b'\n', &rest[at..]) else {
            return if start + rest.len() > max_head {
                Head::Refused(Reject::HeadTooLarge)
            } else {
                Head::Incomplete
            };
        };
        let field = &rest[at..at + nl];
        let field = field.strip_suffix(b"\r").unwrap_or(field);
        at += nl + 1;
        if start + at > max_head {
            return Head::Refused(Reject::HeadTooLarge);
        }
        if field.is_empty() {
            return Head::Complete {
                len: start + at,
                body,
            };
        }
        body = match (body, body_field(field)) {
            (_, Some(Body::Chunked)) | (Body::Chunked, _) => Body::Chunked,
            // Two lengths, or one hyper will refuse: the connection cannot
            // be followed; hyper refuses or reads it, and the response
            // closes it.
            (Body::Length(_), Some(Body::Length(_))) => Body::Chunked,
            (_, Some(found)) => found,
            (kept, None) => kept,
        };
    }
}

/// The body a header field announces, if it is `Content-Length` or
/// `Transfer-Encoding`. A length that is not plain digits, or too large,
/// counts as chunked: not followed (hyper refuses it, or the response
/// closes the connection).
fn body_field(field: &[u8]) -> Option<Body> {
    let colon = memchr::memchr(b':', field)?;
    let (name, value) = (&field[..colon], &field[colon + 1..]);
    let value = value.trim_ascii();
    if name.eq_ignore_ascii_case(b"content-length") {
        let digits = !value.is_empty() && value.iter().all(u8::is_ascii_digit);
        let n = std::str::from_utf8(value)
            .ok()
            .and_then(|v| v.parse::<u64>().ok());
        return Some(match (digits, n) {
            (true, Some(0)) => Body::None,
            (true, Some(n)) => Body::Length(n),
            _ => Body::Chunked,
        });
    }
    if name.eq_ignore_ascii_case(b"transfer-encoding") {
        return Some(Body::Chunked);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAX: usize = 16 * 1024;

    fn head(bytes: &[u8]) -> Head {
        check_head(bytes, MAX)
    }

    #[test]
    fn whole_heads_pass_with_their_length() {
        for bytes in [
            &b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n"[..],
            b"GET /a HTTP/1.1\nHost: x\n\n",
            b"\r\nGET /a HTTP/1.1\r\n\r\n",
            b"\r\n\r\n\n\r\nGET /a HTTP/1.1\r\n\r\n",
        ] {
            assert_eq!(
                head(bytes),
                Head::Complete {
                    len: bytes.len(),
                    body: Body::None
                },
                "{bytes:?}"
            );
        }
        let pipelined = b"GET /a HTTP/1.1\r\n\r\nGET /b HTTP/1.1\r\n\r\n";
        assert_eq!(
            head(pipelined),
            Head::Complete {
                len: 19,
                body: Body::None
            }
        );
    }

    #[test]
    fn partial_heads_wait_and_empty_lines_are_not_a_head() {
        for bytes in [
            &b"G"[..],
            b"GET /a HTTP/1.1\r\n",
            b"GET /a HTTP/1.1\r\nHost: x\r\n\r",
            b"\r\n\r\n",
            b"\r\n\r",
            b"\r\n\r\nGET / HTTP/1.1\r\n",
        ] {
            assert_eq!(head(bytes), Head::Incomplete, "{bytes:?}");
        }
    }

    #[test]
    fn broken_heads_are_refused_with_their_reason() {
        let code = |bytes: &[u8]| match check_head(bytes, 256) {
            Head::Refused(r) => Some(r.code()),
            _ => None,
        };
        assert_eq!(
            code(b"GET /a.txt?mg_token=T#&mg_token=A"),
            Some("bad_target")
        );
        assert_eq!(
            code(b"GET /a.txt#/../../s HTTP/1.1\r\n\r\n"),
            Some("bad_target")
        );
        assert_eq!(code(&b"\r\n".repeat(5)), Some("malformed_request"));
        assert_eq!(code(b"\x16\x03\x01\x02\x00"), Some("malformed_request"));
        assert_eq!(code(b"G(T / HTTP/1.1\r\n"), Some("malformed_request"));
        let long_line = format!("GET /{} HTTP/1.1\r\n", "a".repeat(MAX_REQUEST_LINE));
        assert_eq!(
            check_head(long_line.as_bytes(), 64 * 1024),
            Head::Refused(Reject::UriTooLong)
        );
        let long_head = format!("GET / HTTP/1.1\r\nx: {}\r\n", "a".repeat(300));
        assert_eq!(code(long_head.as_bytes()), Some("head_too_large"));
        let trickling = format!("GET / HTTP/1.1\r\nx: {}", "a".repeat(300));
        assert_eq!(code(trickling.as_bytes()), Some("head_too_large"));
        // A '#' in a header field is a header's business, not the target's.
        assert!(matches!(
            head(b"GET / HTTP/1.1\r\nIf-None-Match: \"#1\"\r\n\r\n"),
            Head::Complete { .. }
        ));
    }

    #[test]
    fn bytes_that_cannot_start_a_request_are_told_at_once() {
        // A TLS ClientHello, a NUL, a colon or a parenthesis in the method:
        // refused without waiting for the rest.
        for bytes in [
            &b"\x16\x03\x01\x02\x00\x01"[..],
            b"\0",
            b"GE\0",
            b"\r\n\x16",
            b"GET:",
            b"G(T / HTTP/1.1\r\n",
        ] {
            assert_eq!(
                head(bytes),
                Head::Refused(Reject::MalformedRequest),
                "{bytes:?}"
            );
        }
        // Requests begun, after empty lines or not; an extension method.
        for bytes in [
            &b"\r\n"[..],
            b"G",
            b"GET",
            b"GET /a\x16 HTTP/1.1",
            b"\r\nGET / HTTP/1.1\r\n",
            b"M-SEARCH * HTTP/1.1\r\n",
            b"PRI * HTTP/2.0\r\n",
        ] {
            assert_eq!(head(bytes), Head::Incomplete, "{bytes:?}");
        }
    }

    #[test]
    fn a_head_trickling_in_completes_exactly_at_its_end() {
        let whole = b"\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n";
        for end in 0..whole.len() {
            assert_eq!(head(&whole[..end]), Head::Incomplete, "{end}");
        }
        assert!(matches!(head(whole), Head::Complete { len, .. } if len == whole.len()));
    }

    #[test]
    fn bodies_are_followed_by_length_and_chunked_ones_are_not() {
        let with = |field: &str| {
            let bytes = format!("PUT /a HTTP/1.1\r\n{field}\r\n\r\n");
            match head(bytes.as_bytes()) {
                Head::Complete { body, .. } => body,
                other => panic!("{other:?}"),
            }
        };
        assert_eq!(with("Content-Length: 5"), Body::Length(5));
        assert_eq!(with("content-length:\t7 "), Body::Length(7));
        assert_eq!(with("Content-Length: 0"), Body::None);
        assert_eq!(with("Transfer-Encoding: chunked"), Body::Chunked);
        assert_eq!(with("Content-Length: +5"), Body::Chunked);
        assert_eq!(
            with("Content-Length: 99999999999999999999999"),
            Body::Chunked
        );
        assert_eq!(
            with("Content-Length: 5\r\nContent-Length: 5"),
            Body::Chunked
        );
    }

    #[test]
    fn the_guard_passes_heads_and_bodies_in_order_and_stops_at_a_refusal() {
        let verdicts = Verdicts::default();
        let mut g = HeadGuard::new(MAX, verdicts.clone());
        let stream = b"PUT /a HTTP/1.1\r\nContent-Length: 3\r\n\r\nabcGET /b HTTP/1.1\r\n\r\n";
        let head_len = stream.len() - 3 - 19;
        assert_eq!(g.scan(&stream[..10]), Scan::NeedMore);
        assert_eq!(g.scan(stream), Scan::Pass(head_len));
        // A body that looks like a refused head is a body.
        assert_eq!(g.scan(b"a#"), Scan::Pass(2));
        assert_eq!(g.scan(&stream[head_len + 2..]), Scan::Pass(1));
        assert_eq!(g.scan(&stream[head_len + 3..]), Scan::Pass(19));
        assert_eq!(
            g.scan(b"GET /#x HTTP/1.1\r\n"),
            Scan::Refuse(Reject::BadTarget)
        );
        assert!(g.refused());
        assert_eq!(g.scan(b"GET / HTTP/1.1\r\n\r\n"), Scan::NeedMore);
        assert_eq!(verdicts.next(), Verdict::Serve);
        assert_eq!(verdicts.next(), Verdict::Serve);
        assert_eq!(verdicts.next(), Verdict::Refuse(Reject::BadTarget));
        // None left: refused, never served unchecked.
        assert!(matches!(verdicts.next(), Verdict::Refuse(_)));
    }

    #[test]
    fn after_a_chunked_body_everything_passes_and_the_connection_closes() {
        let verdicts = Verdicts::default();
        let mut g = HeadGuard::new(MAX, verdicts.clone());
        let head = b"POST /a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n";
        assert_eq!(g.scan(head), Scan::Pass(head.len()));
        let rest = b"3\r\nabc\r\n0\r\n\r\nGET /#";
        assert_eq!(g.scan(rest), Scan::Pass(rest.len()));
        assert_eq!(verdicts.next(), Verdict::ServeThenClose);
    }

    use proptest::prelude::*;

    /// A well-formed head: empty lines, a request line, header fields.
    fn head_strategy() -> impl Strategy<Value = (Vec<u8>, u64)> {
        (
            0..=MAX_EMPTY_LINES,
            "[A-Z]{1,8}",
            "/[a-zA-Z0-9/._%?=&-]{0,60}",
            proptest::collection::vec(("[A-Za-z-]{1,20}", "[ -~&&[^#]]{0,40}"), 0..8),
            any::<bool>(),
        )
            .prop_map(|(empty, method, target, fields, crlf)| {
                let nl = if crlf { "\r\n" } else { "\n" };
                let mut head = nl.repeat(empty);
                head.push_str(&format!("{method} {target} HTTP/1.1{nl}"));
                let mut body = 0;
                for (name, value) in fields {
                    if name.eq_ignore_ascii_case("content-length")
                        || name.eq_ignore_ascii_case("transfer-encoding")
                    {
                        continue;
                    }
                    head.push_str(&format!("{name}: {value}{nl}"));
                }
                if crlf {
                    head.push_str("Content-Length: 3\r\n");
                    body = 3;
                }
                head.push_str(nl);
                (head.into_bytes(), body)
            })
    }

    proptest! {
        #[test]
        fn any_bytes_get_an_answer_and_never_a_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            let verdict = check_head(&bytes, 256);
            if let Head::Complete { len, .. } = verdict {
                prop_assert!(len <= bytes.len() && len <= 256);
            }
            // Whatever the guard passes, it passes in order and no more.
            let mut g = HeadGuard::new(256, Verdicts::default());
            let mut at = 0;
            for _ in 0..bytes.len() + 1 {
                match g.scan(&bytes[at..]) {
                    Scan::Pass(n) => { prop_assert!(n > 0); at += n; }
                    Scan::NeedMore | Scan::Refuse(_) => break,
                }
            }
            prop_assert!(at <= bytes.len());
        }

        #[test]
        fn a_head_checked_ahead_is_taken_as_a_scan_would_take_it(
            (head, _) in head_strategy(),
            tail in proptest::collection::vec(any::<u8>(), 0..64),
            noise in proptest::collection::vec(any::<u8>(), 0..300),
            well_formed in any::<bool>(),
        ) {
            let bytes = if well_formed { [head, tail].concat() } else { noise };
            // The scans and verdicts of a guard whose first look is the
            // head read ahead (`checked`) or its own.
            let run = |checked: bool| {
                let verdicts = Verdicts::default();
                let mut g = HeadGuard::new(MAX, verdicts.clone());
                let (mut scans, mut at) = (Vec::new(), 0);
                for i in 0..=bytes.len() {
                    let scan = if checked && i == 0 {
                        g.scan_checked(&bytes, check_head(&bytes, MAX))
                    } else {
                        g.scan(&bytes[at..])
                    };
                    scans.push(scan);
                    match scan {
                        Scan::Pass(n) => at += n,
                        Scan::NeedMore | Scan::Refuse(_) => break,
                    }
                }
                let said: Vec<Verdict> = scans.iter().map(|_| verdicts.next()).collect();
                (scans, said)
            };
            prop_assert_eq!(run(true), run(false));
        }

        #[test]
        fn a_well_formed_head_is_complete_exactly_at_its_end((head, body) in head_strategy(), cut in any::<prop::sample::Index>()) {
            prop_assert_eq!(
                check_head(&head, MAX),
                Head::Complete { len: head.len(), body: if body == 0 { Body::None } else { Body::Length(body) } }
            );
            let end = cut.index(head.len());
            prop_assert_eq!(check_head(&head[..end], MAX), Head::Incomplete);
        }
    }

    #[test]
    fn the_stand_in_is_a_whole_head() {
        assert_eq!(
            head(STAND_IN),
            Head::Complete {
                len: STAND_IN.len(),
                body: Body::None
            }
        );
    }
}
