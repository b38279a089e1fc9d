//! The limits of the file cache, [`CacheLimits`], and their defaults.

use std::time::Duration;

/// Limits of the file cache. Start from [`CacheLimits::default`] and set
/// the fields to change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct CacheLimits {
    /// Total bytes of file content held in memory (default 32 MiB; 0 turns
    /// content caching off).
    pub max_bytes: usize,
    /// Largest file whose content is held (default 16 KiB). Above this
    /// size, `sendfile` from the file beats copying from memory
    /// (BENCHMARKS.md, "Design measurements").
    pub max_file_size: usize,
    /// Most files described (default 16384).
    pub max_entries: usize,
    /// Most descriptors of large files kept open for reuse (default 1024,
    /// and never more than a quarter of the open-files limit: see
    /// [`CacheLimits::within_open_files`]; 0 opens every large file per
    /// request).
    pub max_open_files: usize,
    /// How long a kept descriptor may go unused (not confirmed at its path)
    /// before a sweep closes it (default 10 s). This bounds how long a
    /// deleted large file's space stays in use: nginx's
    /// `open_file_cache ... inactive=` (60 s there).
    pub close_unused_after: Duration,
    /// How long a file confirmed unchanged is served from memory (or from
    /// its kept descriptor) before its path is checked again (default 1 ms;
    /// `Duration::ZERO` checks on every request). A file changed on disk may be served in
    /// its previous version for this long; see the module docs.
    pub revalidate_after: Duration,
    /// Most files open for responses in progress at once, every HTTP/2
    /// stream counted (default 4096, and never more than half of what the
    /// open-files limit leaves after 64 and the kept descriptors: see
    /// [`CacheLimits::within_open_files`]). A file request beyond it gets
    /// 503 `busy` with `Retry-After` at once, rather than the process
    /// running out of descriptors and no longer accepting connections.
    pub max_streaming_files: usize,
}

impl Default for CacheLimits {
    fn default() -> Self {
        CacheLimits {
            max_bytes: 32 << 20,
            max_file_size: 16 << 10,
            max_entries: 16384,
            max_open_files: 1024,
            close_unused_after: Duration::from_secs(10),
            revalidate_after: Duration::from_millis(1),
            max_streaming_files: 4096,
        }
    }
}

impl CacheLimits {
    /// These limits with [`max_open_files`](CacheLimits::max_open_files) at
    /// most a quarter of an open-files limit of `soft` descriptors (less 64
    /// for everything else), so that kept descriptors never crowd out
    /// sockets. [`Builder::build`](crate::Builder::build) applies this to
    /// the process's soft limit at that time.
    pub fn within_open_files(mut self, soft: u64) -> CacheLimits {
        let usable = soft.saturating_sub(64);
        let quarter = usize::try_from(usable / 4).unwrap_or(usize::MAX);
        self.max_open_files = self.max_open_files.min(quarter);
        // Half of the rest: the other half is for the connections' sockets.
        let streaming = (usable - self.max_open_files as u64) / 2;
        let streaming = usize::try_from(streaming).unwrap_or(usize::MAX);
        self.max_streaming_files = self.max_streaming_files.min(streaming);
        self
    }

    /// A `1/n` part of these limits (at least one entry), for one of `n`
    /// caches that together keep within them.
    pub(crate) fn share(self, n: usize) -> CacheLimits {
        let n = n.max(1);
        CacheLimits {
            max_bytes: self.max_bytes / n,
            max_file_size: self.max_file_size,
            max_entries: (self.max_entries / n).max(1),
            max_open_files: self.max_open_files / n,
            close_unused_after: self.close_unused_after,
            revalidate_after: self.revalidate_after,
            max_streaming_files: (self.max_streaming_files / n).max(1),
        }
    }
}
