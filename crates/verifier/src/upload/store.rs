//! Where an upload's bytes go: a temporary file in the target's directory,
//! confined beneath the media root, put in place atomically once whole.
//!
//! The target's directory is reached from the root one component at a
//! time, each opened with `O_NOFOLLOW | O_DIRECTORY` (and created, when
//! configured, with `mkdirat` in the directory just opened): no symlink in
//! any component, and no way out of the root (request paths hold no `..`).
//!
//! The body is written to an unnamed file (`O_TMPFILE`) in that directory,
//! which nothing can see and which vanishes with its descriptor: a failed
//! upload, or a server killed mid-upload, leaves nothing behind. Once the
//! bytes are checked it is flushed (`fsync`) and linked into place:
//! create-only with `linkat`, which fails if the name exists, so of many
//! uploads to one name exactly one wins; a replace links it under a
//! temporary name and renames that over the target. Then the directory is
//! flushed. Where `O_TMPFILE` is not supported (some file systems, or no
//! `/proc` to link it by), a named temporary `.mg-upload.*` is used instead,
//! removed on failure, put in place with `renameat2(RENAME_NOREPLACE)`, and
//! swept at the next start if the server was killed ([`sweep_temporaries`]).

use std::fs::File;
use std::io;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use rustix::fs::{AtFlags, FileType, Mode, OFlags, RenameFlags};
use rustix::io::Errno;

use crate::files::fs::{Identity, OpenError, identity_of};

/// The prefix of a named temporary file. The verifier never serves, and
/// never accepts an upload to, a name that starts with it.
pub(crate) const TEMP_PREFIX: &str = ".mg-upload.";

/// Why an upload cannot be stored.
#[derive(Debug)]
pub(crate) enum StoreError {
    /// A file is at the name and the link may not replace it.
    Exists,
    /// A directory (or another non-file) is at the name.
    NotAFile,
    /// A directory on the way is missing (and creating it is off), is not
    /// a directory, or is a symlink.
    NoDirectory,
    /// No space (or the file-size limit was reached).
    NoSpace,
    /// Out of descriptors.
    Busy,
    /// The server may not write there (permissions, a read-only file
    /// system): the operator's setting, not the client's fault.
    NotWritable,
    /// Another failure (a server fault, logged).
    Io(io::Error),
}

impl StoreError {
    pub(crate) fn of(e: Errno) -> StoreError {
        match e {
            Errno::NOSPC | Errno::DQUOT | Errno::FBIG => StoreError::NoSpace,
            Errno::MFILE | Errno::NFILE | Errno::NOMEM => StoreError::Busy,
            Errno::ACCESS | Errno::PERM | Errno::ROFS => StoreError::NotWritable,
            other => StoreError::Io(other.into()),
        }
    }
}

/// The directory an upload goes into, and its name there.
#[derive(Debug)]
pub(crate) struct Target {
    dir: OwnedFd,
    name: String,
}

/// Opens the directory of `relative` (a canonical media path without its
/// leading `/`, naming a file) beneath `root`, creating missing
/// directories with `dir_mode` when `create_dirs`.
pub(crate) fn target(
    root: BorrowedFd<'_>,
    relative: &str,
    create_dirs: bool,
    dir_mode: u32,
) -> Result<Target, StoreError> {
    let (parent, name) = match relative.rsplit_once('/') {
        Some((parent, name)) => (Some(parent), name),
        None => (None, relative),
    };
    if name.is_empty() {
        return Err(StoreError::NotAFile);
    }
    let dir_flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let mut dir =
        rustix::fs::openat(root, ".", dir_flags, Mode::empty()).map_err(StoreError::of)?;
    for segment in parent.into_iter().flat_map(|p| p.split('/')) {
        let next = match rustix::fs::openat(&dir, segment, dir_flags, Mode::empty()) {
            Err(Errno::NOENT) if create_dirs => {
                match rustix::fs::mkdirat(&dir, segment, Mode::from_raw_mode(dir_mode)) {
                    Ok(()) | Err(Errno::EXIST) => {}
                    Err(e) => return Err(StoreError::of(e)),
                }
                rustix::fs::openat(&dir, segment, dir_flags, Mode::empty())
            }
            other => other,
        };
        dir = next.map_err(|e| match e {
            Errno::NOENT | Errno::NOTDIR | Errno::LOOP | Errno::ACCESS | Errno::PERM => {
                StoreError::NoDirectory
            }
            e => StoreError::of(e),
        })?;
    }
    Ok(Target {
        dir,
        name: name.to_owned(),
    })
}

impl Target {
    /// Whether something is at the name now: `Ok(false)` if nothing,
    /// [`StoreError::Exists`] for a file (or symlink) the upload may not
    /// replace, [`StoreError::NotAFile`] for a directory or other node.
    /// The final link decides a race; this refuses early, before the body.
    pub(crate) fn check_existing(&self, replace: bool) -> Result<bool, StoreError> {
        match rustix::fs::statat(&self.dir, self.name.as_str(), AtFlags::SYMLINK_NOFOLLOW) {
            Err(Errno::NOENT) => Ok(false),
            Err(e) => Err(StoreError::of(e)),
            Ok(st) => match FileType::from_raw_mode(st.st_mode) {
                FileType::RegularFile | FileType::Symlink if replace => Ok(true),
                FileType::RegularFile | FileType::Symlink => Err(StoreError::Exists),
                _ => Err(StoreError::NotAFile),
            },
        }
    }

    /// Bytes free for unprivileged users on the target's file system.
    pub(crate) fn free_bytes(&self) -> Result<u64, StoreError> {
        let st = rustix::fs::fstatvfs(&self.dir).map_err(StoreError::of)?;
        Ok(st.f_bavail.saturating_mul(st.f_frsize))
    }

    /// A new temporary file in the target's directory, with `mode` (never
    /// executable).
    pub(crate) fn temporary(&self, mode: u32, unnamed: bool) -> Result<Temp, StoreError> {
        let mode = Mode::from_raw_mode(mode & 0o666);
        if unnamed {
            let flags = OFlags::TMPFILE | OFlags::WRONLY | OFlags::CLOEXEC;
            match rustix::fs::openat(&self.dir, ".", flags, mode) {
                Ok(fd) => return Temp::made(fd, None, mode),
                // Not supported by this file system: a named one.
                Err(Errno::OPNOTSUPP | Errno::ISDIR | Errno::INVAL | Errno::NOENT) => {}
                Err(e) => return Err(StoreError::of(e)),
            }
        }
        loop {
            let name = temp_name();
            let flags =
                OFlags::CREATE | OFlags::EXCL | OFlags::WRONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
            match rustix::fs::openat(&self.dir, name.as_str(), flags, mode) {
                Ok(fd) => {
                    let dir = self.dir.try_clone().map_err(StoreError::Io)?;
                    return Temp::made(fd, Some((dir, name)), mode);
                }
                Err(Errno::EXIST) => continue,
                Err(e) => return Err(StoreError::of(e)),
            }
        }
    }

    /// Flushes `temp` (when `durable`), puts it at the name (replacing a
    /// file there only if `replace`), flushes the directory (when
    /// `durable`), and returns the identity of the file now at the name.
    pub(crate) fn commit(
        &self,
        mut temp: Temp,
        replace: bool,
        durable: bool,
    ) -> Result<Identity, StoreError> {
        if durable {
            rustix::fs::fsync(&temp.file).map_err(StoreError::of)?;
        }
        let name = self.name.as_str();
        match temp.named.take() {
            // An unnamed file: linked by its /proc name.
            None => {
                let proc = format!(
                    "/proc/self/fd/{}",
                    rustix::fd::AsRawFd::as_raw_fd(&temp.file)
                );
                let link = |at: &str| {
                    rustix::fs::linkat(
                        rustix::fs::CWD,
                        proc.as_str(),
                        &self.dir,
                        at,
                        AtFlags::SYMLINK_FOLLOW,
                    )
                };
                if replace {
                    let staged = loop {
                        let staged = temp_name();
                        match link(&staged) {
                            Ok(()) => break staged,
                            Err(Errno::EXIST) => continue,
                            Err(e) => return Err(StoreError::of(e)),
                        }
                    };
                    if let Err(e) =
                        rustix::fs::renameat(&self.dir, staged.as_str(), &self.dir, name)
                    {
                        let _ = rustix::fs::unlinkat(&self.dir, staged.as_str(), AtFlags::empty());
                        return Err(StoreError::of(e));
                    }
                } else {
                    link(name).map_err(|e| match e {
                        Errno::EXIST => StoreError::Exists,
                        e => StoreError::of(e),
                    })?;
                }
            }
            Some((dir, staged)) => {
                let placed = if replace {
                    rustix::fs::renameat(&dir, staged.as_str(), &self.dir, name)
                } else {
                    match rustix::fs::renameat_with(
                        &dir,
                        staged.as_str(),
                        &self.dir,
                        name,
                        RenameFlags::NOREPLACE,
                    ) {
                        // No RENAME_NOREPLACE here: a hard link fails the
                        // same way when the name exists.
                        Err(Errno::INVAL | Errno::NOSYS) => rustix::fs::linkat(
                            &dir,
                            staged.as_str(),
                            &self.dir,
                            name,
                            AtFlags::empty(),
                        )
                        .map(|()| {
                            let _ = rustix::fs::unlinkat(&dir, staged.as_str(), AtFlags::empty());
                        }),
                        other => other,
                    }
                };
                if let Err(e) = placed {
                    let _ = rustix::fs::unlinkat(&dir, staged.as_str(), AtFlags::empty());
                    return Err(match e {
                        Errno::EXIST => StoreError::Exists,
                        e => StoreError::of(e),
                    });
                }
            }
        }
        if durable {
            rustix::fs::fsync(&self.dir).map_err(StoreError::of)?;
        }
        match identity_of(&temp.file) {
            Ok(Some(identity)) => Ok(identity),
            Ok(None) => Err(StoreError::NotAFile),
            Err(OpenError::Io(e)) => Err(StoreError::Io(e)),
            Err(_) => Err(StoreError::Busy),
        }
    }
}

/// The file an upload is written to until it is put in place. Dropped
/// before that, it leaves nothing: an unnamed file vanishes with its
/// descriptor, a named one is removed.
#[derive(Debug)]
pub(crate) struct Temp {
    pub(crate) file: File,
    /// The directory and name of a named temporary.
    named: Option<(OwnedFd, String)>,
}

impl Temp {
    fn made(fd: OwnedFd, named: Option<(OwnedFd, String)>, mode: Mode) -> Result<Temp, StoreError> {
        let temp = Temp {
            file: File::from(fd),
            named,
        };
        // The mode asked for exactly, whatever the process's umask.
        rustix::fs::fchmod(&temp.file, mode).map_err(StoreError::of)?;
        Ok(temp)
    }

    /// Writes all of `bytes`.
    pub(crate) fn write_all(&mut self, bytes: &[u8]) -> Result<(), StoreError> {
        use std::io::Write as _;
        self.file
            .write_all(bytes)
            .map_err(|e| match e.raw_os_error() {
                Some(code) => StoreError::of(Errno::from_raw_os_error(code)),
                None => StoreError::Io(e),
            })
    }
}

impl Drop for Temp {
    fn drop(&mut self) {
        if let Some((dir, name)) = self.named.take() {
            let _ = rustix::fs::unlinkat(&dir, name.as_str(), AtFlags::empty());
        }
    }
}

/// A name for a temporary file, unique in this process and unlikely to
/// meet another's (the caller retries on a clash).
fn temp_name() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!("{TEMP_PREFIX}{:x}.{n:x}.{nanos:x}", std::process::id())
}

/// Whether unnamed temporaries can be linked into place here: `/proc` is
/// mounted (the file system's support is found out per directory).
pub(crate) fn unnamed_supported() -> bool {
    Path::new("/proc/self/fd").is_dir()
}

/// Removes the named temporaries a killed server left beneath `root` (at
/// most `limit` directories are visited); returns how many. Symlinks are
/// not followed.
pub(crate) fn sweep_temporaries(root: &Path, limit: usize) -> usize {
    let mut removed = 0;
    let mut visited = 0;
    let mut stack = vec![root.to_owned()];
    while let Some(dir) = stack.pop() {
        visited += 1;
        if visited > limit {
            break;
        }
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            if kind.is_dir() {
                stack.push(entry.path());
            } else if kind.is_file()
                && entry
                    .file_name()
                    .to_str()
                    .is_some_and(|n| n.starts_with(TEMP_PREFIX))
                && std::fs::remove_file(entry.path()).is_ok()
            {
                removed += 1;
            }
        }
    }
    removed
}

/// Whether `relative` (a canonical media path) names a temporary upload
/// file, which is never served nor uploaded to.
pub(crate) fn is_temporary(relative: &str) -> bool {
    relative
        .rsplit('/')
        .next()
        .is_some_and(|name| name.starts_with(TEMP_PREFIX))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd as _;

    fn root() -> (tempfile::TempDir, OwnedFd) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("d")).unwrap();
        let fd = rustix::fs::open(
            dir.path(),
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .unwrap();
        (dir, fd)
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut n: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        n.sort();
        n
    }

    #[test]
    fn both_kinds_of_temporary_create_once_and_replace() {
        for unnamed in [true, false] {
            let (dir, fd) = root();
            let t = target(fd.as_fd(), "d/a.bin", false, 0o750).unwrap();
            assert!(!t.check_existing(false).unwrap());
            let mut temp = t.temporary(0o640, unnamed).unwrap();
            temp.write_all(b"one").unwrap();
            // A named temporary shows while it is written; an unnamed one never.
            assert_eq!(names(&dir.path().join("d")).len(), usize::from(!unnamed));
            t.commit(temp, false, true).unwrap();
            assert_eq!(std::fs::read(dir.path().join("d/a.bin")).unwrap(), b"one");
            assert!(matches!(t.check_existing(false), Err(StoreError::Exists)));
            let mut temp = t.temporary(0o640, unnamed).unwrap();
            temp.write_all(b"two").unwrap();
            assert!(matches!(
                t.commit(temp, false, false),
                Err(StoreError::Exists)
            ));
            let mut temp = t.temporary(0o640, unnamed).unwrap();
            temp.write_all(b"three").unwrap();
            let id = t.commit(temp, true, true).unwrap();
            assert_eq!(id.len, 5);
            assert_eq!(std::fs::read(dir.path().join("d/a.bin")).unwrap(), b"three");
            // A temporary dropped unused leaves nothing.
            drop(t.temporary(0o640, unnamed).unwrap());
            assert_eq!(
                names(&dir.path().join("d")),
                ["a.bin"],
                "unnamed: {unnamed}"
            );
        }
    }

    #[test]
    fn stale_named_temporaries_are_swept() {
        let (dir, _) = root();
        std::fs::write(dir.path().join("d/.mg-upload.1.2.3"), b"x").unwrap();
        std::fs::write(dir.path().join("d/keep.bin"), b"x").unwrap();
        assert_eq!(sweep_temporaries(dir.path(), 100), 1);
        assert_eq!(names(&dir.path().join("d")), ["keep.bin"]);
        assert!(is_temporary("a/.mg-upload.x"));
        assert!(!is_temporary(".mg-upload.x/a"));
    }
}
