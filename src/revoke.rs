//! `mediagate revoke`: takes links back before they expire, by writing the
//! revocations file that running servers follow (see
//! `mediagate_signer::revoke`), and where that file is.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use mediagate::signer::revoke::{Entry, LinkId, Revocations};
use mediagate::signer::time::format_description::well_known::Rfc3339;
use mediagate::signer::time::{Duration, OffsetDateTime};

use crate::cli::RevokeArgs;

/// The revocations file's name when it sits beside the keys file.
pub(crate) const BESIDE_KEYS: &str = "revocations.toml";

/// The largest revocations file read: a million rules fit.
const MAX_FILE: u64 = 256 << 20;

/// The revocations file: `explicit` if given, else `revocations.toml`
/// beside the keys file; `None` when neither is known.
pub(crate) fn file_of(explicit: Option<&Path>, keys: Option<&Path>) -> Option<PathBuf> {
    if let Some(file) = explicit {
        return Some(file.to_owned());
    }
    let keys = keys?;
    let dir = keys.parent().filter(|d| !d.as_os_str().is_empty());
    Some(dir.unwrap_or(Path::new(".")).join(BESIDE_KEYS))
}

/// Reads a revocations file; a missing one is an empty set.
pub(crate) fn load(file: &Path) -> Result<Revocations> {
    let too_large = "larger than 256 MiB, not a revocations file";
    let text = match crate::serve::read_capped(file, MAX_FILE, too_large) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Revocations::new()),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", file.display())),
    };
    Revocations::from_toml(&text).map_err(|e| anyhow!("{}: {e}", file.display()))
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_else(|_| t.to_string())
}

/// Runs `mediagate revoke`.
pub(crate) fn revoke(args: &RevokeArgs) -> Result<()> {
    if let Some(url) = &args.redis {
        crate::redis_revocations::refuse_password_in_args(url)?;
        return revoke_in_redis(args, url);
    }
    let file = file_of(args.revocations.as_deref(), args.keys.as_deref()).ok_or_else(|| {
        anyhow!(
            "no revocations file: pass --revocations FILE (or --keys FILE to use the one beside it)"
        )
    })?;
    if args.list {
        return print_list(&load(&file)?, &file.display().to_string());
    }
    let now = OffsetDateTime::now_utc();
    let (rule, whose) = rule_of(args, now)?;
    let said = format!("{}{whose}", describe(&rule));
    // One writer at a time: a second `revoke` waits, so no rule is lost.
    let _lock = lock(&file)?;
    let mut set = load(&file)?;
    set.add(&rule)?;
    let dropped = set.prune(now);
    crate::keys::write_private(&file, &set.to_toml())?;
    say!(
        "revoked {said}; {} rule(s) in {}{}",
        set.len(),
        file.display(),
        if dropped > 0 {
            format!(" ({dropped} expired rule(s) dropped)")
        } else {
            String::new()
        }
    )?;
    Ok(())
}

/// The rule `args` ask for, checked, and for a link whose it is.
fn rule_of(args: &RevokeArgs, now: OffsetDateTime) -> Result<(Entry, String)> {
    let keep_for = args.keep_for;
    // What to record, worked out (and checked) before the file is touched.
    let mut whose = String::new();
    let rule = if let Some(user) = &args.user {
        // Up to the end of this second: a link signed a moment ago is one of
        // those handed out so far.
        let before = match args.before {
            Some(t) => t,
            None => now.replace_nanosecond(0).unwrap_or(now) + Duration::SECOND,
        };
        Entry::IssuedBefore {
            user: user.clone(),
            before,
            until: before + keep_for,
        }
    } else if let Some(spec) = &args.generation {
        let (user, below) = spec
            .rsplit_once(':')
            .and_then(|(u, n)| Some((u.to_owned(), n.parse::<u64>().ok()?)))
            .ok_or_else(|| anyhow!("--generation: expected USER:N, like 42:7"))?;
        Entry::Generation {
            user,
            below,
            until: now + keep_for,
        }
    } else if let Some(link) = &args.link {
        let link = crate::inspect::link_input(link)?;
        let (token, _) = crate::inspect::locate(&link)?;
        let id = LinkId::of_token(&token).map_err(|e| anyhow!("not a mediagate link: {e}"))?;
        let claims = mediagate::signer::decode_unverified(&token)
            .map_err(|e| anyhow!("not a mediagate link: {e}"))?;
        // Kept until it would have expired anyway, leeway included.
        let until = (claims.expires_at() + mediagate::signer::DEFAULT_LEEWAY).max(now);
        whose = format!(" (user {}, path {})", claims.subject(), claims.path());
        Entry::Link { id, until }
    } else {
        bail!("say what to revoke: --user USER, --generation USER:N or --link URL (or --list)");
    };
    Revocations::new().add(&rule)?;
    Ok((rule, whose))
}

/// A rule in words.
fn describe(entry: &Entry) -> String {
    match entry {
        Entry::IssuedBefore { user, before, .. } => {
            format!("user {user}'s links issued before {}", rfc3339(*before))
        }
        Entry::Generation { user, below, .. } => {
            format!("user {user}'s links of a generation below {below}")
        }
        Entry::Link { id, .. } => format!("link {id}"),
        _ => "a rule".to_owned(),
    }
}

/// Prints every rule of `set`, held in `place`.
fn print_list(set: &Revocations, place: &str) -> Result<()> {
    for entry in set.entries() {
        match entry {
            Entry::IssuedBefore {
                user,
                before,
                until,
            } => say!(
                "user {user}: links issued before {} (rule kept until {})",
                rfc3339(before),
                rfc3339(until)
            )?,
            Entry::Generation { user, below, until } => say!(
                "user {user}: links of a generation below {below} (rule kept until {})",
                rfc3339(until)
            )?,
            Entry::Link { id, until } => say!("link {id} (rule kept until {})", rfc3339(until))?,
            _ => {}
        }
    }
    if set.is_empty() {
        say!("nothing revoked in {place}")?;
    }
    Ok(())
}

/// `revoke --redis`: the rule recorded in Redis, for every node.
fn revoke_in_redis(args: &RevokeArgs, url: &str) -> Result<()> {
    use crate::redis_revocations::{field_of, list, record, shown};
    let place = format!("Redis at {} ({})", shown(url), args.redis_key);
    if args.list {
        return print_list(&list(url, &args.redis_key)?, &place);
    }
    let (rule, whose) = rule_of(args, OffsetDateTime::now_utc())?;
    let s = |t: OffsetDateTime| i128::from(t.unix_timestamp());
    let (field, value) = match &rule {
        Entry::IssuedBefore {
            user,
            before,
            until,
        } => field_of("user", user, &[s(*before), s(*until)]),
        Entry::Generation { user, below, until } => {
            field_of("generation", user, &[i128::from(*below), s(*until)])
        }
        Entry::Link { id, until } => field_of("link", &id.to_string(), &[s(*until)]),
        _ => bail!("a rule this version cannot record in Redis"),
    };
    let version = record(url, &args.redis_key, &field, &value)?;
    say!(
        "revoked {}{whose} in {place}, version {version}",
        describe(&rule)
    )?;
    Ok(())
}

/// An exclusive lock beside `file`, released when dropped.
fn lock(file: &Path) -> Result<std::fs::File> {
    let name = file
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("revocations");
    let path = file.with_file_name(format!(".{name}.lock"));
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("cannot lock {}", path.display()))?;
    rustix::fs::flock(&f, rustix::fs::FlockOperation::LockExclusive)
        .with_context(|| format!("cannot lock {}", path.display()))?;
    Ok(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_file_sits_beside_the_keys_unless_named() {
        let beside = file_of(None, Some(Path::new("/etc/mediagate/keys.toml")));
        assert_eq!(
            beside.as_deref(),
            Some(Path::new("/etc/mediagate/revocations.toml"))
        );
        assert_eq!(
            file_of(None, Some(Path::new("keys.toml"))).as_deref(),
            Some(Path::new("./revocations.toml"))
        );
        let named = file_of(Some(Path::new("/r.toml")), Some(Path::new("/k.toml")));
        assert_eq!(named.as_deref(), Some(Path::new("/r.toml")));
        assert_eq!(file_of(None, None), None);
    }

    #[test]
    fn a_missing_file_is_an_empty_set_and_a_bad_one_an_error() {
        let dir = tempfile::tempdir().unwrap();
        assert!(load(&dir.path().join("none.toml")).unwrap().is_empty());
        let bad = dir.path().join("bad.toml");
        std::fs::write(&bad, "[[user]]\nid = 42\n").unwrap();
        let err = load(&bad).unwrap_err().to_string();
        assert!(err.contains("bad.toml") && err.contains("line"), "{err}");
    }
}
