//! One structured access-log line per request, through `tracing` (target
//! `mediagate::access`): method, path, user, status, bytes sent, duration
//! and the denial reason. Never the token, a query string or a secret.

use std::time::Instant;

use tracing::Level;

/// The log target of access lines.
pub const TARGET: &str = "mediagate::access";

/// A pending access-log line, written when the response body ends.
#[derive(Debug)]
pub(crate) struct AccessLog {
    inner: Option<Box<Pending>>,
}

#[derive(Debug)]
struct Pending {
    method: http::Method,
    path: String,
    user: Option<String>,
    status: u16,
    reason: Option<&'static str>,
    started: Instant,
}

impl AccessLog {
    /// When a request started, if access logging is on; `None` otherwise, so
    /// that a quiet server neither reads the clock nor builds a line.
    pub(crate) fn clock() -> Option<Instant> {
        tracing::enabled!(target: TARGET, Level::INFO).then(Instant::now)
    }

    /// Starts a line for a request that started at `started` (from
    /// [`clock`](Self::clock)), or nothing when that is `None`.
    pub(crate) fn start(
        method: &http::Method,
        path: &str,
        user: Option<&str>,
        status: u16,
        reason: Option<&'static str>,
        started: Option<Instant>,
    ) -> Self {
        let inner = started.map(|started| {
            Box::new(Pending {
                method: method.clone(),
                // Only the path (the query may hold a token), with a
                // path-form token cut out.
                path: redact(path).chars().take(512).collect(),
                user: user.map(str::to_owned),
                status,
                reason,
                started,
            })
        });
        AccessLog { inner }
    }

    /// Writes the line.
    pub(crate) fn finish(self, bytes: u64, error: Option<String>) {
        let Some(p) = self.inner else { return };
        let micros = p.started.elapsed().as_micros() as u64;
        tracing::info!(
            target: TARGET,
            method = %p.method,
            path = %p.path.escape_debug(),
            user = p.user.as_deref().unwrap_or("-"),
            status = p.status,
            bytes,
            micros,
            reason = p.reason.unwrap_or("-"),
            error = error.as_deref().unwrap_or("-"),
        );
    }
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
}
