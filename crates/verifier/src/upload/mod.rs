//! Signed uploads: a `PUT` that a link grants, checked before any byte of
//! its body is read, received into a temporary file beneath the target's
//! directory, checked again when whole, and put in place atomically and
//! durably.
//!
//! The request flows: the link (as for a download, with `PUT`), the
//! request's promises against the link's upload claims and the server's
//! [`Uploads`] limits (content type, declared length, `Expect`), a place
//! among the concurrent uploads, the target's directory and what is there
//! now ([`store`]), the free space; only then is the body read (and so,
//! with `Expect: 100-continue`, only then is `100 Continue` sent). While
//! it arrives: the size limit, the idle timeout, the free space, the first
//! bytes against the signed type ([`sniff`]). When whole: the signed
//! SHA-256 and the request's `Content-Digest` ([`digest`]); then `fsync`,
//! the link into place, and `fsync` of the directory. Any failure leaves
//! nothing at the target and no temporary file.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::{Buf, Bytes};
use http::{HeaderMap, HeaderValue, StatusCode};
use http_body::Body;
use http_body_util::BodyExt as _;
use mediagate_signer::Grant;

use crate::files::budget::{Budget, Held};
use crate::reject::Reject;

pub(crate) mod digest;
pub(crate) mod sniff;
pub(crate) mod store;

use store::{StoreError, Target, Temp};

/// What the service accepts as uploads, and its limits. Uploads are off
/// unless set ([`Builder::uploads`](crate::Builder::uploads)); the link
/// always decides what may be uploaded where, these bound any link.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Uploads {
    /// The largest upload, whatever the link says (default 1 GiB).
    pub max_size: u64,
    /// Uploads received at once, over all connections (default 64); more
    /// are refused with 503 `busy`.
    pub max_concurrent: usize,
    /// How long a body may send nothing before the upload is refused with
    /// 408 `body_timeout` (default 30 s).
    pub body_timeout: Duration,
    /// Bytes to leave free on the file system (default 256 MiB): an upload
    /// that would cross it is refused with 507 `insufficient_storage`.
    pub min_free_bytes: u64,
    /// Permissions of an uploaded file (default `0o640`); the execute bits
    /// are always cleared.
    pub file_mode: u32,
    /// Whether missing directories on the way to the target are created
    /// (default `false`: 409 `no_directory`), each beneath the root, with
    /// [`dir_mode`](Self::dir_mode).
    pub create_dirs: bool,
    /// Permissions of a created directory (default `0o750`).
    pub dir_mode: u32,
    /// Whether each upload is flushed to disk (`fsync` of the file and its
    /// directory) before it is acknowledged (default `true`).
    pub fsync: bool,
}

impl Default for Uploads {
    fn default() -> Self {
        Uploads {
            max_size: 1 << 30,
            max_concurrent: 64,
            body_timeout: Duration::from_secs(30),
            min_free_bytes: 256 << 20,
            file_mode: 0o640,
            create_dirs: false,
            dir_mode: 0o750,
            fsync: true,
        }
    }
}

/// Uploads as a running service holds them: the settings, the places of
/// the concurrent-uploads cap, and whether unnamed temporaries can be
/// linked here.
#[derive(Debug)]
pub(crate) struct Receiving {
    pub(crate) settings: Uploads,
    places: Budget,
    unnamed: bool,
    /// Counts completed uploads; the file caches look again at a file once
    /// it changes (see `FileCache`).
    pub(crate) written: Arc<AtomicU64>,
}

impl Receiving {
    pub(crate) fn new(settings: Uploads, written: Arc<AtomicU64>) -> Self {
        Receiving {
            places: Budget::new(settings.max_concurrent),
            unnamed: store::unnamed_supported(),
            settings,
            written,
        }
    }
}

/// How often, in bytes written, the free space is looked at again.
const SPACE_CHECK_EVERY: u64 = 8 << 20;

/// A granted upload, ready for its body.
#[derive(Debug)]
pub(crate) struct Upload {
    grant: Grant,
    target: Target,
    temp: Temp,
    _place: Held,
    /// The most bytes: the link's and the server's limits.
    limit: u64,
    /// The signed content type's `type/subtype`, lowercase, if the first
    /// bytes must be checked against it.
    sniff: Option<String>,
    expected: digest::Expected,
    replace: bool,
    /// A file was at the name when the upload began (a replace).
    existed: bool,
    /// The request sent `If-None-Match: *`.
    if_none_match: bool,
    durable: bool,
    min_free: u64,
    body_timeout: Duration,
    written: Arc<AtomicU64>,
}

/// What an upload ended with: the status and, when stored, its ETag; the
/// bytes received either way.
#[derive(Debug)]
pub(crate) struct Outcome {
    pub(crate) result: Result<(StatusCode, HeaderValue), Reject>,
    pub(crate) received: u64,
    /// Whether the whole body was read (else the connection cannot carry
    /// another request).
    pub(crate) complete: bool,
}

impl Receiving {
    /// Checks everything an upload of `relative` under `grant` can be
    /// checked against before its body: the request's headers, the cap,
    /// the target and the free space. Then opens its temporary file.
    pub(crate) fn begin(
        &self,
        root: std::os::fd::BorrowedFd<'_>,
        relative: &str,
        headers: &HeaderMap,
        grant: Grant,
    ) -> Result<Upload, Reject> {
        let s = &self.settings;
        let claims = grant.claims();
        if store::is_temporary(relative) {
            return Err(Reject::BadPath);
        }
        if let Some(expect) = headers.get(http::header::EXPECT) {
            if !expect.as_bytes().eq_ignore_ascii_case(b"100-continue") {
                return Err(Reject::Expectation);
            }
        }
        // One readable Content-Type, or none: two (which other parsers may
        // read differently) or bytes that are not text match no signed type.
        let mut sent = headers.get_all(http::header::CONTENT_TYPE).iter();
        let content_type = match (sent.next(), sent.next()) {
            (Some(one), None) => one.to_str().ok(),
            _ => None,
        };
        claims
            .admits_content_type(content_type)
            .map_err(|_| Reject::UploadContentType)?;
        let limit = claims.upload().max_size.unwrap_or(u64::MAX).min(s.max_size);
        let declared = declared_length(headers)?;
        if declared.is_some_and(|n| n > limit) {
            return Err(Reject::TooLarge);
        }
        let expected = digest::expected(headers).map_err(|_| Reject::BadDigest)?;
        let place = self.places.try_take().ok_or(Reject::Busy)?;
        let replace = claims.upload().replace;
        let if_none_match = headers
            .get(http::header::IF_NONE_MATCH)
            .is_some_and(|v| v.as_bytes() == b"*");
        let target = store::target(root, relative, s.create_dirs, s.dir_mode).map_err(refusal)?;
        let existed = target
            .check_existing(replace)
            .map_err(|e| exists_refusal(e, if_none_match))?;
        // `If-None-Match: *` asks for no replace, whatever the link allows.
        if existed && if_none_match {
            return Err(Reject::ExistsPrecondition);
        }
        let free = target.free_bytes().map_err(refusal)?;
        if free.saturating_sub(declared.unwrap_or(0)) < s.min_free_bytes {
            return Err(Reject::InsufficientStorage);
        }
        let temp = target
            .temporary(s.file_mode, self.unnamed)
            .map_err(refusal)?;
        let sniff = claims.content_type().map(|ct| {
            ct.split(';')
                .next()
                .unwrap_or_default()
                .trim()
                .to_ascii_lowercase()
        });
        Ok(Upload {
            if_none_match,
            grant,
            target,
            temp,
            _place: place,
            limit,
            sniff,
            expected,
            replace: replace && !if_none_match,
            existed,
            durable: s.fsync,
            min_free: s.min_free_bytes,
            body_timeout: s.body_timeout,
            written: Arc::clone(&self.written),
        })
    }
}

impl Upload {
    /// The user the link was granted to.
    pub(crate) fn user(&self) -> &str {
        self.grant.claims().subject()
    }

    /// Receives `body` and stores it; see the module docs.
    /// The body is borrowed: what is left of it after a refusal is the
    /// caller's to keep until the answer is sent (see `MediaBody::holding`).
    pub(crate) async fn receive<B>(mut self, mut body: std::pin::Pin<&mut B>) -> Outcome
    where
        B: Body,
        B::Error: std::fmt::Display,
    {
        let claims = self.grant.claims();
        let mut hashing = digest::Hashing::new(
            claims.upload().sha256.is_some() || self.expected.sha256.is_some(),
            self.expected.sha512.is_some(),
        );
        let mut received: u64 = 0;
        let mut checked_space_at: u64 = 0;
        // The first bytes, held until they can be checked against the type.
        let mut head: Option<Vec<u8>> = self.sniff.as_ref().map(|_| Vec::new());
        let timer = tokio::runtime::Handle::try_current().is_ok();
        let outcome = |result, received| Outcome {
            result,
            received,
            complete: false,
        };
        loop {
            let next = body.frame();
            let frame = if timer {
                match tokio::time::timeout(self.body_timeout, next).await {
                    Ok(frame) => frame,
                    Err(_) => return outcome(Err(Reject::BodyTimeout), received),
                }
            } else {
                next.await
            };
            let mut data = match frame {
                None => break,
                Some(Err(e)) => {
                    tracing::debug!(error = %e, "upload body ended early");
                    return outcome(Err(Reject::IncompleteBody), received);
                }
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) => data,
                    Err(_) => continue,
                },
            };
            let chunk: Bytes = data.copy_to_bytes(data.remaining());
            received += chunk.len() as u64;
            if received > self.limit {
                return outcome(Err(Reject::TooLarge), received);
            }
            hashing.update(&chunk);
            let write = match &mut head {
                Some(held) => {
                    held.extend_from_slice(&chunk);
                    if held.len() < sniff::SNIFF_LEN {
                        continue;
                    }
                    if !self.sniffed_ok(held) {
                        return outcome(Err(Reject::ContentMismatch), received);
                    }
                    let held = std::mem::take(held);
                    head = None;
                    self.temp.write_all(&held)
                }
                None => self.temp.write_all(&chunk),
            };
            if let Err(e) = write {
                return outcome(Err(refusal(e)), received);
            }
            if received - checked_space_at >= SPACE_CHECK_EVERY {
                checked_space_at = received;
                match self.target.free_bytes() {
                    Ok(free) if free < self.min_free => {
                        return outcome(Err(Reject::InsufficientStorage), received);
                    }
                    Ok(_) => {}
                    Err(e) => return outcome(Err(refusal(e)), received),
                }
            }
        }
        let outcome = |result, received| Outcome {
            result,
            received,
            complete: true,
        };
        if let Some(held) = head.take() {
            if !self.sniffed_ok(&held) {
                return outcome(Err(Reject::ContentMismatch), received);
            }
            if let Err(e) = self.temp.write_all(&held) {
                return outcome(Err(refusal(e)), received);
            }
        }
        let (sha256, sha512) = hashing.finish();
        let signed_ok = match (&claims.upload().sha256, &sha256) {
            (Some(_), Some(got)) => claims.admits_received(received, got).is_ok(),
            _ => true,
        };
        let sent_ok = self.expected.sha256.is_none_or(|want| Some(want) == sha256)
            && self.expected.sha512.is_none_or(|want| Some(want) == sha512);
        if !signed_ok || !sent_ok {
            return outcome(Err(Reject::DigestMismatch), received);
        }
        let result = self.commit().await;
        outcome(result, received)
    }

    fn sniffed_ok(&self, head: &[u8]) -> bool {
        self.sniff
            .as_deref()
            .is_none_or(|essence| sniff::consistent(essence, head))
    }

    /// Puts the file in place (off the async threads: `fsync` can take a
    /// while) and answers 201, or 204 for a replaced file.
    async fn commit(self) -> Result<(StatusCode, HeaderValue), Reject> {
        let Upload {
            target,
            temp,
            replace,
            existed,
            durable,
            if_none_match,
            written,
            ..
        } = self;
        let work = move || target.commit(temp, replace, durable);
        let committed = match tokio::runtime::Handle::try_current() {
            Ok(_) => tokio::task::spawn_blocking(work)
                .await
                .unwrap_or_else(|e| Err(StoreError::Io(std::io::Error::other(e)))),
            Err(_) => work(),
        };
        let identity = committed.map_err(|e| exists_refusal(e, if_none_match))?;
        written.fetch_add(1, Ordering::Release);
        let status = if existed {
            StatusCode::NO_CONTENT
        } else {
            StatusCode::CREATED
        };
        Ok((status, crate::files::cache::etag(&identity)))
    }
}

/// How much of a refused upload's body is read and dropped, at most, so
/// that the exchange can end cleanly: on HTTP/1 the connection then stays
/// open for the next request, and on HTTP/2 the stream ends without a
/// reset (which some clients take for a failure and lose the answer).
const DRAIN_BYTES: u64 = 1 << 20;
const DRAIN_TIME: Duration = Duration::from_secs(1);

/// Reads and drops what is left of `body` if that is little (see
/// [`DRAIN_BYTES`], [`DRAIN_TIME`]); whether the body ended. A request
/// that asked `Expect: 100-continue` is not read: that would ask its
/// client for the body the answer refuses.
pub(crate) async fn drain<B: Body>(
    mut body: std::pin::Pin<&mut B>,
    headers: &HeaderMap,
    declared: Option<u64>,
) -> bool {
    if headers.contains_key(http::header::EXPECT)
        || declared.is_some_and(|n| n > DRAIN_BYTES)
        || tokio::runtime::Handle::try_current().is_err()
    {
        return body.is_end_stream();
    }
    let mut dropped = 0u64;
    let reading = async {
        while let Some(frame) = body.frame().await {
            let Ok(frame) = frame else { return false };
            if let Some(data) = frame.data_ref() {
                dropped += data.remaining() as u64;
                if dropped > DRAIN_BYTES {
                    return false;
                }
            }
        }
        true
    };
    tokio::time::timeout(DRAIN_TIME, reading)
        .await
        .unwrap_or(false)
}

/// The declared `Content-Length`, if any; more than one differing value,
/// or one that is no number, is a malformed request (hyper refuses those
/// on the wire before they get here).
pub(crate) fn declared_length(headers: &HeaderMap) -> Result<Option<u64>, Reject> {
    let mut found = None;
    for v in headers.get_all(http::header::CONTENT_LENGTH) {
        let n = std::str::from_utf8(v.as_bytes())
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok())
            .ok_or(Reject::MalformedRequest)?;
        if found.is_some_and(|f| f != n) {
            return Err(Reject::MalformedRequest);
        }
        found = Some(n);
    }
    Ok(found)
}

/// The refusal for a store failure.
fn refusal(e: StoreError) -> Reject {
    match e {
        StoreError::Exists => Reject::Exists,
        StoreError::NotAFile => Reject::NotAFile,
        StoreError::NoDirectory => Reject::NoDirectory,
        StoreError::NoSpace => Reject::InsufficientStorage,
        StoreError::Busy => Reject::Busy,
        StoreError::NotWritable => {
            tracing::warn!("an upload's directory is not writable by the server");
            Reject::NotWritable
        }
        StoreError::Io(e) => {
            tracing::error!(error = %e, "storing an upload failed");
            Reject::Internal
        }
    }
}

/// [`refusal`], with 412 for an existing file when the request asked
/// `If-None-Match: *`.
fn exists_refusal(e: StoreError, if_none_match: bool) -> Reject {
    match e {
        StoreError::Exists if if_none_match => Reject::ExistsPrecondition,
        e => refusal(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustix::io::Errno;

    #[test]
    fn store_failures_are_refusals_with_their_codes_never_500_for_the_usual_ones() {
        for (errno, code, status) in [
            (Errno::NOSPC, "insufficient_storage", 507),
            (Errno::FBIG, "insufficient_storage", 507),
            (Errno::MFILE, "busy", 503),
            // The server's own permissions (a test run as root cannot be
            // refused them), or a read-only file system.
            (Errno::ACCESS, "not_writable", 403),
            (Errno::ROFS, "not_writable", 403),
        ] {
            let r = refusal(StoreError::of(errno));
            assert_eq!((r.code(), r.status().as_u16()), (code, status), "{errno:?}");
        }
        assert_eq!(
            exists_refusal(StoreError::Exists, true).status().as_u16(),
            412
        );
        assert_eq!(
            exists_refusal(StoreError::Exists, false).status().as_u16(),
            409
        );
    }
}
