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
