//! The `mediagate` command: keygen, sign, serve, inspect, demo.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, anyhow, bail};
use clap::{Parser, Subcommand, ValueEnum};
use mediagate::signer::time::format_description::well_known::Rfc3339;
use mediagate::signer::time::{Duration, OffsetDateTime};
use mediagate::signer::{
    Key, Keyring, MediaPath, Method, Methods, RequestFacts, Signer, Verifier, transport,
};
use mediagate::verifier::{CacheLimits, KeyringHandle, MediaGate, ServerConfig};
use tracing_appender::non_blocking::WorkerGuard;

/// Writes a line to stdout, returning the error instead of panicking as
/// `println!` does: a reader that went away (`mediagate inspect ... | head
/// -1`) is a `BrokenPipe` error, which `main` takes as a quiet end.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        writeln!(std::io::stdout().lock(), $($arg)*)
    }};
}

mod config;
mod demo;

use config::FileConfig;

/// mimalloc instead of the system allocator: the server allocates and frees
/// small buffers on every request and a task on every connection, and
/// measured against glibc's malloc it served ~7% more small-file requests
/// per second, with ~7% less CPU per request (see the commit that added it).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "mediagate",
    version,
    about = "Expiring signed links for private media, and the server that checks them"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
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
enum Form {
    Query,
    Path,
    Cookie,
}

/// Every claim a link can carry (docs/FORMAT.md), as `sign` options.
#[derive(clap::Args)]
struct SignArgs {
    #[command(flatten)]
    keys: KeysArg,
    /// The user the link is for.
    #[arg(long)]
    user: String,
    /// The media path (decoded), e.g. /videos/a.mp4.
    #[arg(long)]
    path: String,
    /// Grant every file below --path (a directory).
    #[arg(long)]
    prefix: bool,
    /// Lifetime, e.g. 90s, 10m, 2h, 1d.
    #[arg(long, default_value = "10m", value_parser = parse_duration)]
    ttl: Duration,
    /// When the link starts working: a time (RFC 3339, e.g.
    /// 2026-12-01T09:00:00Z) or a delay from now (e.g. 1h). The lifetime
    /// still counts from now, so --ttl must reach past it.
    #[arg(long, value_parser = parse_when)]
    not_before: Option<OffsetDateTime>,
    /// The methods granted, comma-separated: GET, HEAD, PUT.
    #[arg(long, default_value = "GET,HEAD", value_parser = parse_methods)]
    methods: Methods,
    /// Where the server's mount point is, e.g. https://media.example.com/media.
    #[arg(long, default_value = "")]
    base_url: String,
    /// Download under this filename (Content-Disposition: attachment).
    #[arg(long, conflicts_with = "inline")]
    attachment: Option<String>,
    /// Show in the browser, with this filename for "save as"
    /// (Content-Disposition: inline; may be "").
    #[arg(long)]
    inline: Option<String>,
    /// Send this Content-Type instead of the one the extension implies.
    #[arg(long)]
    content_type: Option<String>,
    /// Bind to a client address or network (CIDR).
    #[arg(long)]
    ip: Option<String>,
    /// A revocation generation (a per-user epoch) to carry.
    #[arg(long)]
    generation: Option<u64>,
    /// How the token travels.
    #[arg(long, value_enum, default_value_t = Form::Query)]
    form: Form,
}

#[derive(clap::Args)]
struct KeysArg {
    /// The keys file (or set MEDIAGATE_KEYS_FILE, or MEDIAGATE_KEYS=id:secret,...).
    #[arg(long, env = "MEDIAGATE_KEYS_FILE")]
    keys: Option<PathBuf>,
}

#[derive(clap::Args)]
struct OptionalKeysArg {
    /// The keys file, to check the signature too.
    #[arg(long, env = "MEDIAGATE_KEYS_FILE")]
    keys: Option<PathBuf>,
}

#[derive(clap::Args)]
struct ServeArgs {
    /// A TOML config file; command-line options and MEDIAGATE_* variables override it.
    #[arg(long, env = "MEDIAGATE_CONFIG")]
    config: Option<PathBuf>,
    /// The keys file (or MEDIAGATE_KEYS=id:secret,...).
    #[arg(long, env = "MEDIAGATE_KEYS_FILE")]
    keys: Option<PathBuf>,
    /// The media root directory.
    #[arg(long, env = "MEDIAGATE_ROOT")]
    root: Option<PathBuf>,
    /// Address to listen on (default 127.0.0.1:8080).
    #[arg(long, env = "MEDIAGATE_LISTEN", value_parser = parse_listen)]
    listen: Option<SocketAddr>,
    /// URL prefix media is served under (default /).
    #[arg(long, env = "MEDIAGATE_MOUNT")]
    mount: Option<String>,
    /// Worker threads, each with its own socket (default: one per CPU).
    #[arg(long, env = "MEDIAGATE_WORKERS")]
    workers: Option<usize>,
    /// Check the configuration, keys and media root, print a summary and
    /// exit without serving (as `nginx -t`).
    #[arg(long)]
    check: bool,
}

/// Parses `90s`, `10m`, `2h`, `1d` (a positive whole number and a unit).
fn parse_duration(s: &str) -> Result<Duration, String> {
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
fn parse_listen(s: &str) -> Result<SocketAddr, String> {
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

fn load_keys(file: Option<&Path>) -> Result<Keyring> {
    if let Some(file) = file {
        return Ok(mediagate::verifier::load_keyring_file(file)?);
    }
    mediagate::verifier::load_keyring_env("MEDIAGATE_KEYS")?.ok_or_else(|| {
        anyhow!("no keys: pass --keys FILE, or set MEDIAGATE_KEYS_FILE or MEDIAGATE_KEYS")
    })
}

fn write_private(path: &Path, text: &str) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let tmp = dir.join(format!(
        ".{}.tmp{}",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("keys"),
        std::process::id()
    ));
    // Written beside the target and renamed over it, so that a failure
    // leaves the old file (and no temporary one) in place.
    let written = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written.with_context(|| format!("cannot write {}", path.display()))
}

fn keygen(out: &Path, id: Option<String>) -> Result<()> {
    let existing = if out.exists() {
        Some(mediagate::verifier::load_keyring_file(out)?)
    } else {
        None
    };
    let taken = |id: &str| {
        existing
            .as_ref()
            .is_some_and(|ring| ring.get(id.as_bytes()).is_some())
    };
    let id = match id {
        Some(id) if taken(&id) => {
            bail!(
                "{} already has a key {id:?}: choose another --id",
                out.display()
            )
        }
        Some(id) => id,
        // The signing time names the key; a second key in the same second
        // gets a suffix.
        None => {
            let stem = format!("k-{}", OffsetDateTime::now_utc().unix_timestamp());
            (1..)
                .map(|n| match n {
                    1 => stem.clone(),
                    n => format!("{stem}-{n}"),
                })
                .find(|id| !taken(id))
                .unwrap_or(stem)
        }
    };
    let key = Key::generate(&id)?;
    let ring = match existing {
        Some(ring) => {
            let mut ring = ring.with_verify_key(key)?;
            ring.set_active(&id)?;
            ring
        }
        None => Keyring::new(key),
    };
    write_private(out, &ring.to_toml())?;
    warn(format_args!(
        "wrote {} (active key {id}, {} key(s))",
        out.display(),
        ring.keys().count()
    ));
    Ok(())
}

fn sign(args: &SignArgs) -> Result<()> {
    let ring = load_keys(args.keys.keys.as_deref())?;
    let signer = Signer::new(ring);
    let path = if args.prefix && !args.path.ends_with('/') {
        format!("{}/", args.path)
    } else {
        args.path.clone()
    };
    let mut b = signer
        .link(&path)
        .user(&args.user)
        .ttl(args.ttl)
        .methods(args.methods);
    if let Some(at) = args.not_before {
        b = b.not_before(at);
    }
    if let Some(name) = &args.attachment {
        b = b.attachment(name);
    }
    if let Some(name) = &args.inline {
        b = b.inline(name);
    }
    if let Some(ct) = &args.content_type {
        b = b.content_type(ct);
    }
    if let Some(ip) = &args.ip {
        let net = match ip.parse::<ipnet::IpNet>() {
            Ok(net) => net,
            Err(_) => ip
                .parse::<std::net::IpAddr>()
                .map(ipnet::IpNet::from)
                .map_err(|_| anyhow!("--ip {ip:?} is not an address or CIDR network"))?,
        };
        b = b.client_net(net);
    }
    if let Some(generation) = args.generation {
        b = b.generation(generation);
    }
    let base_url = args.base_url.as_str();
    let mount = mount_of(base_url)?;
    let link = b.sign()?;
    match args.form {
        Form::Query => say!("{}", link.url(base_url))?,
        Form::Path => say!("{}", link.path_form(base_url))?,
        Form::Cookie => say!(
            "Set-Cookie: {}",
            link.set_cookie(mount, OffsetDateTime::now_utc())
        )?,
    }
    Ok(())
}

/// The mount path of a `--base-url`: the whole of an absolute path
/// (`/media`), the path of an `http(s)://host/path` URL, or "" for none.
/// Anything else (a query, a fragment, another scheme, a relative path,
/// spaces or control characters) would make a broken link and is refused.
fn mount_of(base_url: &str) -> Result<&str> {
    let refuse = || {
        anyhow!(
            "--base-url {base_url:?} must be an http(s) URL or an absolute path, \
             without query or fragment"
        )
    };
    if base_url
        .bytes()
        .any(|b| matches!(b, b'?' | b'#') || !b.is_ascii_graphic())
    {
        return Err(refuse());
    }
    // "//host" is a URL without a scheme, not a path.
    if base_url.is_empty() || (base_url.starts_with('/') && !base_url.starts_with("//")) {
        return Ok(base_url);
    }
    let rest = base_url
        .strip_prefix("https://")
        .or_else(|| base_url.strip_prefix("http://"))
        .ok_or_else(refuse)?;
    let (host, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    if host.is_empty() {
        return Err(refuse());
    }
    Ok(path)
}

fn seconds(s: Option<&str>, what: &str) -> Result<Option<Duration>> {
    s.map(|s| parse_duration(s).map_err(|e| anyhow!("{what}: {e}")))
        .transpose()
}

fn serve(args: ServeArgs) -> Result<()> {
    let file: FileConfig = match &args.config {
        Some(p) => {
            let text =
                read_config(p).with_context(|| format!("cannot read config {}", p.display()))?;
            toml::from_str(&text).map_err(|e| {
                // The message alone, on one line, with where it applies.
                let line = e.span().map_or(String::new(), |at| {
                    let before = text.as_bytes().get(..at.start).unwrap_or_default();
                    let newlines = before.iter().filter(|&&b| b == b'\n').count();
                    format!(", line {}", newlines + 1)
                });
                anyhow!("config {}{line}: {}", p.display(), e.message())
            })?
        }
        None => FileConfig::default(),
    };
    let keys_file = args.keys.or_else(|| file.keys.clone());
    let keys = load_keys(keys_file.as_deref())?;
    let key_summary = format!(
        "{} key(s), active {}",
        keys.keys().count(),
        keys.active().id()
    );
    let root = args
        .root
        .or_else(|| file.root.clone())
        .ok_or_else(|| anyhow!("no media root: pass --root DIR or set MEDIAGATE_ROOT"))?;
    let listen = match (args.listen, &file.listen) {
        (Some(listen), _) => listen,
        (None, Some(listen)) => parse_listen(listen).map_err(|e| anyhow!("listen: {e}"))?,
        (None, None) => SocketAddr::from(([127, 0, 0, 1], 8080)),
    };
    let mount = args.mount.or_else(|| file.mount.clone());
    let mount = mount.as_deref().unwrap_or("/");
    let mut b = MediaGate::builder(&root, keys).mount(mount);
    if let Some(h) = &file.health_path {
        b = b.health_path(Some(h));
    }
    b = file.apply_http(b)?;
    if let Some(l) = seconds(file.leeway.as_deref(), "leeway")? {
        b = b.leeway(l);
    }
    if let Some(m) = seconds(file.max_ttl.as_deref(), "max_ttl")? {
        b = b.max_ttl(m);
    }
    if let Some(c) = file.chunk_size {
        b = b.chunk_size(c);
    }
    let mut limits = CacheLimits::default();
    if let Some(ms) = file.revalidate_after_ms {
        limits.revalidate_after = std::time::Duration::from_millis(ms);
    }
    if let Some(n) = file.max_open_files {
        limits.max_open_files = n;
    }
    if let Some(t) = seconds(file.close_unused_after.as_deref(), "close_unused_after")? {
        limits.close_unused_after = std::time::Duration::from_secs(t.whole_seconds() as u64);
    }
    let mut config = ServerConfig::default();
    if let Some(n) = file.max_connections {
        config.max_connections = at_least_one(n, "max_connections")?;
    }
    if let Some(on) = file.sendfile {
        config.sendfile = on;
    }
    if let Some(on) = file.http2 {
        config.http2 = on;
    }
    if let Some(t) = seconds(file.header_read_timeout.as_deref(), "header_read_timeout")? {
        config.header_read_timeout = std::time::Duration::from_secs(t.whole_seconds() as u64);
    }
    if let Some(t) = seconds(file.send_timeout.as_deref(), "send_timeout")? {
        config.send_timeout = std::time::Duration::from_secs(t.whole_seconds() as u64);
    }
    if let Some(balancers) = &file.proxy_protocol {
        config.proxy_protocol = config::networks("proxy_protocol", balancers)?;
    }
    fit_descriptor_limit(&mut config, &mut limits);
    let gate = b.cache_limits(limits).build()?;
    let workers = args.workers.or(file.workers);
    let workers = workers.map(|n| at_least_one(n, "workers")).transpose()?;
    if args.check {
        say!(
            "configuration ok: {} under {mount} on {listen}, {key_summary}",
            gate.root().display()
        )?;
        return Ok(());
    }
    reload_keys_on_hangup(gate.keyring_handle(), keys_file)?;
    run_server(gate, listen, config, workers)
}

/// A config file's text, refused past 1 MiB (so that `--config /dev/zero`
/// is an error, not a process that fills memory).
fn read_config(path: &Path) -> std::io::Result<String> {
    use std::io::Read as _;
    const MAX: u64 = 1 << 20;
    let mut text = String::new();
    std::fs::File::open(path)?
        .take(MAX + 1)
        .read_to_string(&mut text)?;
    if text.len() as u64 > MAX {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "larger than 1 MiB, not a config file",
        ));
    }
    Ok(text)
}

/// `n`, refused when zero: a server with no worker or no connection slot
/// would never answer.
fn at_least_one(n: usize, what: &str) -> Result<usize> {
    if n == 0 {
        bail!("{what}: must be at least 1");
    }
    Ok(n)
}

/// On `SIGHUP`, reads the keys file again and checks links with its keys
/// from then on (key rotation without a restart); a file that does not load
/// is logged and leaves the keys as they were. Keys given in
/// `MEDIAGATE_KEYS` cannot change while the server runs.
fn reload_keys_on_hangup(keys: KeyringHandle, file: Option<PathBuf>) -> Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .context("cannot start the keys-reload thread")?;
    // Registered before serving: from here on SIGHUP no longer ends the
    // process.
    let mut hangups = runtime
        .block_on(async { signal(SignalKind::hangup()) })
        .context("cannot handle SIGHUP")?;
    std::thread::Builder::new()
        .name("keys-reload".into())
        .spawn(move || {
            runtime.block_on(async move {
                while hangups.recv().await.is_some() {
                    reload_keys(&keys, file.as_deref());
                }
            })
        })
        .context("cannot start the keys-reload thread")?;
    Ok(())
}

/// One reload (see [`reload_keys_on_hangup`]).
fn reload_keys(keys: &KeyringHandle, file: Option<&Path>) {
    let Some(file) = file else {
        tracing::warn!("SIGHUP: keys from MEDIAGATE_KEYS cannot change while serving; restart");
        return;
    };
    match mediagate::verifier::load_keyring_file(file) {
        Ok(ring) => {
            tracing::info!(
                file = %file.display(),
                active = ring.active().id(),
                keys = ring.keys().count(),
                "keys reloaded"
            );
            keys.replace(ring);
        }
        Err(e) => {
            tracing::error!(error = %e, "keys not reloaded: still checking links with the previous keys");
        }
    }
}

/// Raises the soft open-files limit to the hard one (as nginx's
/// `worker_rlimit_nofile` does) and shares it out: at most a quarter for
/// the descriptors the file cache keeps, and the connection cap below what
/// is left, so that a flood of connections cannot starve the server of
/// descriptors for the files it serves.
pub(crate) fn fit_descriptor_limit(config: &mut ServerConfig, cache: &mut CacheLimits) {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut limit = getrlimit(Resource::Nofile);
    if let Some(hard) = limit.maximum {
        if limit.current.is_some_and(|soft| soft < hard) {
            limit.current = Some(hard);
            if setrlimit(Resource::Nofile, limit).is_err() {
                limit = getrlimit(Resource::Nofile);
            }
        }
    }
    if let Some(soft) = limit.current {
        share_descriptors(soft, config, cache);
    }
}

/// Shares `soft` descriptors out between the file cache and connections
/// (see [`fit_descriptor_limit`]).
fn share_descriptors(soft: u64, config: &mut ServerConfig, cache: &mut CacheLimits) {
    let fitted = cache.within_open_files(soft);
    if fitted.max_open_files < cache.max_open_files {
        tracing::info!(
            max_open_files = fitted.max_open_files,
            open_files = soft,
            "file cache's descriptors lowered to fit the open-files limit"
        );
    }
    *cache = fitted;
    let usable = soft.saturating_sub(64);
    let kept = cache.max_open_files as u64;
    // Each connection needs a socket and, while streaming, a file.
    let fit = ((usable - kept) / 2).max(16) as usize;
    if config.max_connections > fit {
        tracing::info!(
            max_connections = fit,
            open_files = soft,
            "connection cap lowered to fit the open-files limit"
        );
        config.max_connections = fit;
    }
}

/// Binds one socket per worker thread and serves until SIGINT or SIGTERM.
fn run_server(
    gate: MediaGate,
    listen: SocketAddr,
    config: ServerConfig,
    workers: Option<usize>,
) -> Result<()> {
    let threads = workers
        .or_else(|| std::thread::available_parallelism().ok().map(|n| n.get()))
        .unwrap_or(1);
    let bound = mediagate::verifier::Workers::bind(listen, threads)
        .with_context(|| format!("cannot listen on {listen}"))?;
    start_workers(gate, bound, config)
}

pub(crate) fn start_workers(
    gate: MediaGate,
    bound: mediagate::verifier::Workers,
    config: ServerConfig,
) -> Result<()> {
    tracing::info!(addr = %bound.local_addr(), root = %gate.root().display(), "serving");
    bound.run(gate, config, shutdown_signal())?;
    tracing::info!("stopped");
    Ok(())
}

async fn shutdown_signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    tracing::info!("shutting down: draining connections");
}

/// The token and the decoded request path of a URL (or a bare token).
fn split_url(url: &str) -> Result<(String, Option<String>)> {
    let after_scheme = url.find("://").map_or(url, |i| &url[i + 3..]);
    let Some(slash) = after_scheme.find('/') else {
        return Ok((url.to_owned(), None));
    };
    let path_and_query = &after_scheme[slash..];
    let (path, query) = path_and_query
        .split_once('?')
        .unwrap_or((path_and_query, ""));
    if let Some(t) = transport::token_from_query(query).map_err(|e| anyhow!("{e}"))? {
        return Ok((t.to_owned(), Some(path.to_owned())));
    }
    if let Some(i) = path.find("/_mg/") {
        if let Some((t, rest)) =
            transport::split_path_form(&path[i..]).map_err(|e| anyhow!("{e}"))?
        {
            return Ok((t.to_owned(), Some(format!("{}{rest}", &path[..i]))));
        }
    }
    bail!("no mg_token in that URL")
}

/// A link time as RFC 3339 (`2026-12-01T09:00:00Z`), the form `--not-before`
/// takes.
fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_else(|_| t.to_string())
}

fn ago(d: Duration) -> String {
    let s = d.whole_seconds().abs();
    let text = if s < 120 {
        format!("{s} s")
    } else if s < 7200 {
        format!("{} min", s / 60)
    } else if s < 172_800 {
        format!("{} h", s / 3600)
    } else {
        format!("{} days", s / 86400)
    };
    if d.is_negative() {
        format!("in {text}")
    } else {
        format!("{text} ago")
    }
}

fn inspect(url: &str, keys: Option<&Path>) -> Result<bool> {
    let (token, url_path) = if url.contains('/') {
        split_url(url)?
    } else {
        (url.to_owned(), None)
    };
    let now = OffsetDateTime::now_utc();
    let claims = mediagate::signer::decode_unverified(&token)
        .map_err(|e| anyhow!("not a mediagate link: {e}"))?;
    say!("user:        {}", claims.subject())?;
    say!(
        "scope:       {}{}",
        claims.path(),
        if claims.path().ends_with('/') {
            " (prefix: everything below)"
        } else {
            ""
        }
    )?;
    let methods: Vec<&str> = claims.methods().iter().map(Method::as_str).collect();
    say!("methods:     {}", methods.join(", "))?;
    say!("key id:      {}", claims.key_id())?;
    say!(
        "issued:      {} ({})",
        rfc3339(claims.issued_at()),
        ago(now - claims.issued_at())
    )?;
    if let Some(nbf) = claims.not_before() {
        say!("not before:  {} ({})", rfc3339(nbf), ago(now - nbf))?;
    }
    say!(
        "expires:     {} ({})",
        rfc3339(claims.expires_at()),
        ago(now - claims.expires_at())
    )?;
    if let Some(net) = claims.client_net() {
        say!("client:      {net}")?;
    }
    if let Some(cd) = claims.content_disposition() {
        say!("disposition: {cd}")?;
    }
    if let Some(ct) = claims.content_type() {
        say!("type:        {ct}")?;
    }
    if let Some(generation) = claims.generation() {
        say!("generation:  {generation}")?;
    }
    let Some(keys) = keys else {
        say!("signature:   not checked (pass --keys to check it)")?;
        return Ok(true);
    };
    let verifier = Verifier::new(load_keys(Some(keys))?);
    if let Err(e) = verifier.authenticate(&token) {
        say!("verdict:     INVALID: {e}")?;
        return Ok(false);
    }
    say!("signature:   valid")?;
    // Check against the URL's own path when it has one. The mount point is
    // not in the link: assume it ends where the scope's first segment starts.
    let request_path = match url_path.as_deref() {
        Some(raw) => {
            let decoded =
                MediaPath::from_uri_path(raw).map_err(|e| anyhow!("the URL's path: {e}"))?;
            let full = decoded.as_str().to_owned();
            let first_segment = claims
                .path()
                .split('/')
                .find(|s| !s.is_empty())
                .map(|s| format!("/{s}"));
            match first_segment.and_then(|seg| full.find(&seg)) {
                Some(i) => full[i..].to_owned(),
                None => full,
            }
        }
        None if claims.path().ends_with('/') => format!("{}x", claims.path()),
        None => claims.path().to_owned(),
    };
    let verdict = MediaPath::parse(&request_path)
        .map_err(|e| anyhow!("{e}"))
        .and_then(|p| Ok(verifier.verify(&token, &RequestFacts::new(Method::Get, &p), now)?));
    match verdict {
        Ok(_) => {
            say!("verdict:     VALID now for GET {request_path}")?;
            Ok(true)
        }
        Err(e) => {
            let why = match e.downcast_ref::<mediagate::signer::VerifyError>() {
                Some(mediagate::signer::VerifyError::Expired { expired_at }) => {
                    format!("expired {}", ago(now - *expired_at))
                }
                Some(mediagate::signer::VerifyError::NotYetValid { valid_from }) => {
                    format!("not valid yet: it starts {}", ago(now - *valid_from))
                }
                Some(mediagate::signer::VerifyError::ScopeMismatch) => {
                    format!(
                        "wrong path: the link covers {}, not {request_path}",
                        claims.path()
                    )
                }
                _ => e.to_string(),
            };
            say!("verdict:     INVALID: {why}")?;
            Ok(false)
        }
    }
}

/// Logs to stderr, filtered by `MEDIAGATE_LOG` (default `info`), as text
/// or, with `MEDIAGATE_LOG_FORMAT=json`, as one JSON object per line (what
/// log shippers read: every access-log field is a key).
///
/// Lines are written by a thread of their own, in batches, so that a
/// request never waits on stderr: a log reader that falls behind (a full
/// pipe, a stalled shipper) would otherwise stop every request once the
/// pipe's buffer filled. Lines it cannot take are counted and dropped
/// rather than queued without bound (see [`LOG_QUEUE_LINES`]); a warning
/// says how many. Keep the returned guard until exit: dropping it writes
/// what is queued.
fn init_logging() -> Result<WorkerGuard> {
    let filter = tracing_subscriber::EnvFilter::try_from_env("MEDIAGATE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let format = std::env::var("MEDIAGATE_LOG_FORMAT").unwrap_or_default();
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(true)
        .buffered_lines_limit(LOG_QUEUE_LINES)
        .thread_name("mediagate-log")
        // Flushed whenever the queue runs empty: one write per batch.
        .finish(std::io::BufWriter::new(std::io::stderr()));
    let dropped = writer.error_counter();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_target(true);
    match format.as_str() {
        "" | "text" => builder.with_ansi(ansi).init(),
        "json" => builder.json().flatten_event(true).init(),
        other => bail!("MEDIAGATE_LOG_FORMAT: {other:?} is not text or json"),
    }
    std::thread::Builder::new()
        .name("mediagate-log-watch".into())
        .spawn(move || report_dropped_lines(&dropped))
        .context("starting the log watch thread")?;
    Ok(guard)
}

/// Log lines queued for stderr at most (about 200 bytes each): what absorbs
/// a burst, or a log reader's pause, without dropping a line.
const LOG_QUEUE_LINES: usize = 32 * 1024;

/// Every ten seconds, warns of log lines dropped since the last warning.
fn report_dropped_lines(dropped: &tracing_appender::non_blocking::ErrorCounter) {
    let mut reported = 0;
    loop {
        std::thread::sleep(std::time::Duration::from_secs(10));
        let now = dropped.dropped_lines();
        if now > reported {
            tracing::warn!(
                dropped = now - reported,
                "log lines dropped: stderr is not keeping up"
            );
            reported = now;
        }
    }
}

fn run(cli: Cli) -> Result<bool> {
    match cli.command {
        Command::Keygen { out, id } => keygen(&out, id).map(|()| true),
        Command::Sign(args) => sign(&args).map(|()| true),
        Command::Inspect { url, keys } => inspect(&url, keys.keys.as_deref()),
        Command::Serve(args) => {
            let _log = init_logging()?;
            serve(args).map(|()| true)
        }
        Command::Demo { listen } => {
            let _log = init_logging()?;
            demo::run(listen).map(|()| true)
        }
    }
}

/// An error and its causes on one line, each cause once: the library errors
/// name their cause in their own message and also return it as `source`,
/// which `{:#}` would print a second time.
fn describe(e: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if line.contains(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line
}

/// A clap error as one line: its first paragraph (the message, and for a
/// missing argument the arguments it lists), without the tips and usage
/// block that follow the first blank line.
fn one_line(text: &str) -> String {
    let words: Vec<&str> = text
        .lines()
        .take_while(|line| !line.trim().is_empty())
        .map(|line| line.trim().trim_start_matches("error: "))
        .collect();
    if words.is_empty() {
        "invalid arguments".to_owned()
    } else {
        words.join(" ")
    }
}

/// Whether `e` comes from writing to a pipe whose reader has gone.
fn broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// Writes a line to stderr, ignoring a failure (`eprintln!` would panic on
/// it, and there is nowhere left to report it).
fn warn(line: std::fmt::Arguments<'_>) {
    use std::io::Write as _;
    let _ = writeln!(std::io::stderr().lock(), "{line}");
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            use clap::error::ErrorKind;
            if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion)
                || matches!(
                    e.kind(),
                    ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
                )
            {
                let _ = e.print();
                return if e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
                    ExitCode::from(2)
                } else {
                    ExitCode::SUCCESS
                };
            }
            warn(format_args!("mediagate: {}", one_line(&e.to_string())));
            return ExitCode::from(2);
        }
    };
    match run(cli) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        // The reader of our output went away: nothing is wrong with us.
        Err(e) if broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            warn(format_args!("mediagate: error: {}", describe(&e)));
            ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls_give_their_mount_or_are_refused() {
        for (base, mount) in [
            ("", ""),
            ("/media", "/media"),
            ("/media/", "/media/"),
            ("https://media.example.com", ""),
            ("https://media.example.com/media", "/media"),
            ("http://127.0.0.1:8080/a/b", "/a/b"),
        ] {
            assert_eq!(mount_of(base).ok(), Some(mount), "{base:?}");
        }
        for bad in [
            "media",
            "//evil.example/media",
            "javascript:alert(1)",
            "ftp://host/media",
            "https://",
            "https:///media",
            "https://x/y?z=1",
            "https://x/y#frag",
            "/media files",
            "/médias",
        ] {
            assert!(mount_of(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn descriptors_are_shared_between_the_cache_and_connections() {
        let share = |soft| {
            let (mut config, mut cache) = (ServerConfig::default(), CacheLimits::default());
            share_descriptors(soft, &mut config, &mut cache);
            (cache.max_open_files, config.max_connections)
        };
        // Plenty: the defaults stand.
        let defaults = (
            CacheLimits::default().max_open_files,
            ServerConfig::default().max_connections,
        );
        assert_eq!(share(1 << 20), defaults);
        // A common 1024: a quarter of what is usable for the cache, half of
        // the rest for connections (a socket and a file each).
        assert_eq!(share(1024), (240, 360));
        let (files, conns) = share(4096);
        assert!(files as u64 + 2 * conns as u64 <= 4096 - 64);
        // Absurdly low: still serves.
        assert_eq!(share(10), (0, 16));
    }
}
