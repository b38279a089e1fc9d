//! A cache of file versions: the validators and headers of each file,
//! computed once per version, the bytes of small files, and the open
//! descriptors of large ones.
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
//! file is requested many times a millisecond, and a `statx` per request
//! is a visible part of a small response's cost (BENCHMARKS.md, "Design
//! measurements"). `Duration::ZERO` confirms every hit.
//!
//! A large file (above [`CacheLimits::max_file_size`]) keeps the descriptor
//! it was opened with, confirmed the same way: an HLS segment or a download
//! requested again costs one `statx` per window instead of `openat2`,
//! `statx` and `close`. Every read of a shared descriptor names its offset
//! (`pread`, `sendfile` with an offset), so responses in flight do not
//! disturb each other. An open descriptor pins its file: a deleted file's
//! space is freed only when the descriptor is closed. So descriptors are
//! bounded in number ([`CacheLimits::max_open_files`]), a version that fails
//! its confirmation drops its descriptor at once, and one unused for
//! [`CacheLimits::close_unused_after`] is closed by the next sweep (the
//! bundled server sweeps on a timer; embedded, a sweep runs when a file is
//! opened). When an open fails for want of descriptors, the cache lets go
//! of all it keeps and tries once more.
//!
//! Memory is bounded by a byte budget (files above a size limit are never
//! held in memory, only their headers and descriptor) and an entry count;
//! when either is exceeded, arbitrary entries are dropped. When the
//! descriptor budget is spent, further large files are described without
//! one (opened per request, as without the cache) until a sweep frees some.

use std::collections::HashMap;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use http::HeaderValue;

use crate::files::budget::Budget;
use crate::files::fs::{Identity, MediaRoot, OpenError, identity_of};

mod entry;
mod limits;

pub(crate) use entry::{Content, Entry, etag};
pub use limits::CacheLimits;

#[derive(Debug)]
struct Map {
    entries: HashMap<Box<str>, Arc<Entry>>,
    /// Bytes of content held.
    bytes: usize,
    /// Entries holding a descriptor.
    open_files: usize,
    /// When unused descriptors were last swept, on the cache's clock.
    swept: u64,
}

impl Map {
    fn remove(&mut self, relative: &str) -> Option<Arc<Entry>> {
        let old = self.entries.remove(relative)?;
        self.bytes -= old.bytes.as_ref().map_or(0, Bytes::len);
        self.open_files -= usize::from(old.file.is_some());
        Some(old)
    }

    /// Drops the entries that keep a descriptor and match `unwanted`;
    /// returns how many. (Such entries hold no bytes.)
    fn drop_kept_where(&mut self, unwanted: impl Fn(&Entry) -> bool) -> usize {
        let mut dropped = 0;
        self.entries.retain(|_, e| {
            let drop = e.file.is_some() && unwanted(e);
            dropped += usize::from(drop);
            !drop
        });
        self.open_files -= dropped;
        dropped
    }
}

/// The cache of one [`MediaGate`](crate::MediaGate) and its clones; the
/// bundled server gives each worker thread its own.
#[derive(Debug)]
pub(crate) struct FileCache {
    map: RwLock<Map>,
    limits: CacheLimits,
    /// Files open for responses in progress (see
    /// [`CacheLimits::max_streaming_files`]).
    pub(crate) streaming: Budget,
    /// The origin of the entries' confirmation times.
    epoch: Instant,
    /// Counts uploads the service completed (shared by every worker's
    /// cache): an entry confirmed before the latest one is looked at again
    /// at once, so a download right after an upload never gets the
    /// version it replaced.
    written: Arc<AtomicU64>,
}

impl FileCache {
    /// A cache of its own uploads counter (none will be counted).
    #[cfg(test)]
    pub(crate) fn new(limits: CacheLimits) -> Self {
        FileCache::sharing(limits, Arc::default())
    }

    /// A cache that looks again at entries confirmed before the latest
    /// upload `written` counts.
    pub(crate) fn sharing(limits: CacheLimits, written: Arc<AtomicU64>) -> Self {
        FileCache {
            map: RwLock::new(Map {
                entries: HashMap::new(),
                bytes: 0,
                open_files: 0,
                swept: 0,
            }),
            streaming: Budget::new(limits.max_streaming_files),
            limits,
            epoch: Instant::now(),
            written,
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
            let held = match (&entry.bytes, &entry.file) {
                (Some(bytes), _) => Some(Content::Memory(bytes.clone())),
                (None, Some(file)) => Some(Content::File(file.clone())),
                (None, None) => None,
            };
            if let Some(content) = held {
                if self.still_current(root, relative, entry) {
                    crate::metrics::file_cache(true);
                    return Ok((entry.clone(), content));
                }
                // Changed or gone: let go of the old version (and of its
                // descriptor, which may pin a deleted file) before opening.
                self.forget(relative, entry);
            }
        }
        crate::metrics::file_cache(false);
        // A new entry's confirmation time must not be later than the open
        // that confirms it.
        let checked_at = self.now();
        let written = self.written.load(Ordering::Acquire);
        let opened = match root.open_file(relative) {
            // Out of descriptors: the ones kept for reuse are the first to
            // give back (those still sending stay open until done).
            Err(OpenError::Busy) if self.release_kept() > 0 => root.open_file(relative)?,
            other => other?,
        };
        let keep_file = self.has_file_room();
        if let Some(entry) = cached.filter(|e| e.identity == opened.identity) {
            if entry.file.is_none() && !keep_file {
                return Ok((entry, Content::File(Arc::new(opened.file))));
            }
        }
        let identity = opened.identity;
        let bytes = self.read_small(&opened.file, identity)?;
        let file = Arc::new(opened.file);
        let kept = (bytes.is_none() && keep_file).then(|| file.clone());
        let entry = Arc::new(Entry::new(
            identity,
            content_type(),
            bytes,
            kept,
            (checked_at, written),
        ));
        self.insert(relative, entry.clone());
        let content = match &entry.bytes {
            Some(b) => Content::Memory(b.clone()),
            None => Content::File(file),
        };
        Ok((entry, content))
    }

    /// Whether a large file opened now may keep its descriptor.
    fn has_file_room(&self) -> bool {
        self.limits.max_open_files > 0
            && self
                .map
                .read()
                .is_ok_and(|map| map.open_files < self.limits.max_open_files)
    }

    /// Drops `entry`, found stale, if it is still the one at `relative`.
    fn forget(&self, relative: &str, entry: &Arc<Entry>) {
        let Ok(mut map) = self.map.write() else {
            return;
        };
        if map
            .entries
            .get(relative)
            .is_some_and(|e| Arc::ptr_eq(e, entry))
        {
            map.remove(relative);
        }
    }

    /// Drops every entry that keeps a descriptor; returns how many.
    fn release_kept(&self) -> usize {
        self.map
            .write()
            .map_or(0, |mut map| map.drop_kept_where(|_| true))
    }

    /// Closes the descriptors not confirmed for
    /// [`CacheLimits::close_unused_after`] (responses still sending from
    /// one keep it open until they finish). Returns how many were dropped.
    pub(crate) fn close_unused(&self) -> usize {
        let now = self.now();
        let Ok(mut map) = self.map.write() else {
            return 0;
        };
        self.sweep(&mut map, now)
    }

    fn sweep(&self, map: &mut Map, now: u64) -> usize {
        map.swept = now;
        if map.open_files == 0 {
            return 0;
        }
        let limit = self.limits.close_unused_after.as_nanos();
        map.drop_kept_where(|e| {
            u128::from(now.saturating_sub(e.confirmed.load(Ordering::Relaxed))) >= limit
        })
    }

    /// How often the bundled server calls [`FileCache::close_unused`]: half
    /// the unused limit, so that a descriptor is closed at most 1.5 times
    /// that limit after its last use (and no more often than every 10 ms).
    pub(crate) fn sweep_period(&self) -> Duration {
        (self.limits.close_unused_after / 2).max(Duration::from_millis(10))
    }

    /// Whether `entry` is still the version at `relative`: confirmed
    /// within the revalidation window, or confirmed again now.
    fn still_current(&self, root: &MediaRoot, relative: &str, entry: &Entry) -> bool {
        let window = self.limits.revalidate_after;
        // Taken before the check: a change during it falls in the next window.
        let now = self.now();
        let written = self.written.load(Ordering::Acquire);
        if !window.is_zero() && entry.written.load(Ordering::Relaxed) == written {
            let age = now.saturating_sub(entry.confirmed.load(Ordering::Relaxed));
            if u128::from(age) < window.as_nanos() {
                return true;
            }
        }
        // Confirmed again: also what marks a kept descriptor used, for the
        // sweeps, with a zero window too.
        let same = root.identity_at(relative) == Some(entry.identity);
        if same {
            entry.confirmed.store(now, Ordering::Relaxed);
            entry.written.store(written, Ordering::Relaxed);
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
        map.remove(relative);
        // Embedded without the server's timer, sweeps run here, where a
        // file was just opened anyway.
        let now = self.now();
        if u128::from(now.saturating_sub(map.swept)) >= self.sweep_period().as_nanos() {
            self.sweep(&mut map, now);
        }
        if entry.file.is_some() {
            // Two threads sharing the cache may both have seen room for one.
            while map.open_files >= self.limits.max_open_files {
                let Some(victim) = map
                    .entries
                    .iter()
                    .find(|(_, e)| e.file.is_some())
                    .map(|(k, _)| k.clone())
                else {
                    return;
                };
                map.remove(&victim);
            }
        }
        while !map.entries.is_empty()
            && (map.entries.len() >= self.limits.max_entries
                || map.bytes + size > self.limits.max_bytes)
        {
            // HashMap order is randomized per process: random eviction.
            let Some(victim) = map.entries.keys().next().cloned() else {
                break;
            };
            map.remove(&victim);
        }
        if map.bytes + size <= self.limits.max_bytes && self.limits.max_entries > 0 {
            map.bytes += size;
            map.open_files += usize::from(entry.file.is_some());
            map.entries.insert(relative.into(), entry);
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

    fn file(c: &Content) -> &Arc<File> {
        match c {
            Content::File(f) => f,
            Content::Memory(_) => panic!("expected a file"),
        }
    }

    fn read_all(f: &File) -> Vec<u8> {
        let mut buf = vec![0u8; 256];
        let n = f.read_at(&mut buf, 0).unwrap();
        buf.truncate(n);
        buf
    }

    /// Large files (above 16 bytes), checked on every hit.
    fn large(limits: CacheLimits) -> FileCache {
        FileCache::new(CacheLimits {
            max_file_size: 16,
            revalidate_after: Duration::ZERO,
            ..limits
        })
    }

    fn open_files(cache: &FileCache) -> usize {
        cache.map.read().unwrap().open_files
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
        assert!(3 * part.max_open_files <= all.max_open_files);
        assert_eq!(part.close_unused_after, all.close_unused_after);
        let tiny = CacheLimits {
            max_bytes: 0,
            max_file_size: 10,
            max_entries: 1,
            max_open_files: 1,
            close_unused_after: Duration::ZERO,
            revalidate_after: Duration::ZERO,
            max_streaming_files: 2,
        };
        assert_eq!(tiny.share(4).max_entries, 1, "never zero entries");
        assert_eq!(tiny.share(4).max_streaming_files, 1, "never zero files");
        assert_eq!(tiny.share(4).max_open_files, 0, "a part may keep none");
        assert_eq!(all.within_open_files(1 << 20), all);
        let fitted = all.within_open_files(1024);
        assert_eq!(fitted.max_open_files, 240);
        // Half of what is left: the other half is for sockets.
        assert_eq!(fitted.max_streaming_files, 360);
        assert_eq!(all.within_open_files(10).max_open_files, 0);
        assert_eq!(all.within_open_files(10).max_streaming_files, 0);
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
        std::fs::write(dir.path().join("secret"), [b's'; 64]).unwrap();
        let root = MediaRoot::open(&root_dir).unwrap();
        // A small file (held in memory) and a large one (its descriptor
        // kept), each replaced by a symlink to a file outside the root.
        for (name, len) in [("a.txt", 8), ("b.bin", 64)] {
            std::fs::write(root_dir.join(name), vec![b'i'; len]).unwrap();
            let cache = large(CacheLimits::default());
            let (entry, _) = cache.resolve(&root, name, ct).unwrap();
            assert_eq!(entry.file.is_some(), len > 16);
            std::fs::remove_file(root_dir.join(name)).unwrap();
            std::os::unix::fs::symlink(dir.path().join("secret"), root_dir.join(name)).unwrap();
            assert!(matches!(
                cache.resolve(&root, name, ct),
                Err(OpenError::NotFound)
            ));
            assert_eq!(open_files(&cache), 0);
        }
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
        assert!(small.file.is_none(), "a small file keeps no descriptor");
        std::fs::write(dir.path().join("b.bin"), b"other").unwrap();
        std::fs::rename(dir.path().join("b.bin"), dir.path().join("a.bin")).unwrap();
        std::thread::sleep(window);
        let (_, c3) = cache.resolve(&root, "a.bin", ct).unwrap();
        assert_eq!(memory(&c3), b"other");
    }

    #[test]
    fn a_large_file_keeps_its_descriptor_while_unchanged() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.bin"), [1u8; 64]).unwrap();
        let root = MediaRoot::open(dir.path()).unwrap();
        let cache = large(CacheLimits::default());
        let (e1, c1) = cache.resolve(&root, "a.bin", ct).unwrap();
        let (e2, c2) = cache.resolve(&root, "a.bin", ct).unwrap();
        assert!(Arc::ptr_eq(&e1, &e2) && Arc::ptr_eq(file(&c1), file(&c2)));
        assert_eq!(open_files(&cache), 1);
        // Replaced: the new version, on a new descriptor; the old one is
        // no longer held by the cache.
        std::fs::write(dir.path().join("b.bin"), [2u8; 80]).unwrap();
        std::fs::rename(dir.path().join("b.bin"), dir.path().join("a.bin")).unwrap();
        let (e3, c3) = cache.resolve(&root, "a.bin", ct).unwrap();
        assert!(!Arc::ptr_eq(file(&c1), file(&c3)));
        assert_eq!(read_all(file(&c3)), [2u8; 80]);
        assert_eq!(e3.identity.len, 80);
        assert_eq!(open_files(&cache), 1);
        drop((e1, e2, c2));
        assert_eq!(
            Arc::strong_count(file(&c1)),
            1,
            "only the response holds it"
        );
        // Deleted: not found, and the descriptor (pinning the deleted
        // file's space) is let go of at once.
        std::fs::remove_file(dir.path().join("a.bin")).unwrap();
        assert!(matches!(
            cache.resolve(&root, "a.bin", ct),
            Err(OpenError::NotFound)
        ));
        assert_eq!(open_files(&cache), 0);
        assert!(cache.get("a.bin").is_none());
    }

    #[test]
    fn descriptors_stay_within_their_budget() {
        let dir = tempfile::tempdir().unwrap();
        for i in 0..6 {
            std::fs::write(dir.path().join(format!("{i}")), [i; 64]).unwrap();
        }
        let root = MediaRoot::open(dir.path()).unwrap();
        let cache = large(CacheLimits {
            max_open_files: 2,
            close_unused_after: Duration::from_millis(50),
            ..CacheLimits::default()
        });
        for i in 0..6u8 {
            let (entry, c) = cache.resolve(&root, &i.to_string(), ct).unwrap();
            assert_eq!(read_all(file(&c)), [i; 64], "served either way");
            assert_eq!(entry.file.is_some(), i < 2);
            assert!(open_files(&cache) <= 2);
        }
        // Past the budget, a file is described without a descriptor, and
        // gets one once a sweep has made room.
        let (e5, _) = cache.resolve(&root, "5", ct).unwrap();
        assert!(e5.file.is_none());
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(cache.close_unused(), 2);
        assert_eq!(open_files(&cache), 0);
        let (e5, c5) = cache.resolve(&root, "5", ct).unwrap();
        assert!(Arc::ptr_eq(e5.file.as_ref().unwrap(), file(&c5)));
        assert_eq!(open_files(&cache), 1);
    }

    #[test]
    fn a_descriptor_unused_for_its_limit_is_closed() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.bin"), [1u8; 64]).unwrap();
        std::fs::write(dir.path().join("b.bin"), [2u8; 64]).unwrap();
        let root = MediaRoot::open(dir.path()).unwrap();
        let unused = Duration::from_millis(100);
        let cache = large(CacheLimits {
            close_unused_after: unused,
            ..CacheLimits::default()
        });
        let started = Instant::now();
        let (_, c) = cache.resolve(&root, "a.bin", ct).unwrap();
        let held = file(&c).clone();
        drop(c);
        if started.elapsed() < unused {
            assert_eq!(cache.close_unused(), 0, "used just now");
            assert_eq!(Arc::strong_count(&held), 2);
        }
        std::thread::sleep(unused);
        // Embedded, without the server's timer: opening another file sweeps.
        cache.resolve(&root, "b.bin", ct).unwrap();
        assert_eq!(Arc::strong_count(&held), 1, "the cache let go of it");
        assert!(cache.get("a.bin").is_none());
        assert_eq!(open_files(&cache), 1);
        // Each confirmation counts as a use.
        let cache = large(CacheLimits {
            close_unused_after: Duration::from_millis(40),
            ..CacheLimits::default()
        });
        let (e, _) = cache.resolve(&root, "a.bin", ct).unwrap();
        for _ in 0..4 {
            std::thread::sleep(Duration::from_millis(15));
            cache.resolve(&root, "a.bin", ct).unwrap();
            assert_eq!(cache.close_unused(), 0);
        }
        assert!(Arc::ptr_eq(&e, &cache.get("a.bin").unwrap()));
    }

    #[test]
    fn no_descriptor_is_kept_with_a_budget_of_zero() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.bin"), [1u8; 64]).unwrap();
        let root = MediaRoot::open(dir.path()).unwrap();
        let cache = large(CacheLimits {
            max_open_files: 0,
            ..CacheLimits::default()
        });
        let (e1, c1) = cache.resolve(&root, "a.bin", ct).unwrap();
        let (e2, c2) = cache.resolve(&root, "a.bin", ct).unwrap();
        assert!(Arc::ptr_eq(&e1, &e2), "still described once");
        assert!(e1.file.is_none() && !Arc::ptr_eq(file(&c1), file(&c2)));
        assert_eq!(open_files(&cache), 0);
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
