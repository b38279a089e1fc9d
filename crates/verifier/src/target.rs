//! From the request target to the canonical media path: strip the mount
//! prefix, then decode once and validate (see [`MediaPath`]).

use mediagate_signer::MediaPath;

use crate::reject::Reject;

/// The part of the raw (still encoded) path below `mount` (no trailing
/// slash; empty for `/`), starting with `/`; `None` when the path is not
/// under the mount.
pub(crate) fn strip_mount<'a>(raw_path: &'a str, mount: &str) -> Option<&'a str> {
    let rest = raw_path.strip_prefix(mount)?;
    rest.starts_with('/').then_some(rest)
}

/// Decodes the path below the mount to its canonical form. A path below
/// the path-form marker (`/_mg/`) once decoded is refused like any other
/// bad path: the marker is matched in the raw path, so `/%5Fmg/T/a` is no
/// path-form token, and it must not be a file path either.
pub(crate) fn canonical(raw: &str) -> Result<MediaPath<'_>, Reject> {
    MediaPath::from_uri_path(raw)
        .ok()
        .filter(|p| !p.is_reserved())
        .ok_or(Reject::BadPath)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mount_prefix_is_matched_by_segment() {
        assert_eq!(strip_mount("/media/a", "/media"), Some("/a"));
        assert_eq!(strip_mount("/media/", "/media"), Some("/"));
        assert_eq!(strip_mount("/media", "/media"), None);
        assert_eq!(strip_mount("/mediax/a", "/media"), None);
        assert_eq!(strip_mount("/a/b", ""), Some("/a/b"));
    }

    #[test]
    fn paths_below_the_marker_are_no_files() {
        for raw in [
            "/_mg/T/a.txt",
            "/%5Fmg/T/a.txt",
            "/%5fmg/T/a.txt",
            "/_m%67/T/",
        ] {
            assert_eq!(canonical(raw).err(), Some(Reject::BadPath), "{raw}");
        }
        for raw in ["/_mg", "/_mgx/a", "/a/_mg/b", "/%5FMG/a"] {
            assert!(canonical(raw).is_ok(), "{raw}");
        }
    }
}
