//! One version of one file as the cache keeps it: its identity, its
//! response headers computed once, and its bytes or its open descriptor.

use std::fs::File;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::HeaderValue;

use crate::files::fs::Identity;

/// One version of one file, with its response headers precomputed.
#[derive(Debug)]
pub(crate) struct Entry {
    pub identity: Identity,
    /// Strong ETag from length and modification time only (no inode), so
    /// that edge nodes holding the same file agree.
    pub etag: HeaderValue,
    /// Modification time at whole-second precision, as HTTP dates have it.
    pub last_modified: Option<SystemTime>,
    pub last_modified_header: Option<HeaderValue>,
    pub content_type: HeaderValue,
    /// Whether `content_type` is one a browser runs script in (see
    /// `content_type::renders_active_content`), decided once per version.
    pub active_content: bool,
    /// `Content-Length` of the whole file, made once rather than per
    /// response (a header value from a number allocates twice).
    pub content_length: HeaderValue,
    /// The whole content, for small files.
    pub bytes: Option<Bytes>,
    /// The descriptor this version was opened with, kept for large files
    /// while the descriptor budget allows.
    pub(super) file: Option<Arc<File>>,
    /// When this version was last confirmed at its path, in nanoseconds of
    /// the owning cache's clock.
    pub(super) confirmed: AtomicU64,
    /// The uploads counter when it was last confirmed (see `FileCache`).
    pub(super) written: AtomicU64,
}

/// Where the body comes from.
#[derive(Debug)]
pub(crate) enum Content {
    Memory(Bytes),
    /// A descriptor, possibly shared with the cache and other responses:
    /// read it only at explicit offsets.
    File(Arc<File>),
}

/// The strong validator of a file version: its length and modification
/// time (what an upload answers with, too).
pub(crate) fn etag(identity: &Identity) -> HeaderValue {
    let since = identity
        .modified()
        .and_then(|m| m.duration_since(UNIX_EPOCH).ok())
        .unwrap_or_default();
    let etag = format!(
        "\"{:x}-{:x}.{:x}\"",
        identity.len,
        since.as_secs(),
        since.subsec_nanos()
    );
    HeaderValue::from_str(&etag).unwrap_or(HeaderValue::from_static("\"0\""))
}

impl Entry {
    pub(super) fn new(
        identity: Identity,
        content_type: HeaderValue,
        bytes: Option<Bytes>,
        file: Option<Arc<File>>,
        (checked_at, written): (u64, u64),
    ) -> Entry {
        let modified = identity.modified();
        let since = modified
            .and_then(|m| m.duration_since(UNIX_EPOCH).ok())
            .unwrap_or_default();
        let last_modified = modified.map(|_| UNIX_EPOCH + Duration::from_secs(since.as_secs()));
        let content_length = HeaderValue::from(identity.len);
        Entry {
            identity,
            etag: etag(&identity),
            last_modified,
            last_modified_header: last_modified
                .and_then(|t| HeaderValue::from_str(&httpdate::fmt_http_date(t)).ok()),
            active_content: crate::files::content_type::renders_active_content(&content_type),
            content_type,
            content_length,
            bytes,
            file,
            confirmed: AtomicU64::new(checked_at),
            written: AtomicU64::new(written),
        }
    }
}
