//! The command line: its commands and options, and the parsers of their
//! values (durations, times, addresses, methods). What each command does is
//! in its own module.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};
use mediagate::signer::time::format_description::well_known::Rfc3339;
use mediagate::signer::time::{Duration, OffsetDateTime};
use mediagate::signer::{Method, Methods};

#[derive(Parser)]
#[command(
    name = "mediagate",
    version,
    about = "Expiring signed links for private media, and the server that checks them"
)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Subcommand)]
pub(crate) enum Command {
    /// Create a keys file, or add a new key to one (rotation).
    Keygen {
        /// The keys file to create or extend (written with mode 0600).
        #[arg(long)]
        out: PathBuf,
        /// Id of the new key (default: k-<unix time>).
        #[arg(long)]
        id: Option<String>,
        /// Add the key without making it the one that signs: verifiers that
        /// reload the file accept links signed with it before any signer
        /// uses it (activate it later with `mediagate keys activate`).
        #[arg(long)]
        no_activate: bool,
    },
    /// List, activate or retire the keys of a keys file.
    Keys {
        #[command(subcommand)]
        action: KeysAction,
    },
    /// Print a signed URL.
    Sign(SignArgs),
    /// Serve media from a root directory to holders of valid links.
    Serve(ServeArgs),
    /// Explain a link: its claims, and why it is valid or not.
    Inspect {
        /// The link: a URL, what `sign --form cookie` prints, a Cookie
        /// header, a query string, or the bare token; `-` reads it from
        /// stdin, which keeps a live link out of the process list and
        /// shell history.
        url: String,
        #[command(flatten)]
        keys: OptionalKeysArg,
        /// The revocations file, to say whether the link is revoked
        /// (default: revocations.toml beside the keys file).
        #[arg(long, env = "MEDIAGATE_REVOCATIONS_FILE", conflicts_with = "redis")]
        revocations: Option<PathBuf>,
        /// Ask the revocations held in Redis instead.
        #[arg(long, env = "MEDIAGATE_REDIS_URL")]
        redis: Option<String>,
        /// The Redis key the rules live under.
        #[arg(
            long,
            env = "MEDIAGATE_REDIS_KEY",
            default_value = "mediagate:revocations"
        )]
        redis_key: String,
        /// Clock skew tolerated, as the server's `leeway` setting.
        #[arg(long, default_value = "30s", value_parser = parse_duration)]
        leeway: Duration,
    },
    /// Take links back before they expire: a user's, a generation's, or
    /// one link; running servers follow the revocations file.
    Revoke(RevokeArgs),
    /// Serve sample media with an ephemeral key and print links to try.
    Demo {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:8080", value_parser = parse_listen)]
        listen: SocketAddr,
    },
}

/// What `mediagate keys` does to a keys file; each change is written
/// atomically with mode 0600.
#[derive(Subcommand)]
pub(crate) enum KeysAction {
    /// Print each key's id, the active one marked (never a secret).
    List {
        /// The keys file.
        #[arg(long, env = "MEDIAGATE_KEYS_FILE")]
        keys: PathBuf,
    },
    /// Make a listed key the one that signs new links.
    Activate {
        /// The key's id.
        id: String,
        /// The keys file.
        #[arg(long, env = "MEDIAGATE_KEYS_FILE")]
        keys: PathBuf,
    },
    /// Remove a key that no longer signs: links it signed are refused once
    /// servers reload (retire it after the longest link lifetime).
    Retire {
        /// The key's id.
        id: String,
        /// The keys file.
        #[arg(long, env = "MEDIAGATE_KEYS_FILE")]
        keys: PathBuf,
    },
}

#[derive(Clone, Copy, ValueEnum)]
pub(crate) enum Form {
    Query,
    Path,
    Cookie,
}

/// Every claim a link can carry (docs/FORMAT.md), as `sign` options.
#[derive(clap::Args)]
pub(crate) struct SignArgs {
    #[command(flatten)]
    pub(crate) keys: KeysArg,
    /// The user the link is for.
    #[arg(long)]
    pub(crate) user: String,
    /// The media path (decoded), e.g. /videos/a.mp4.
    #[arg(long)]
    pub(crate) path: String,
    /// Grant every file below --path (a directory).
    #[arg(long)]
    pub(crate) prefix: bool,
    /// Lifetime, e.g. 90s, 10m, 2h, 1d.
    #[arg(long, default_value = "10m", value_parser = parse_duration)]
    pub(crate) ttl: Duration,
    /// When the link starts working: a time (RFC 3339, e.g.
    /// 2026-12-01T09:00:00Z) or a delay from now (e.g. 1h). The lifetime
    /// still counts from now, so --ttl must reach past it.
    #[arg(long, value_parser = parse_when)]
    pub(crate) not_before: Option<OffsetDateTime>,
    /// The methods granted, comma-separated: GET, HEAD, PUT.
    #[arg(long, default_value = "GET,HEAD", value_parser = parse_methods)]
    pub(crate) methods: Methods,
    /// Where the server's mount point is, e.g. https://media.example.com/media.
    #[arg(long, default_value = "")]
    pub(crate) base_url: String,
    /// Download under this filename (Content-Disposition: attachment).
    #[arg(long, conflicts_with = "inline")]
    pub(crate) attachment: Option<String>,
    /// Show in the browser, with this filename for "save as"
    /// (Content-Disposition: inline; may be "").
    #[arg(long)]
    pub(crate) inline: Option<String>,
    /// Send this Content-Type instead of the one the extension implies;
    /// for an upload (PUT), the type the upload must be sent as (and whose
    /// signature its first bytes must bear).
    #[arg(long)]
    pub(crate) content_type: Option<String>,
    /// Upload links: the largest upload, in bytes or with a binary unit
    /// (512K, 50M, 2G).
    #[arg(long, value_parser = parse_size)]
    pub(crate) max_size: Option<u64>,
    /// Upload links: the SHA-256 (hex) of the exact bytes to be uploaded.
    #[arg(long, value_parser = parse_sha256, conflicts_with = "sha256_of")]
    pub(crate) sha256: Option<[u8; 32]>,
    /// Upload links: the SHA-256 of this local file's bytes, the ones to
    /// be uploaded.
    #[arg(long)]
    pub(crate) sha256_of: Option<PathBuf>,
    /// Upload links: an existing file may be replaced (default: create
    /// only). Not with --prefix.
    #[arg(long)]
    pub(crate) replace: bool,
    /// Bind to a client address or network (CIDR).
    #[arg(long)]
    pub(crate) ip: Option<String>,
    /// A revocation generation (a per-user epoch) to carry.
    #[arg(long)]
    pub(crate) generation: Option<u64>,
    /// How the token travels.
    #[arg(long, value_enum, default_value_t = Form::Query)]
    pub(crate) form: Form,
    /// With --prefix: print the URL of this file below the directory (e.g.
    /// master.m3u8), the one a player opens, instead of the directory's.
    #[arg(long, requires = "prefix")]
    pub(crate) entry: Option<String>,
    /// With --form cookie: the cookie's Domain, a parent of both the app's
    /// and the media server's host (e.g. example.com for app.example.com
    /// and media.example.com).
    #[arg(long)]
    pub(crate) domain: Option<String>,
}

#[derive(clap::Args)]
pub(crate) struct KeysArg {
    /// The keys file (or set MEDIAGATE_KEYS_FILE, or MEDIAGATE_KEYS=id:secret,...).
    #[arg(long, env = "MEDIAGATE_KEYS_FILE")]
    pub(crate) keys: Option<PathBuf>,
}

#[derive(clap::Args)]
pub(crate) struct OptionalKeysArg {
    /// The keys file, to check the signature too.
    #[arg(long, env = "MEDIAGATE_KEYS_FILE")]
    pub(crate) keys: Option<PathBuf>,
}

#[derive(clap::Args)]
#[command(group(clap::ArgGroup::new("what").required(true).args(["user", "generation", "link", "list"])))]
pub(crate) struct RevokeArgs {
    /// Revoke this user's links issued before --before (default: now).
    #[arg(long)]
    pub(crate) user: Option<String>,
    /// With --user: the time before which links are revoked (RFC 3339, or
    /// a delay from now like 1h).
    #[arg(long, requires = "user", value_parser = parse_when)]
    pub(crate) before: Option<OffsetDateTime>,
    /// Revoke a user's links whose generation is below N: USER:N.
    #[arg(long, value_name = "USER:N")]
    pub(crate) generation: Option<String>,
    /// Revoke one link: its URL, token or cookie, or - to read it from stdin.
    #[arg(long)]
    pub(crate) link: Option<String>,
    /// List what is revoked.
    #[arg(long)]
    pub(crate) list: bool,
    /// How long a user or generation rule is kept: at least the servers'
    /// max_ttl plus their leeway (default 7d 30s, the defaults' sum).
    #[arg(long, default_value = "7d 30s", value_parser = parse_duration)]
    pub(crate) keep_for: Duration,
    /// The revocations file (default: revocations.toml beside the keys file).
    #[arg(long, env = "MEDIAGATE_REVOCATIONS_FILE", conflicts_with = "redis")]
    pub(crate) revocations: Option<PathBuf>,
    /// Record the rule in Redis instead, for every node that follows it:
    /// redis://[:password@]host[:port][/db].
    #[arg(long, env = "MEDIAGATE_REDIS_URL")]
    pub(crate) redis: Option<String>,
    /// The Redis key the rules live under (default mediagate:revocations).
    #[arg(
        long,
        env = "MEDIAGATE_REDIS_KEY",
        default_value = "mediagate:revocations"
    )]
    pub(crate) redis_key: String,
    /// The keys file, whose directory holds the revocations file by default.
    #[arg(long, env = "MEDIAGATE_KEYS_FILE")]
    pub(crate) keys: Option<PathBuf>,
}

#[derive(clap::Args)]
pub(crate) struct ServeArgs {
    /// A TOML config file; command-line options and MEDIAGATE_* variables override it.
    #[arg(long, env = "MEDIAGATE_CONFIG")]
    pub(crate) config: Option<PathBuf>,
    /// The keys file (or MEDIAGATE_KEYS=id:secret,...).
    #[arg(long, env = "MEDIAGATE_KEYS_FILE")]
    pub(crate) keys: Option<PathBuf>,
    /// The revocations file, followed while serving (default:
    /// revocations.toml beside the keys file, when there is one).
    #[arg(long, env = "MEDIAGATE_REVOCATIONS_FILE")]
    pub(crate) revocations: Option<PathBuf>,
    /// Follow the revocations held in Redis instead of a file (several
    /// nodes share them): redis://[:password@]host[:port][/db].
    #[arg(long, env = "MEDIAGATE_REDIS_URL")]
    pub(crate) redis: Option<String>,
    /// The media root directory.
    #[arg(long, env = "MEDIAGATE_ROOT")]
    pub(crate) root: Option<PathBuf>,
    /// Address to listen on (default 127.0.0.1:8080).
    #[arg(long, env = "MEDIAGATE_LISTEN", value_parser = parse_listen)]
    pub(crate) listen: Option<SocketAddr>,
    /// URL prefix media is served under (default /).
    #[arg(long, env = "MEDIAGATE_MOUNT")]
    pub(crate) mount: Option<String>,
    /// The unsigned health check, answered 200 outside the mount (default
    /// /healthz); "off" turns it off.
    #[arg(long, env = "MEDIAGATE_HEALTH_PATH")]
    pub(crate) health_path: Option<String>,
    /// Worker threads, each with its own socket (default: one per CPU).
    #[arg(long, env = "MEDIAGATE_WORKERS")]
    pub(crate) workers: Option<usize>,
    /// Check the configuration, keys and media root, print a summary and
    /// exit without serving (as `nginx -t`).
    #[arg(long)]
    pub(crate) check: bool,
    /// Share the address with a mediagate serve already listening there
    /// (the zero-downtime handover: stop the old one once this one is up).
    /// Without it, an address in use is an error.
    #[arg(long, env = "MEDIAGATE_REUSE_PORT")]
    pub(crate) reuse_port: bool,
}

/// The longest duration any option or setting takes: 100 years.
const MAX_DURATION_SECONDS: u64 = 100 * 365 * 86_400;

/// Parses a duration as humantime reads it (`90s`, `10m`, `2h 30m`,
/// `500ms`, `7d`; units are case-sensitive: `M` is months), positive and at
/// most 100 years in all (so that no later arithmetic on it overflows).
pub(crate) fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let parsed = humantime::parse_duration(s).map_err(|e| match e {
        humantime::DurationError::NumberOverflow => {
            format!("duration '{s}' must be positive and at most 100 years")
        }
        _ => format!("'{s}' is not a duration like 90s, 10m, 2h or 1d"),
    })?;
    let max = std::time::Duration::from_secs(MAX_DURATION_SECONDS);
    if parsed.is_zero() || parsed > max {
        return Err(format!(
            "duration '{s}' must be positive and at most 100 years"
        ));
    }
    Duration::try_from(parsed)
        .map_err(|_| format!("duration '{s}' must be positive and at most 100 years"))
}

/// Parses a moment: RFC 3339 (`2026-12-01T09:00:00Z`), or a delay from
/// now in [`parse_duration`]'s form (`1h`).
fn parse_when(s: &str) -> Result<OffsetDateTime, String> {
    let s = s.trim();
    if let Ok(at) = OffsetDateTime::parse(s, &Rfc3339) {
        return Ok(at);
    }
    // A number and a letter is meant as a delay: say what is wrong with it.
    let delay_like = s.len() > 1 && s[..s.len() - 1].bytes().all(|b| b.is_ascii_digit());
    match parse_duration(s) {
        Ok(delay) => OffsetDateTime::now_utc()
            .checked_add(delay)
            .ok_or_else(|| format!("'{s}' from now is past the year 9999")),
        Err(e) if delay_like => Err(e),
        Err(_) => Err(format!(
            "'{s}' is not a time like 2026-12-01T09:00:00Z nor a delay like 10m or 2h"
        )),
    }
}

/// Parses an address to listen on: an IP address and a port. Host names
/// are refused rather than looked up (a name can stand for several
/// addresses, and which one a server binds must not depend on a resolver).
pub(crate) fn parse_listen(s: &str) -> Result<SocketAddr, String> {
    s.parse().map_err(|_| {
        "not an IP address and port, such as 127.0.0.1:8080, 0.0.0.0:8080 or [::]:8080 \
         (host names are not looked up)"
            .to_owned()
    })
}

/// Parses a size: a number of bytes, or a number with a binary unit `K`,
/// `M`, `G` or `T` (also written `KiB`, `MiB`, ...; any case): `50M` is
/// 50 MiB.
pub(crate) fn parse_size(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let digits = s.bytes().take_while(u8::is_ascii_digit).count();
    let (number, unit) = s.split_at(digits);
    let unit = unit.trim().to_ascii_lowercase();
    let shift = match unit.trim_end_matches("ib").trim_end_matches('b') {
        "" if unit.is_empty() || unit == "b" => 0,
        "k" => 10,
        "m" => 20,
        "g" => 30,
        "t" => 40,
        _ => return Err(format!("'{s}' is not a size like 1048576, 512K, 50M or 2G")),
    };
    if unit.ends_with('b') && !unit.ends_with("ib") && unit != "b" {
        return Err(format!(
            "'{s}': write binary units as K, M, G (or KiB, MiB, GiB), not {unit:?}"
        ));
    }
    number
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(1 << shift))
        .ok_or_else(|| format!("'{s}' is not a size like 1048576, 512K, 50M or 2G"))
}

/// Parses a SHA-256 digest written in hex (64 characters).
fn parse_sha256(s: &str) -> Result<[u8; 32], String> {
    let s = s.trim();
    let bad = || format!("'{s}' is not a SHA-256 digest (64 hex characters)");
    if s.len() != 64 {
        return Err(bad());
    }
    let mut out = [0u8; 32];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).map_err(|_| bad())?;
    }
    Ok(out)
}

/// Parses a comma-separated list of method names (`GET,HEAD`, any case).
fn parse_methods(s: &str) -> Result<Methods, String> {
    let mut methods: Option<Methods> = None;
    for name in s.split(',').map(str::trim) {
        let method = Method::from_name(&name.to_ascii_uppercase())
            .ok_or_else(|| format!("'{name}' is not one of GET, HEAD, PUT"))?;
        let one = Methods::from(method);
        methods = Some(methods.map_or(one, |m| m | one));
    }
    methods.ok_or_else(|| "no method given".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_have_numbers_units_and_a_bound() {
        for (text, millis) in [
            ("90s", 90_000),
            ("10m", 600_000),
            (" 2h ", 7_200_000),
            ("1d", 86_400_000),
            ("2h 30m", 9_000_000),
            ("1m30s", 90_000),
            ("500ms", 500),
            ("1w", 604_800_000),
            ("36500d", 3_153_600_000_000),
            ("3153600000s", 3_153_600_000_000),
        ] {
            assert_eq!(
                parse_duration(text),
                Ok(Duration::milliseconds(millis)),
                "{text}"
            );
        }
        for bad in [
            "",
            "10",
            "s",
            "-5s",
            "+5s",
            "10x",
            "1h and 5m",
            "ten minutes",
        ] {
            let e = parse_duration(bad).unwrap_err();
            assert!(e.contains("not a duration"), "{bad}: {e}");
        }
        // Zero, past 100 years, and numbers no integer holds: refused, never
        // a panic in the arithmetic.
        for bad in [
            "0s",
            "0ms",
            "36501d",
            "3153600001s",
            "106751991167301d",
            "999999999999999999999999d",
            "18446744073709551615h",
        ] {
            let e = parse_duration(bad).unwrap_err();
            assert!(e.contains("at most 100 years"), "{bad}: {e}");
        }
    }

    #[test]
    fn sizes_have_binary_units() {
        for (text, n) in [
            ("0", 0),
            ("1048576", 1 << 20),
            ("512K", 512 << 10),
            ("50M", 50 << 20),
            ("50m", 50 << 20),
            ("2G", 2 << 30),
            ("2GiB", 2 << 30),
            ("1T", 1 << 40),
            ("7b", 7),
        ] {
            assert_eq!(parse_size(text), Ok(n), "{text}");
        }
        for bad in [
            "",
            "M",
            "-1",
            "1.5M",
            "50MB",
            "1X",
            "99999999999999999999",
            "16777216T",
        ] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
        assert!(parse_sha256(&"ab".repeat(32)).is_ok());
        assert!(parse_sha256("abc").is_err());
        assert!(parse_sha256(&"zz".repeat(32)).is_err());
    }

    #[test]
    fn moments_are_times_or_delays() {
        let at = parse_when("2026-12-01T09:00:00Z").unwrap();
        assert_eq!(at.unix_timestamp(), 1_796_115_600);
        let soon = parse_when("1h").unwrap() - OffsetDateTime::now_utc();
        assert!(
            soon > Duration::minutes(59) && soon <= Duration::hours(1),
            "{soon}"
        );
        let e = parse_when("99999999999999d").unwrap_err();
        assert!(e.contains("at most 100 years"), "{e}");
        let e = parse_when("tomorrow").unwrap_err();
        assert!(e.contains("not a time like"), "{e}");
    }
}
