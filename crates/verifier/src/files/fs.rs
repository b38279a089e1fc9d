//! The media root, and opening files confined beneath it.
//!
//! The root is canonicalized and opened once, at start-up. Each request opens
//! its file *relative to that directory handle*, with `openat2(2)` and
//! `RESOLVE_BENEATH`: the kernel refuses any resolution, through `..` or a
//! symlink, that leaves the root. Where `openat2` is missing (Linux before
//! 5.6, or filtered by a sandbox) each component is opened in turn with
//! `O_NOFOLLOW`, which refuses every symlink. Request paths are canonical
//! (no `.`, `..` or empty segments) before they get here; confinement does not
//! depend on that.
//!
//! Only regular files are served: the type, length and modification time
//! come from the opened handle (`fstat`), never from an earlier look at the
//! path, and files are opened non-blocking so that a FIFO cannot stall a
//! worker.

use std::fs::File;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use rustix::fs::{AtFlags, Mode, OFlags, ResolveFlags, StatxFlags};
use rustix::io::Errno;

use crate::access_log::FileChanged;

/// Why the media root cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RootError {
    /// The root does not exist or cannot be resolved.
    #[error("media root {path}: {source}")]
    Resolve {
        /// The root as given.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// The root is not a directory.
    #[error("media root {0} is not a directory")]
    NotADirectory(PathBuf),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Strategy {
    Beneath,
    NoFollowWalk,
}

/// The directory media is served from.
#[derive(Debug)]
pub(crate) struct MediaRoot {
    dir: OwnedFd,
    path: PathBuf,
    strategy: Strategy,
}

/// An opened regular file with the metadata of that very handle.
#[derive(Debug)]
pub(crate) struct OpenedFile {
    pub file: File,
    pub identity: Identity,
}

/// What identifies one version of one file: device, inode, size and
/// change times. Two equal identities mean the same, unchanged file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct Identity {
    pub dev: (u32, u32),
    pub ino: u64,
    pub len: u64,
    pub mtime: (i64, u32),
    pub ctime: (i64, u32),
}

impl Identity {
    fn from_statx(st: &rustix::fs::Statx) -> Identity {
        Identity {
            dev: (st.stx_dev_major, st.stx_dev_minor),
            ino: st.stx_ino,
            len: st.stx_size,
            mtime: (st.stx_mtime.tv_sec, st.stx_mtime.tv_nsec),
            ctime: (st.stx_ctime.tv_sec, st.stx_ctime.tv_nsec),
        }
    }

    /// The modification time, when it is after the epoch.
    pub fn modified(&self) -> Option<SystemTime> {
        let (secs, nanos) = self.mtime;
        let secs = u64::try_from(secs).ok()?;
        SystemTime::UNIX_EPOCH.checked_add(std::time::Duration::new(secs, nanos))
    }
}

const STATX_MASK: StatxFlags = StatxFlags::TYPE
    .union(StatxFlags::INO)
    .union(StatxFlags::SIZE)
    .union(StatxFlags::MTIME)
    .union(StatxFlags::CTIME);

fn regular(st: &rustix::fs::Statx) -> bool {
    u32::from(st.stx_mode) & 0o170000 == 0o100000
}

/// Fails when the open file `fd` is no longer the version `was`: with an
/// `UnexpectedEof` error when it got shorter, with [`FileChanged`] when its
/// size or modification time differ otherwise (a write, `cp` over it), or
/// its change time does while it is still linked (a write whose
/// modification time was set back, as `rsync --inplace -t` does), or it
/// cannot be looked at. A file replaced by rename or deleted is unlinked,
/// which changes its change time only: its descriptor still reads the old
/// version whole. One `statx`.
pub(crate) fn check_version(fd: &File, was: &Identity) -> std::io::Result<()> {
    let Ok(st) = rustix::fs::statx(fd, "", AtFlags::EMPTY_PATH, STATX_MASK | StatxFlags::NLINK)
    else {
        return Err(FileChanged::error());
    };
    let now = Identity::from_statx(&st);
    let unlinked = st.stx_nlink == 0;
    if now.len < was.len {
        return Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "file shrank while being sent",
        ));
    }
    if now.len != was.len || now.mtime != was.mtime || (now.ctime != was.ctime && !unlinked) {
        return Err(FileChanged::error());
    }
    Ok(())
}

/// The identity of the open file `fd`, if it is a regular file.
pub(crate) fn identity_of(fd: &File) -> Result<Option<Identity>, OpenError> {
    let st = rustix::fs::statx(fd, "", AtFlags::EMPTY_PATH, STATX_MASK).map_err(map_errno)?;
    Ok(regular(&st).then(|| Identity::from_statx(&st)))
}

/// Why a file cannot be served.
#[derive(Debug)]
pub(crate) enum OpenError {
    /// Missing, not a regular file, or not reachable beneath the root.
    NotFound,
    /// Out of file descriptors: the client should retry.
    Busy,
    /// Any other I/O failure (a server fault, logged).
    Io(io::Error),
}

impl MediaRoot {
    /// Canonicalizes and opens `path`, and picks the confinement strategy the
    /// kernel supports.
    pub(crate) fn open(path: &Path) -> Result<Self, RootError> {
        let resolve = |source| RootError::Resolve {
            path: path.to_owned(),
            source,
        };
        let canonical = std::fs::canonicalize(path).map_err(resolve)?;
        let dir = rustix::fs::open(
            &canonical,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| {
            if e == Errno::NOTDIR {
                RootError::NotADirectory(canonical.clone())
            } else {
                resolve(e.into())
            }
        })?;
        let strategy = match rustix::fs::openat2(
            &dir,
            ".",
            OFlags::PATH | OFlags::CLOEXEC,
            Mode::empty(),
            ResolveFlags::BENEATH,
        ) {
            Ok(_) => Strategy::Beneath,
            Err(_) => Strategy::NoFollowWalk,
        };
        Ok(MediaRoot {
            dir,
            path: canonical,
            strategy,
        })
    }

    /// The canonical root path.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// The root directory's handle (`O_PATH`), for uploads, which walk
    /// from it one component at a time.
    pub(crate) fn dir(&self) -> std::os::fd::BorrowedFd<'_> {
        self.dir.as_fd()
    }

    /// Opens `relative` (a canonical media path without its leading `/`)
    /// beneath the root.
    pub(crate) fn open_file(&self, relative: &str) -> Result<OpenedFile, OpenError> {
        if relative.is_empty() || relative.ends_with('/') {
            return Err(OpenError::NotFound);
        }
        let flags = OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOCTTY | OFlags::NONBLOCK;
        let fd = match self.strategy {
            Strategy::Beneath => rustix::fs::openat2(
                &self.dir,
                relative,
                flags,
                Mode::empty(),
                ResolveFlags::BENEATH | ResolveFlags::NO_MAGICLINKS,
            ),
            Strategy::NoFollowWalk => self.walk(relative, flags),
        }
        .map_err(map_errno)?;
        let file = File::from(fd);
        let identity = identity_of(&file)?.ok_or(OpenError::NotFound)?;
        Ok(OpenedFile { file, identity })
    }

    /// The identity of the regular file at `relative`, without following a
    /// final symlink and without opening it: a cheap check that a cached
    /// file is still the one at this path. The result only ever confirms a
    /// file that was opened beneath the root before; it never grants access
    /// by itself.
    pub(crate) fn identity_at(&self, relative: &str) -> Option<Identity> {
        let st =
            rustix::fs::statx(&self.dir, relative, AtFlags::SYMLINK_NOFOLLOW, STATX_MASK).ok()?;
        regular(&st).then(|| Identity::from_statx(&st))
    }

    fn walk(&self, relative: &str, flags: OFlags) -> Result<OwnedFd, Errno> {
        let mut segments = relative.split('/').peekable();
        let mut current: Option<OwnedFd> = None;
        while let Some(segment) = segments.next() {
            let parent = current.as_ref().map_or(self.dir.as_fd(), |fd| fd.as_fd());
            if segments.peek().is_none() {
                return rustix::fs::openat(
                    parent,
                    segment,
                    flags | OFlags::NOFOLLOW,
                    Mode::empty(),
                );
            }
            current = Some(rustix::fs::openat(
                parent,
                segment,
                OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            )?);
        }
        Err(Errno::NOENT)
    }
}

fn map_errno(e: Errno) -> OpenError {
    match e {
        // Missing, a symlink where none may be, an escape from the root, a
        // path through a non-directory, a name too long, or no permission:
        // all look the same to the client.
        Errno::NOENT
        | Errno::NOTDIR
        | Errno::LOOP
        | Errno::XDEV
        | Errno::NAMETOOLONG
        | Errno::ACCESS
        | Errno::PERM
        | Errno::ISDIR
        | Errno::NXIO
        | Errno::NODEV
        | Errno::AGAIN => OpenError::NotFound,
        Errno::MFILE | Errno::NFILE | Errno::NOMEM => OpenError::Busy,
        other => OpenError::Io(other.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn setup() -> (tempfile::TempDir, MediaRoot) {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("root");
        std::fs::create_dir_all(root.join("sub")).unwrap();
        std::fs::write(root.join("a.txt"), b"hello").unwrap();
        std::fs::write(root.join("sub/b.txt"), b"bee").unwrap();
        std::fs::write(tmp.path().join("secret.txt"), b"secret").unwrap();
        symlink(tmp.path().join("secret.txt"), root.join("out")).unwrap();
        symlink("../secret.txt", root.join("sub/rel-out")).unwrap();
        symlink("a.txt", root.join("in")).unwrap();
        let r = MediaRoot::open(&root).unwrap();
        (tmp, r)
    }

    fn check(root: &MediaRoot) {
        assert_eq!(root.open_file("a.txt").unwrap().identity.len, 5);
        assert_eq!(root.open_file("sub/b.txt").unwrap().identity.len, 3);
        let id = root.open_file("a.txt").unwrap().identity;
        assert_eq!(root.identity_at("a.txt"), Some(id));
        assert_eq!(root.identity_at("out"), None);
        assert_eq!(root.identity_at("sub"), None);
        for bad in [
            "out",
            "sub/rel-out",
            "missing",
            "sub",
            "sub/",
            "",
            "a.txt/x",
        ] {
            assert!(
                matches!(root.open_file(bad), Err(OpenError::NotFound)),
                "{bad} must not open"
            );
        }
    }

    #[test]
    fn confines_beneath_the_root() {
        let (_tmp, root) = setup();
        check(&root);
        if root.strategy == Strategy::Beneath {
            // Symlinks that stay inside are followed.
            assert_eq!(root.open_file("in").unwrap().identity.len, 5);
        }
    }

    #[test]
    fn fallback_walk_confines_too() {
        let (_tmp, mut root) = setup();
        root.strategy = Strategy::NoFollowWalk;
        check(&root);
        assert!(matches!(root.open_file("in"), Err(OpenError::NotFound)));
    }

    #[test]
    fn bad_roots_are_errors() {
        let tmp = tempfile::tempdir().unwrap();
        assert!(matches!(
            MediaRoot::open(&tmp.path().join("nope")),
            Err(RootError::Resolve { .. })
        ));
        let f = tmp.path().join("file");
        std::fs::write(&f, b"x").unwrap();
        assert!(matches!(
            MediaRoot::open(&f),
            Err(RootError::NotADirectory(_))
        ));
    }
}
