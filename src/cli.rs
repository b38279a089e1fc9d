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
    /// Create a keys file, or add a new active key to one (rotation).
    Keygen {
        /// The keys file to create or extend (written with mode 0600).
        #[arg(long)]
        out: PathBuf,
        /// Id of the new key (default: k-<unix time>).
        #[arg(long)]
        id: Option<String>,
    },
    /// Print a signed URL.
    Sign(SignArgs),
    /// Serve media from a root directory to holders of valid links.
    Serve(ServeArgs),
    /// Explain a link: its claims, and why it is valid or not.
    Inspect {
        /// The URL (or bare token).
        url: String,
        #[command(flatten)]
        keys: OptionalKeysArg,
    },
    /// Serve sample media with an ephemeral key and print links to try.
    Demo {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:8080", value_parser = parse_listen)]
        listen: SocketAddr,
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
    /// Send this Content-Type instead of the one the extension implies.
    #[arg(long)]
    pub(crate) content_type: Option<String>,
    /// Bind to a client address or network (CIDR).
    #[arg(long)]
    pub(crate) ip: Option<String>,
    /// A revocation generation (a per-user epoch) to carry.
    #[arg(long)]
    pub(crate) generation: Option<u64>,
    /// How the token travels.
    #[arg(long, value_enum, default_value_t = Form::Query)]
    pub(crate) form: Form,
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
pub(crate) struct ServeArgs {
    /// A TOML config file; command-line options and MEDIAGATE_* variables override it.
    #[arg(long, env = "MEDIAGATE_CONFIG")]
    pub(crate) config: Option<PathBuf>,
    /// The keys file (or MEDIAGATE_KEYS=id:secret,...).
    #[arg(long, env = "MEDIAGATE_KEYS_FILE")]
    pub(crate) keys: Option<PathBuf>,
    /// The media root directory.
    #[arg(long, env = "MEDIAGATE_ROOT")]
    pub(crate) root: Option<PathBuf>,
    /// Address to listen on (default 127.0.0.1:8080).
    #[arg(long, env = "MEDIAGATE_LISTEN", value_parser = parse_listen)]
    pub(crate) listen: Option<SocketAddr>,
    /// URL prefix media is served under (default /).
    #[arg(long, env = "MEDIAGATE_MOUNT")]
    pub(crate) mount: Option<String>,
    /// Worker threads, each with its own socket (default: one per CPU).
    #[arg(long, env = "MEDIAGATE_WORKERS")]
    pub(crate) workers: Option<usize>,
    /// Check the configuration, keys and media root, print a summary and
    /// exit without serving (as `nginx -t`).
    #[arg(long)]
    pub(crate) check: bool,
}

/// Parses `90s`, `10m`, `2h`, `1d` (a positive whole number and a unit).
pub(crate) fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: i64 = num
        .parse()
        .map_err(|_| format!("'{s}' is not a duration like 90s, 10m, 2h or 1d"))?;
    let d = match unit {
        "s" => Duration::seconds(n),
        "m" => Duration::minutes(n),
        "h" => Duration::hours(n),
        "d" => Duration::days(n),
        _ => return Err(format!("'{s}' is not a duration like 90s, 10m, 2h or 1d")),
    };
    if n <= 0 || n > 100 * 365 * 86400 {
        return Err(format!("duration '{s}' must be positive and sane"));
    }
    Ok(d)
}

/// Parses a moment: RFC 3339 (`2026-12-01T09:00:00Z`), or a delay from
/// now in [`parse_duration`]'s form (`1h`).
fn parse_when(s: &str) -> Result<OffsetDateTime, String> {
    let s = s.trim();
    if let Ok(delay) = parse_duration(s) {
        return Ok(OffsetDateTime::now_utc() + delay);
    }
    OffsetDateTime::parse(s, &Rfc3339).map_err(|_| {
        format!("'{s}' is not a time like 2026-12-01T09:00:00Z nor a delay like 10m or 2h")
    })
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
