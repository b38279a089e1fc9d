//! One structured access-log line per request, through `tracing` (target
//! `mediagate::access`): client address, method, path, user, status, bytes
//! sent, duration and the denial reason. Never the token, a query string
//! or a secret.

use std::net::IpAddr;
use std::time::Instant;

use tracing::Level;

/// The log target of access lines.
pub const TARGET: &str = "mediagate::access";

/// A pending access-log line, written when the response body ends.
#[derive(Debug)]
pub(crate) struct AccessLog {
    inner: Option<Box<Pending>>,
}

/// When a request started and the client it came from (the address that
/// IP-bound links are checked against), taken when access logging is on.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Begun {
    started: Instant,
    client: Option<IpAddr>,
}

#[derive(Debug)]
struct Pending {
    begun: Begun,
    method: http::Method,
    path: String,
    user: Option<String>,
    status: u16,
    reason: Option<&'static str>,
}

impl AccessLog {
    /// When a request from `client` started, if access logging is on;
    /// `None` otherwise, so that a quiet server neither reads the clock nor
    /// builds a line.
    pub(crate) fn begin(client: Option<IpAddr>) -> Option<Begun> {
        tracing::enabled!(target: TARGET, Level::INFO).then(|| Begun {
            started: Instant::now(),
            client,
        })
    }

    /// Starts a line for a request [`begun`](Self::begin), or nothing when
    /// that is `None`.
    pub(crate) fn start(
        method: &http::Method,
        path: &str,
        user: Option<&str>,
        status: u16,
        reason: Option<&'static str>,
        begun: Option<Begun>,
    ) -> Self {
        let inner = begun.map(|begun| {
            Box::new(Pending {
                begun,
                method: method.clone(),
                // Only the path (the query may hold a token), with a
                // path-form token cut out.
                path: first_chars(&redact(path), 512).to_owned(),
                user: user.map(str::to_owned),
                status,
                reason,
            })
        });
        AccessLog { inner }
    }

    /// Writes the line.
    pub(crate) fn finish(self, bytes: u64, error: Option<String>) {
        let Some(p) = self.inner else { return };
        let micros = p.begun.started.elapsed().as_micros() as u64;
        tracing::info!(
            target: TARGET,
            client = %Client(p.begun.client),
            method = %p.method,
            path = %Escaped(&p.path),
            user = p.user.as_deref().unwrap_or("-"),
            status = p.status,
            bytes,
            micros,
            reason = p.reason.unwrap_or("-"),
            error = error.as_deref().unwrap_or("-"),
        );
    }
}

/// Writes the line of a request that hyper refused itself, before the
/// service saw it, if `e` is such a refusal: a malformed head (hyper
/// answers 400, reason `malformed_request`) or one over the size limit
/// (431, `head_too_large`; 414, `uri_too_long`, for a target over hyper's
/// own limit, which only a `max_header_bytes` above 64 KiB lets through).
/// Nothing of the request is known but its client's address.
pub(crate) fn refused_unparsed(client: Option<IpAddr>, e: &hyper::Error) {
    if !e.is_parse() || e.is_parse_version_h2() {
        return;
    }
    // The head guard refuses long request lines (414) and large heads
    // before hyper sees them; what hyper refuses as too large is a head.
    let reject = if e.is_parse_too_large() {
        crate::reject::Reject::HeadTooLarge
    } else {
        crate::reject::Reject::MalformedRequest
    };
    refused_head(client, reject.status().as_u16(), reject.code());
}

/// Logs a request refused from its raw head, before it was parsed: the
/// method and path are not known (`-`).
pub(crate) fn refused_head(client: Option<IpAddr>, status: u16, reason: &'static str) {
    tracing::info!(
        target: TARGET,
        client = %Client(client),
        method = %"-",
        path = %"-",
        user = "-",
        status,
        bytes = 0u64,
        micros = 0u64,
        reason,
        error = "-",
    );
}

/// Why a response was cut short, as the `error` field of its line names it
/// (for a file read that failed, the line carries the error itself).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cut {
    /// The client stopped accepting bytes for the send timeout.
    SendTimeout,
    /// The client closed or reset the connection.
    ClientGone,
    /// The file got shorter than the response promised.
    FileShrank,
    /// The file was written to while being sent: what went out would mix
    /// two versions.
    FileChanged,
    /// Another error writing to the socket.
    WriteFailed,
    /// An HTTP/2 stream's window stayed shut for the window timeout.
    WindowShut,
    /// Ended without a cause the connection could see: a client that
    /// closed its side cleanly or cancelled an HTTP/2 stream, a server
    /// stopped past its drain deadline, or an embedding server's
    /// connection, which tells nothing.
    Unfinished,
}

/// The error that aborts a response whose file was written to while being
/// sent (inside an `io::Error`, which [`Cut::of`] tells by its type).
#[derive(Debug, thiserror::Error)]
#[error("file changed while being sent")]
pub(crate) struct FileChanged;

impl FileChanged {
    pub(crate) fn error() -> std::io::Error {
        std::io::Error::other(FileChanged)
    }
}

impl Cut {
    /// How a write error cuts a response short.
    pub(crate) fn of(e: &std::io::Error) -> Cut {
        if e.get_ref().is_some_and(|inner| inner.is::<FileChanged>()) {
            return Cut::FileChanged;
        }
        use std::io::ErrorKind;
        match e.kind() {
            ErrorKind::TimedOut => Cut::SendTimeout,
            ErrorKind::UnexpectedEof => Cut::FileShrank,
            ErrorKind::BrokenPipe | ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted => {
                Cut::ClientGone
            }
            _ => Cut::WriteFailed,
        }
    }
}

impl std::fmt::Display for Cut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Cut::SendTimeout => "send timeout",
            Cut::ClientGone => "client went away",
            Cut::FileShrank => "file shrank while being sent",
            Cut::FileChanged => "file changed while being sent",
            Cut::WriteFailed => "write failed",
            Cut::WindowShut => "window never opened",
            Cut::Unfinished => "stopped before the end",
        })
    }
}

/// A client address, or `-` when unknown.
struct Client(Option<IpAddr>);

impl std::fmt::Display for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(ip) => ip.fmt(f),
            None => f.write_str("-"),
        }
    }
}

/// A string with its control characters, quotes and backslashes escaped
/// as `str::escape_debug` escapes them, so that a log line stays one line
/// whatever the path holds; written whole when there is nothing to escape
/// (any path hyper accepts).
struct Escaped<'a>(&'a str);

impl std::fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let plain = |b: u8| matches!(b, 0x20..=0x7e) && !matches!(b, b'\\' | b'"' | b'\'');
        if self.0.bytes().all(plain) {
            f.write_str(self.0)
        } else {
            self.0.escape_debug().fmt(f)
        }
    }
}

/// `s` up to its `n`th character.
fn first_chars(s: &str, n: usize) -> &str {
    if s.len() <= n {
        return s;
    }
    s.char_indices().nth(n).map_or(s, |(at, _)| &s[..at])
}

/// The path with the segment after the path-form marker (`/_mg/<token>`)
/// replaced.
fn redact(path: &str) -> std::borrow::Cow<'_, str> {
    let marker = mediagate_signer::transport::PATH_MARKER;
    let segment = path
        .match_indices(marker)
        .find(|&(at, _)| path[..at].ends_with('/') && path[at + marker.len()..].starts_with('/'));
    match segment {
        None => path.into(),
        Some((at, _)) => {
            let start = at + marker.len() + 1;
            let end = path[start..].find('/').map_or(path.len(), |i| start + i);
            format!("{}<token>{}", &path[..start], &path[end..]).into()
        }
    }
}

/// Access-log lines captured in tests.
#[cfg(test)]
pub(crate) mod capture {
    use std::collections::BTreeMap;
    use std::sync::{Arc, Mutex, PoisonError};

    use tracing::field::{Field, Visit};
    use tracing::span::{Attributes, Id, Record};
    use tracing::{Event, Metadata, Subscriber};

    /// One line: its fields by name, as text.
    pub(crate) type Line = BTreeMap<String, String>;

    /// The access-log lines written on this thread while the returned
    /// guard lives (a tokio test's runtime polls on this thread).
    pub(crate) fn lines() -> (Arc<Mutex<Vec<Line>>>, tracing::subscriber::DefaultGuard) {
        let lines = Arc::new(Mutex::new(Vec::new()));
        let guard = tracing::subscriber::set_default(Capture(Arc::clone(&lines)));
        (lines, guard)
    }

    /// The lines captured so far.
    pub(crate) fn taken(lines: &Mutex<Vec<Line>>) -> Vec<Line> {
        std::mem::take(&mut *lines.lock().unwrap_or_else(PoisonError::into_inner))
    }

    struct Capture(Arc<Mutex<Vec<Line>>>);

    struct Fields(Line);

    impl Visit for Fields {
        fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
            self.0.insert(field.name().to_owned(), format!("{value:?}"));
        }
        fn record_str(&mut self, field: &Field, value: &str) {
            self.0.insert(field.name().to_owned(), value.to_owned());
        }
    }

    impl Subscriber for Capture {
        fn enabled(&self, metadata: &Metadata<'_>) -> bool {
            metadata.target() == super::TARGET
        }
        fn new_span(&self, _: &Attributes<'_>) -> Id {
            Id::from_u64(1)
        }
        fn record(&self, _: &Id, _: &Record<'_>) {}
        fn record_follows_from(&self, _: &Id, _: &Id) {}
        fn event(&self, event: &Event<'_>) {
            let mut fields = Fields(Line::new());
            event.record(&mut fields);
            let mut lines = self.0.lock().unwrap_or_else(PoisonError::into_inner);
            lines.push(fields.0);
        }
        fn enter(&self, _: &Id) {}
        fn exit(&self, _: &Id) {}
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn path_form_tokens_are_redacted() {
        assert_eq!(super::redact("/m/_mg/SECRET/a/b"), "/m/_mg/<token>/a/b");
        assert_eq!(super::redact("/m/_mg/SECRET"), "/m/_mg/<token>");
        assert_eq!(super::redact("/m/a"), "/m/a");
        assert_eq!(super::redact("/m/x_mg/a"), "/m/x_mg/a");
    }

    #[test]
    fn paths_are_escaped_as_escape_debug_does() {
        for path in [
            "/a/b.mp4",
            "/a b",
            "/a\nb",
            "/\"q\"",
            "/it's",
            "/back\\slash",
            "/ü\u{1b}[31m",
            "",
        ] {
            assert_eq!(
                super::Escaped(path).to_string(),
                path.escape_debug().to_string(),
                "{path:?}"
            );
        }
    }

    #[test]
    fn long_paths_are_cut_at_a_character() {
        assert_eq!(super::first_chars("/abc", 512), "/abc");
        assert_eq!(super::first_chars("/abc", 2), "/a");
        assert_eq!(super::first_chars("/äöü", 3), "/äö");
        let long = "é".repeat(600);
        assert_eq!(super::first_chars(&long, 512).chars().count(), 512);
    }
}
