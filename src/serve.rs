//! `mediagate serve`: the configuration (file, options, environment) made
//! into a verifier and a server, the open-files limit shared out, and the
//! signals a running server answers (SIGHUP reloads the keys; SIGINT and
//! SIGTERM drain and stop).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use mediagate::signer::time::Duration;
use mediagate::verifier::{CacheLimits, KeyringHandle, MediaGate, RevocationsHandle, ServerConfig};

use crate::cli::{ServeArgs, parse_duration, parse_listen};
use crate::config::{self, FileConfig};
use crate::keys::load_keys;
use mediagate::verifier::metrics::Reload;

/// A duration setting of the config file, if set; an error names it.
fn seconds(s: Option<&str>, what: &str) -> Result<Option<Duration>> {
    s.map(|s| parse_duration(s).map_err(|e| anyhow!("{what}: {e}")))
        .transpose()
}

/// [`seconds`] as the server's timers take it, to the nanosecond.
fn timer(s: Option<&str>, what: &str) -> Result<Option<std::time::Duration>> {
    Ok(seconds(s, what)?.map(|d| d.unsigned_abs()))
}

/// Builds the verifier and the server from the config file, overridden by
/// options and `MEDIAGATE_*` variables, then serves, or with `--check`
/// prints a summary.
pub(crate) fn serve(args: ServeArgs) -> Result<()> {
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
    // With HTTPS configured, plain HTTP only where asked for.
    let listen = match (args.listen, &file.listen) {
        (Some(listen), _) => Some(listen),
        (None, Some(listen)) => Some(parse_listen(listen).map_err(|e| anyhow!("listen: {e}"))?),
        (None, None) if file.tls.is_some() => None,
        (None, None) => Some(SocketAddr::from(([127, 0, 0, 1], 8080))),
    };
    let mount = args.mount.or_else(|| file.mount.clone());
    let mount = mount.as_deref().unwrap_or("/");
    let mut b = MediaGate::builder(&root, keys).mount(mount);
    match args.health_path.as_deref().or(file.health_path.as_deref()) {
        Some("off") => b = b.health_path(None),
        Some(h) => b = b.health_path(Some(h)),
        None => {}
    }
    b = file.apply_http(b)?;
    if let Some(path) = &file.auth_path {
        let local = ["127.0.0.0/8".to_owned(), "::1/128".to_owned()];
        let proxies = file.auth_proxies.as_deref().unwrap_or(&local);
        b = b.auth_endpoint(path, config::networks("auth_proxies", proxies)?);
    }
    if let Some(prefix) = &file.accel_redirect {
        b = b.accel_redirect(prefix);
    }
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
    match (&file.revalidate_after, file.revalidate_after_ms) {
        (Some(_), Some(_)) => {
            bail!("revalidate_after_ms: set revalidate_after alone (it replaces this one)")
        }
        (Some(d), None) => {
            limits.revalidate_after = match humantime::parse_duration(d.trim()) {
                // "0s": every request checks the file again.
                Ok(zero) if zero.is_zero() => std::time::Duration::ZERO,
                _ => timer(Some(d), "revalidate_after")?.unwrap_or_default(),
            };
        }
        (None, Some(ms)) => limits.revalidate_after = std::time::Duration::from_millis(ms),
        (None, None) => {}
    }
    if let Some(n) = file.max_open_files {
        limits.max_open_files = n;
    }
    if let Some(t) = timer(file.close_unused_after.as_deref(), "close_unused_after")? {
        limits.close_unused_after = t;
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
    if let Some(t) = timer(file.header_read_timeout.as_deref(), "header_read_timeout")? {
        config.header_read_timeout = t;
    }
    if let Some(t) = timer(file.keep_alive_timeout.as_deref(), "keep_alive_timeout")? {
        config.keep_alive_timeout = t;
    }
    if let Some(t) = timer(file.send_timeout.as_deref(), "send_timeout")? {
        config.send_timeout = t;
    }
    if let Some(t) = timer(file.window_timeout.as_deref(), "window_timeout")? {
        config.window_timeout = t;
    }
    if let Some(balancers) = &file.proxy_protocol {
        config.proxy_protocol = config::networks("proxy_protocol", balancers)?;
    }
    mediagate::verifier::fit_open_files(&mut config, &mut limits);
    let tls = file
        .tls
        .as_ref()
        .map(|t| t.load(config.http2))
        .transpose()?;
    let redis = args.redis.clone().or_else(|| file.redis.clone());
    let revocations_file = match &redis {
        Some(_) => None,
        None => crate::revoke::file_of(
            args.revocations.as_deref().or(file.revocations.as_deref()),
            keys_file.as_deref(),
        ),
    };
    let revocations = RevocationsHandle::default();
    if let Some(url) = &redis {
        use crate::redis_revocations::{DEFAULT_KEY, WhenStale, follow};
        crate::redis_revocations::refuse_password_in_args(url)?;
        let max_staleness = timer(
            file.revocations_max_staleness.as_deref(),
            "revocations_max_staleness",
        )?
        .unwrap_or(std::time::Duration::from_secs(30));
        let when_stale = match file.revocations_when_stale.as_deref() {
            None | Some("refuse") => WhenStale::Refuse,
            Some("serve") => WhenStale::Serve,
            Some(_) => bail!("revocations_when_stale: must be refuse or serve"),
        };
        let key = file.redis_key.as_deref().unwrap_or(DEFAULT_KEY);
        if !args.check {
            b = b.revocations(follow(url, key, max_staleness, when_stale)?);
        }
    } else if let Some(path) = &revocations_file {
        let mut set = crate::revoke::load(path)?;
        set.prune(mediagate::signer::time::OffsetDateTime::now_utc());
        revocations.replace(set);
        b = b.revocations(std::sync::Arc::new(revocations.clone()));
    }
    let metrics_addr = file
        .metrics_listen
        .as_deref()
        .map(|a| a.parse::<SocketAddr>())
        .transpose()
        .map_err(|_| anyhow!("metrics_listen: not an address like 127.0.0.1:9898"))?;
    let uploads = file.uploads.as_ref().map(|u| u.settings()).transpose()?;
    if let Some(u) = &uploads {
        b = b.uploads(u.clone());
    }
    let gate = b.cache_limits(limits).build()?;
    let workers = args.workers.or(file.workers);
    let workers = workers.map(|n| at_least_one(n, "workers")).transpose()?;
    if args.check {
        let rules = match (&redis, &revocations_file) {
            (Some(url), _) => format!(
                ", revocations from Redis at {}",
                crate::redis_revocations::shown(url)
            ),
            (None, Some(path)) => format!(
                ", revocations from {} ({} rule(s))",
                path.display(),
                revocations.current().len()
            ),
            (None, None) => String::new(),
        };
        let on = listen
            .iter()
            .map(|a| a.to_string())
            .chain(tls.iter().map(|(addr, tls)| {
                format!("https://{addr} ({} certificate(s))", tls.certificates())
            }))
            .collect::<Vec<_>>()
            .join(" and ");
        say!(
            "configuration ok: {} under {mount} on {on}, {key_summary}{rules}",
            gate.root().display()
        )?;
        return Ok(());
    }
    if uploads.is_some() {
        // Named temporaries a killed server left (only where unnamed ones
        // are unsupported), on a thread of their own: a large tree takes
        // a while to walk.
        let sweeping = gate.clone();
        std::thread::Builder::new()
            .name("upload-sweep".into())
            .spawn(move || {
                let removed = sweeping.remove_stale_uploads();
                if removed > 0 {
                    tracing::info!(
                        removed,
                        "removed the temporary files of interrupted uploads"
                    );
                }
            })
            .context("cannot start the upload sweep")?;
    }
    reload_on_hangup(
        gate.clone(),
        keys_file,
        revocations_file.map(|f| (f, revocations)),
        tls.as_ref().map(|(_, tls)| tls.clone()),
    )?;
    if let Some(addr) = metrics_addr {
        let listener = std::net::TcpListener::bind(addr)
            .map_err(|e| anyhow!("cannot listen for metrics on {addr}: {e}"))?;
        let bound = listener.local_addr()?;
        mediagate::verifier::serve_metrics(listener)?;
        tracing::info!(listen = %bound, "metrics served at /metrics");
    }
    let reuse_port = args.reuse_port || file.reuse_port.unwrap_or(false);
    run_server(gate, listen, tls, config, workers, reuse_port)
}

/// A config file's text, refused past 1 MiB (so that `--config /dev/zero`
/// is an error, not a process that fills memory).
fn read_config(path: &Path) -> std::io::Result<String> {
    read_capped(path, 1 << 20, "larger than 1 MiB, not a config file")
}

/// The text of the file at `path`, refused with `too_large` past `max`
/// bytes: a file the command reads whole (config, revocations) never
/// fills memory, whatever it turns out to be (`/dev/zero`).
pub(crate) fn read_capped(
    path: &Path,
    max: u64,
    too_large: &'static str,
) -> std::io::Result<String> {
    use std::io::Read as _;
    let mut text = String::new();
    std::fs::File::open(path)?
        .take(max + 1)
        .read_to_string(&mut text)?;
    if text.len() as u64 > max {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            too_large,
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
/// from then on (key rotation without a restart), and opens the media root
/// again (a deployment that switched a `current` symlink); either one that
/// fails is logged and leaves things as they were. Keys given in
/// `MEDIAGATE_KEYS` cannot change while the server runs. The TLS
/// certificates are read again too (new connections get them; open ones
/// keep theirs).
fn reload_on_hangup(
    gate: MediaGate,
    file: Option<PathBuf>,
    revocations: Option<(PathBuf, RevocationsHandle)>,
    tls: Option<mediagate::verifier::Tls>,
) -> Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()
        .context("cannot start the reload thread")?;
    // Registered before serving: from here on SIGHUP no longer ends the
    // process.
    let mut hangups = runtime
        .block_on(async { signal(SignalKind::hangup()) })
        .context("cannot handle SIGHUP")?;
    // A write past the file-size limit (RLIMIT_FSIZE) then fails with
    // EFBIG (an upload's 507) instead of SIGXFSZ ending the process.
    let file_size_limit = runtime
        .block_on(async { signal(SignalKind::from_raw(25)) })
        .context("cannot handle SIGXFSZ")?;
    std::thread::Builder::new()
        .name("reload".into())
        .spawn(move || {
            runtime.block_on(async move {
                let _file_size_limit = file_size_limit;
                let mut followed = revocations.map(|(path, handle)| Followed::new(path, handle));
                let mut tick = tokio::time::interval(FOLLOW_EVERY);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tokio::select! {
                        hangup = hangups.recv() => {
                            if hangup.is_none() {
                                break;
                            }
                            reload_keys(&gate.keyring_handle(), file.as_deref());
                            reopen_root(&gate);
                            if let Some(tls) = &tls {
                                reload_certificates(tls);
                            }
                            if let Some(f) = &mut followed {
                                f.reload();
                            }
                        }
                        _ = tick.tick() => {
                            if let Some(f) = &mut followed {
                                f.poll();
                            }
                        }
                    }
                }
            })
        })
        .context("cannot start the reload thread")?;
    Ok(())
}

/// How often the revocations file is looked at: a revocation reaches
/// every worker within this time.
const FOLLOW_EVERY: std::time::Duration = std::time::Duration::from_millis(500);

/// A revocations file followed while serving: looked at every
/// [`FOLLOW_EVERY`] (one `stat`), read again when it changed (it is
/// replaced by a rename, or written in place, or appears, or goes) and on
/// `SIGHUP`. A file that does not read keeps the rules in force, and says
/// why once per change. Polling rather than inotify: it sees a file
/// replaced by a rename, behind a symlink swapped by Kubernetes, or on a
/// network file system alike, for a `stat` twice a second.
struct Followed {
    path: PathBuf,
    handle: RevocationsHandle,
    /// What the file looked like when last read (`None`: absent).
    seen: Option<Stamp>,
}

/// A file's identity and version as `stat` gives them.
type Stamp = (u64, u64, u64, i64, i64, i64, i64);

fn stamp(path: &Path) -> Option<Stamp> {
    use std::os::unix::fs::MetadataExt as _;
    let m = std::fs::metadata(path).ok()?;
    Some((
        m.dev(),
        m.ino(),
        m.size(),
        m.mtime(),
        m.mtime_nsec(),
        m.ctime(),
        m.ctime_nsec(),
    ))
}

impl Followed {
    fn new(path: PathBuf, handle: RevocationsHandle) -> Self {
        let seen = stamp(&path);
        Followed { path, handle, seen }
    }

    /// Reads the file again if it changed since it was last read.
    fn poll(&mut self) {
        if stamp(&self.path) != self.seen {
            self.reload();
        }
    }

    /// Reads the file and puts its rules in force, or keeps the rules in
    /// force and says why not.
    fn reload(&mut self) {
        self.seen = stamp(&self.path);
        match crate::revoke::load(&self.path) {
            Ok(mut set) => {
                set.prune(mediagate::signer::time::OffsetDateTime::now_utc());
                let rules = set.len();
                // In force first, then said: a reader of the log may rely on it.
                self.handle.replace(set);
                tracing::info!(file = %self.path.display(), rules, "revocations reloaded");
            }
            Err(e) => tracing::error!(
                error = %format!("{e:#}"),
                rules = self.handle.current().len(),
                "revocations not reloaded: the rules in force stay"
            ),
        }
    }
}

/// The keys' part of a reload (see [`reload_on_hangup`]).
fn reload_keys(keys: &KeyringHandle, file: Option<&Path>) {
    let Some(file) = file else {
        tracing::warn!("SIGHUP: keys from MEDIAGATE_KEYS cannot change while serving; restart");
        return;
    };
    match crate::keys::load_keys_file(file) {
        Ok(ring) => {
            tracing::info!(
                file = %file.display(),
                active = ring.active().id(),
                keys = ring.keys().count(),
                "keys reloaded"
            );
            keys.replace(ring);
            mediagate::verifier::metrics::record_reload(Reload::Keys);
        }
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "keys not reloaded: still checking links with the previous keys");
        }
    }
}

/// The certificates' part of a reload (see [`reload_on_hangup`]).
fn reload_certificates(tls: &mediagate::verifier::Tls) {
    match tls.reload() {
        Ok(()) => {
            mediagate::verifier::metrics::record_reload(Reload::Certificates);
            tracing::info!(
                certificates = tls.certificates(),
                "TLS certificates reloaded"
            );
        }
        Err(e) => tracing::error!(
            error = %e,
            "TLS certificates not reloaded: new connections get the previous ones"
        ),
    }
}

/// The media root's part of a reload (see [`reload_on_hangup`]).
fn reopen_root(gate: &MediaGate) {
    let before = gate.root();
    let reopened = gate.reopen_root();
    if reopened.is_ok() {
        mediagate::verifier::metrics::record_reload(Reload::Root);
    }
    match reopened {
        Ok(root) if root == before => tracing::info!(root = %root.display(), "media root reopened"),
        Ok(root) => tracing::info!(
            root = %root.display(),
            was = %before.display(),
            "media root reopened: now serving from another directory"
        ),
        Err(e) => tracing::error!(
            error = %e,
            "media root not reopened: still serving from {}",
            before.display()
        ),
    }
}

/// Binds one socket per worker thread for each address (plain `listen`,
/// HTTPS `tls`) and serves until SIGINT or SIGTERM.
fn run_server(
    gate: MediaGate,
    listen: Option<SocketAddr>,
    tls: Option<(SocketAddr, mediagate::verifier::Tls)>,
    config: ServerConfig,
    workers: Option<usize>,
    reuse_port: bool,
) -> Result<()> {
    use mediagate::verifier::Workers;
    let threads = workers
        .or_else(|| std::thread::available_parallelism().ok().map(|n| n.get()))
        .unwrap_or(1);
    let refused = |addr: SocketAddr| {
        move |e: std::io::Error| match e.kind() {
            std::io::ErrorKind::AddrInUse if !reuse_port => anyhow!(
                "cannot listen on {addr}: {e}; to take over from a running mediagate \
                 serve without dropping connections, start this one with --reuse-port"
            ),
            _ => anyhow!("cannot listen on {addr}: {e}"),
        }
    };
    let plain = listen
        .map(|addr| {
            let bound = if reuse_port {
                Workers::bind_reuse_port(addr, threads)
            } else {
                Workers::bind(addr, threads)
            };
            bound.map_err(refused(addr))
        })
        .transpose()?;
    let https = tls
        .map(|(addr, tls)| {
            let bound = if reuse_port {
                Workers::bind_tls_reuse_port(addr, threads, tls)
            } else {
                Workers::bind_tls(addr, threads, tls)
            };
            bound.map_err(refused(addr))
        })
        .transpose()?;
    let bound = match (plain, https) {
        (Some(plain), Some(https)) => plain.and(https),
        (Some(one), None) | (None, Some(one)) => one,
        (None, None) => bail!("nothing to listen on: set listen or [tls]"),
    };
    start_workers(gate, bound, config)
}

/// Serves on sockets already bound until SIGINT or SIGTERM, then drains.
pub(crate) fn start_workers(
    gate: MediaGate,
    bound: mediagate::verifier::Workers,
    config: ServerConfig,
) -> Result<()> {
    // Listening for the signals before saying the server is up: one sent
    // the moment it says so must drain it, not kill it.
    let stop = shutdown_signal()?;
    for (addr, https) in bound.addrs() {
        match https {
            false => tracing::info!(%addr, root = %gate.root().display(), "serving"),
            true => tracing::info!(%addr, root = %gate.root().display(), "serving HTTPS"),
        }
    }
    bound.run(gate, config, stop)?;
    tracing::info!("stopped");
    Ok(())
}

/// Resolves at the first SIGINT or SIGTERM, both handled from the moment
/// this returns (a thread of its own waits for them).
fn shutdown_signal() -> Result<impl std::future::Future<Output = ()> + Send + 'static> {
    use tokio::signal::unix::{SignalKind, signal};
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .context("cannot start the signal thread")?;
    let (mut term, mut int) = runtime
        .block_on(async {
            Ok::<_, std::io::Error>((
                signal(SignalKind::terminate())?,
                signal(SignalKind::interrupt())?,
            ))
        })
        .context("cannot handle SIGTERM and SIGINT")?;
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            runtime.block_on(async {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = int.recv() => {}
                }
            });
            tracing::info!("shutting down: draining connections");
            let _ = tx.send(());
        })
        .context("cannot start the signal thread")?;
    Ok(async move {
        let _ = rx.await;
    })
}
