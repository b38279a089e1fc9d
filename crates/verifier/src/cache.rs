//! A cache of file versions: the validators and headers of each file,
//! computed once per version, and the bytes of small files.
//!
//! Correctness comes first. An entry describes one *version* of a file (its
//! [`Identity`]: device, inode, size, modification and change times), read
//! from a handle opened beneath the root. A cached small file is confirmed
//! by a `statx` of its path, made without following a final symlink, that
//! returns the same identity: a replaced, rewritten, truncated or renamed
//! file never matches and is opened again. The identity only ever confirms a
//! file that was opened safely before, so confinement does not depend on
//! it. A confirmation costs one `statx` instead of `openat2`, `statx`,
//! `pread` and `close`.
//!
//! Freshness is bounded, not absolute: a confirmed version is served for up
//! to [`CacheLimits::revalidate_after`] (default 1 ms) without another
//! `statx`, as nginx's `open_file_cache_valid` does (default 60 s there).
//! Within that window a change on disk is not seen yet; the bytes and
//! validators served are always one consistent version. Under load a hot
//! file is requested many times a millisecond, and the `statx` was a tenth
//! of the CPU time of a 1 KiB response. `Duration::ZERO` confirms every hit.
//!
//! Memory is bounded by a byte budget (files above a size limit are never
//! held in memory, only their headers) and an entry count; when either is
//! exceeded, arbitrary entries are dropped.

use std::collections::HashMap;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::{Bytes, BytesMut};
use http::HeaderValue;

use crate::fs::{Identity, MediaRoot, OpenError, identity_of};

/// Limits of the file cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheLimits {
    /// Total bytes of file content held in memory (default 32 MiB; 0 turns
    /// content caching off).
    pub max_bytes: usize,
    /// Largest file whose content is held (default 16 KiB). Above this
    /// size, `sendfile` from a freshly opened file beats copying from
    /// memory: with 64 KiB HLS segments the file path served 1.04x nginx's
    /// req/s where the memory path served 0.95x (load harness, 3 rounds).
    pub max_file_size: usize,
    /// Most files described (default 16384).
    pub max_entries: usize,
    /// How long a small file confirmed unchanged is served from memory
    /// before its path is checked again (default 1 ms; `Duration::ZERO`
    /// checks on every request). A file changed on disk may be served in
    /// its previous version for this long; see the module docs.
    pub revalidate_after: Duration,
}

impl Default for CacheLimits {
    fn default() -> Self {
        CacheLimits {
            max_bytes: 32 << 20,
            max_file_size: 16 << 10,
            max_entries: 16384,
            revalidate_after: Duration::from_millis(1),
        }
    }
}

impl CacheLimits {
    /// A `1/n` part of these limits (at least one entry), for one of `n`
    /// caches that together keep within them.
    pub(crate) fn share(self, n: usize) -> CacheLimits {
        let n = n.max(1);
        CacheLimits {
            max_bytes: self.max_bytes / n,
            max_file_size: self.max_file_size,
            max_entries: (self.max_entries / n).max(1),
            revalidate_after: self.revalidate_after,
        }
    }
}

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
    /// `Content-Length` of the whole file, made once rather than per
    /// response (a header value from a number allocates twice).
    pub content_length: HeaderValue,
    /// The whole content, for small files.
    pub bytes: Option<Bytes>,
    /// When this version was last confirmed at its path, in nanoseconds of
    /// the owning cache's clock.
    confirmed: AtomicU64,
}

/// Where the body comes from.
#[derive(Debug)]
pub(crate) enum Content {
    Memory(Bytes),
    File(File),
}

#[derive(Debug)]
struct Map {
    entries: HashMap<Box<str>, Arc<Entry>>,
    bytes: usize,
}

/// The cache of one [`MediaGate`](crate::MediaGate) and its clones; the
/// bundled server gives each worker thread its own.
#[derive(Debug)]
pub(crate) struct FileCache {
    map: RwLock<Map>,
    limits: CacheLimits,
    /// The origin of the entries' confirmation times.
    epoch: Instant,
}

impl FileCache {
    pub(crate) fn new(limits: CacheLimits) -> Self {
        FileCache {
            map: RwLock::new(Map {
                entries: HashMap::new(),
                bytes: 0,
            }),
            limits,
            epoch: Instant::now(),
        }
    }

    fn get(&self, relative: &str) -> Option<Arc<Entry>> {
        self.map.read().ok()?.entries.get(relative).cloned()
    }

    /// Opens (or finds) the file at `relative` beneath `root`.
    pub(crate) fn resolve(
        &self,
        root: &MediaRoot,
        relative: &str,
        content_type: impl FnOnce() -> HeaderValue,
    ) -> Result<(Arc<Entry>, Content), OpenError> {
        let cached = self.get(relative);
        if let Some(entry) = &cached {
            if let Some(bytes) = &entry.bytes {
                if self.still_current(root, relative, entry) {
                    return Ok((entry.clone(), Content::Memory(bytes.clone())));
                }
            }
        }
        // A new entry's confirmation time must not be later than the open
        // that confirms it. A large file's entry (every HLS segment and
        // download comes here) is replaced only when the file changed; its
        // successor is stamped with the epoch, which precedes any open, and
        // so the clock is read only where a new entry is likely.
        let checked_at = match &cached {
            Some(entry) if entry.bytes.is_none() => 0,
            _ => self.now(),
        };
        let opened = root.open_file(relative)?;
        if let Some(entry) = cached.filter(|e| e.identity == opened.identity) {
            return Ok((entry, Content::File(opened.file)));
        }
        let identity = opened.identity;
        let bytes = self.read_small(&opened.file, identity)?;
        let entry = Arc::new(Entry::new(identity, content_type(), bytes, checked_at));
        self.insert(relative, entry.clone());
        let content = match &entry.bytes {
            Some(b) => Content::Memory(b.clone()),
            None => Content::File(opened.file),
        };
        Ok((entry, content))
    }

    /// Whether `entry` is still the version at `relative`: confirmed
    /// within the revalidation window, or confirmed again now.
    fn still_current(&self, root: &MediaRoot, relative: &str, entry: &Entry) -> bool {
        let window = self.limits.revalidate_after;
        if window.is_zero() {
            return root.identity_at(relative) == Some(entry.identity);
        }
        // Taken before the check: a change during it falls in the next window.
        let now = self.now();
        let age = now.saturating_sub(entry.confirmed.load(Ordering::Relaxed));
        if u128::from(age) < window.as_nanos() {
            return true;
        }
        let same = root.identity_at(relative) == Some(entry.identity);
        if same {
            entry.confirmed.store(now, Ordering::Relaxed);
        }
        same
    }

    /// Nanoseconds since the cache was made (saturating after 584 years).
    fn now(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    /// Reads a small file whole, if it stays the same version while read.
    fn read_small(&self, file: &File, identity: Identity) -> Result<Option<Bytes>, OpenError> {
        let len = identity.len as usize;
        if len as u64 != identity.len
            || len > self.limits.max_file_size
            || len > self.limits.max_bytes
        {
            return Ok(None);
        }
        let mut buf = BytesMut::zeroed(len);
        let mut filled = 0;
        while filled < len {
            match file.read_at(&mut buf[filled..], filled as u64) {
                Ok(0) => return Ok(None), // shrank: stream it, and let that abort
                Ok(n) => filled += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(OpenError::Io(e)),
            }
        }
        // Changed while read: do not keep a torn copy.
        if identity_of(file)? != Some(identity) {
            return Ok(None);
        }
        Ok(Some(buf.freeze()))
    }

    fn insert(&self, relative: &str, entry: Arc<Entry>) {
        let Ok(mut map) = self.map.write() else {
            return;
        };
        let size = entry.bytes.as_ref().map_or(0, Bytes::len);
        if let Some(old) = map.entries.remove(relative) {
            map.bytes -= old.bytes.as_ref().map_or(0, Bytes::len);
        }
        while !map.entries.is_empty()
            && (map.entries.len() >= self.limits.max_entries
                || map.bytes + size > self.limits.max_bytes)
        {
            // HashMap order is randomized per process: random eviction.
            let Some(victim) = map.entries.keys().next().cloned() else {
                break;
            };
            if let Some(old) = map.entries.remove(&victim) {
                map.bytes -= old.bytes.as_ref().map_or(0, Bytes::len);
            }
        }
        if map.bytes + size <= self.limits.max_bytes && self.limits.max_entries > 0 {
            map.bytes += size;
            map.entries.insert(relative.into(), entry);
        }
    }
}

impl Entry {
    fn new(
        identity: Identity,
        content_type: HeaderValue,
        bytes: Option<Bytes>,
        checked_at: u64,
    ) -> Entry {
        let modified = identity.modified();
        let since = modified
            .and_then(|m| m.duration_since(UNIX_EPOCH).ok())
            .unwrap_or_default();
        let etag = format!(
            "\"{:x}-{:x}.{:x}\"",
            identity.len,
            since.as_secs(),
            since.subsec_nanos()
        );
        let last_modified = modified.map(|_| UNIX_EPOCH + Duration::from_secs(since.as_secs()));
        let content_length = HeaderValue::from(identity.len);
        Entry {
            identity,
            etag: HeaderValue::from_str(&etag).unwrap_or(HeaderValue::from_static("\"0\"")),
            last_modified,
            last_modified_header: last_modified
                .and_then(|t| HeaderValue::from_str(&httpdate::fmt_http_date(t)).ok()),
            content_type,
            content_length,
            bytes,
            confirmed: AtomicU64::new(checked_at),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ct() -> HeaderValue {
        HeaderValue::from_static("text/plain")
    }

    /// A cache that confirms every hit, for tests that change files and
    /// look at once.
    fn strict() -> FileCache {
        FileCache::new(CacheLimits {
            revalidate_after: Duration::ZERO,
            ..CacheLimits::default()
        })
    }

    fn memory(c: &Content) -> &[u8] {
        match c {
            Content::Memory(b) => b,
            Content::File(_) => panic!("expected a memory hit"),
        }
    }

    #[test]
    fn shares_keep_within_the_limits() {
        let all = CacheLimits::default();
        let part = all.share(3);
        assert!(3 * part.max_bytes <= all.max_bytes);
        assert!(3 * part.max_entries <= all.max_entries);
        assert_eq!(part.max_file_size, all.max_file_size);
        assert_eq!(part.revalidate_after, all.revalidate_after);
        assert_eq!(all.share(1), all);
        assert_eq!(all.share(0), all);
        let tiny = CacheLimits {
            max_bytes: 0,
            max_file_size: 10,
            max_entries: 1,
            revalidate_after: Duration::ZERO,
        };
        assert_eq!(tiny.share(4).max_entries, 1, "never zero entries");
    }

    #[test]
    fn hits_while_unchanged_and_misses_after_any_change() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.txt"), b"one").unwrap();
        let root = MediaRoot::open(dir.path()).unwrap();
        let cache = strict();
        let (e1, c1) = cache.resolve(&root, "a.txt", ct).unwrap();
        assert!(matches!(c1, Content::Memory(ref b) if &b[..] == b"one"));
        let (e2, _) = cache.resolve(&root, "a.txt", ct).unwrap();
        assert!(Arc::ptr_eq(&e1, &e2), "second lookup is a hit");
        // Replaced by rename: a new inode, a miss, the new bytes.
        std::fs::write(dir.path().join("b.txt"), b"two!").unwrap();
        std::fs::rename(dir.path().join("b.txt"), dir.path().join("a.txt")).unwrap();
        let (e3, c3) = cache.resolve(&root, "a.txt", ct).unwrap();
        assert!(!Arc::ptr_eq(&e1, &e3));
        assert!(matches!(c3, Content::Memory(ref b) if &b[..] == b"two!"));
        // Rewritten in place: ctime changes.
        std::thread::sleep(Duration::from_millis(20));
        std::fs::write(dir.path().join("a.txt"), b"six!").unwrap();
        let (_, c4) = cache.resolve(&root, "a.txt", ct).unwrap();
        assert!(matches!(c4, Content::Memory(ref b) if &b[..] == b"six!"));
        // Gone: not found, whatever the cache held.
        std::fs::remove_file(dir.path().join("a.txt")).unwrap();
        assert!(matches!(
            cache.resolve(&root, "a.txt", ct),
            Err(OpenError::NotFound)
        ));
    }

    #[test]
    fn a_symlink_swapped_in_is_not_served_from_the_cache() {
        let dir = tempfile::tempdir().unwrap();
        let root_dir = dir.path().join("root");
        std::fs::create_dir(&root_dir).unwrap();
        std::fs::write(root_dir.join("a.txt"), b"inside").unwrap();
        std::fs::write(dir.path().join("secret"), b"outside").unwrap();
        let root = MediaRoot::open(&root_dir).unwrap();
        let cache = strict();
        cache.resolve(&root, "a.txt", ct).unwrap();
        std::fs::remove_file(root_dir.join("a.txt")).unwrap();
        std::os::unix::fs::symlink(dir.path().join("secret"), root_dir.join("a.txt")).unwrap();
        assert!(matches!(
            cache.resolve(&root, "a.txt", ct),
            Err(OpenError::NotFound)
        ));
    }

    #[test]
    fn a_confirmed_version_is_served_until_its_window_ends() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.txt"), b"one").unwrap();
        let root = MediaRoot::open(dir.path()).unwrap();
        let window = Duration::from_millis(300);
        let cache = FileCache::new(CacheLimits {
            revalidate_after: window,
            ..CacheLimits::default()
        });
        let started = Instant::now();
        let (e1, _) = cache.resolve(&root, "a.txt", ct).unwrap();
        // Replaced, then removed: within the window the confirmed version
        // is still served, whole and with its own validators.
        std::fs::write(dir.path().join("b.txt"), b"two!").unwrap();
        std::fs::rename(dir.path().join("b.txt"), dir.path().join("a.txt")).unwrap();
        let (e2, c2) = cache.resolve(&root, "a.txt", ct).unwrap();
        std::fs::remove_file(dir.path().join("a.txt")).unwrap();
        let (e3, c3) = cache.resolve(&root, "a.txt", ct).unwrap();
        if started.elapsed() < window {
            assert!(Arc::ptr_eq(&e1, &e2) && Arc::ptr_eq(&e1, &e3));
            assert_eq!(memory(&c2), b"one");
            assert_eq!(memory(&c3), b"one");
        }
        // Once the window has passed, the path is checked again.
        std::thread::sleep(window);
        assert!(matches!(
            cache.resolve(&root, "a.txt", ct),
            Err(OpenError::NotFound)
        ));
        std::fs::write(dir.path().join("a.txt"), b"three").unwrap();
        let (e4, c4) = cache.resolve(&root, "a.txt", ct).unwrap();
        assert!(!Arc::ptr_eq(&e1, &e4));
        assert_eq!(memory(&c4), b"three");
    }

    #[test]
    fn a_hit_after_the_window_confirms_the_version_again() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.txt"), b"one").unwrap();
        let root = MediaRoot::open(dir.path()).unwrap();
        let cache = FileCache::new(CacheLimits {
            revalidate_after: Duration::from_millis(20),
            ..CacheLimits::default()
        });
        let (e1, _) = cache.resolve(&root, "a.txt", ct).unwrap();
        let first = e1.confirmed.load(Ordering::Relaxed);
        std::thread::sleep(Duration::from_millis(40));
        let (e2, c2) = cache.resolve(&root, "a.txt", ct).unwrap();
        assert!(Arc::ptr_eq(&e1, &e2), "unchanged: still a hit");
        assert_eq!(memory(&c2), b"one");
        assert!(e2.confirmed.load(Ordering::Relaxed) > first);
    }

    #[test]
    fn a_small_file_replacing_a_large_one_is_checked_within_its_window() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.bin"), vec![7u8; 64]).unwrap();
        let root = MediaRoot::open(dir.path()).unwrap();
        let window = Duration::from_millis(20);
        let cache = FileCache::new(CacheLimits {
            max_file_size: 16,
            revalidate_after: window,
            ..CacheLimits::default()
        });
        let (large, c1) = cache.resolve(&root, "a.bin", ct).unwrap();
        assert!(matches!(c1, Content::File(_)) && large.bytes.is_none());
        std::thread::sleep(window);
        std::fs::write(dir.path().join("b.bin"), b"small").unwrap();
        std::fs::rename(dir.path().join("b.bin"), dir.path().join("a.bin")).unwrap();
        let (small, c2) = cache.resolve(&root, "a.bin", ct).unwrap();
        assert_eq!(memory(&c2), b"small");
        // Confirmed as of the cache's epoch, before the open: the window
        // has passed, so a change is seen at the next hit.
        assert_eq!(small.confirmed.load(Ordering::Relaxed), 0);
        std::fs::write(dir.path().join("b.bin"), b"other").unwrap();
        std::fs::rename(dir.path().join("b.bin"), dir.path().join("a.bin")).unwrap();
        let (_, c3) = cache.resolve(&root, "a.bin", ct).unwrap();
        assert_eq!(memory(&c3), b"other");
    }

    #[test]
    fn memory_stays_within_the_budget() {
        let dir = tempfile::tempdir().unwrap();
        for i in 0..50 {
            std::fs::write(dir.path().join(format!("{i}")), vec![b'x'; 1000]).unwrap();
        }
        std::fs::write(dir.path().join("big"), vec![b'x'; 5000]).unwrap();
        let root = MediaRoot::open(dir.path()).unwrap();
        let limits = CacheLimits {
            max_bytes: 10_000,
            max_file_size: 4096,
            max_entries: 20,
            ..CacheLimits::default()
        };
        let cache = FileCache::new(limits);
        for i in 0..50 {
            cache.resolve(&root, &format!("{i}"), ct).unwrap();
            let map = cache.map.read().unwrap();
            assert!(map.bytes <= 10_000 && map.entries.len() <= 20);
        }
        let (_, c) = cache.resolve(&root, "big", ct).unwrap();
        assert!(
            matches!(c, Content::File(_)),
            "above max_file_size: streamed"
        );
    }
}
