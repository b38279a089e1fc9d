//! Revocations shared by several verifier nodes through Redis.
//!
//! The rules live in one Redis hash (default key `mediagate:revocations`),
//! one field per rule: `user:<id>` = `<issued_before> <until>`,
//! `generation:<id>` = `<below> <until>`, `link:<id>` = `<until>` (Unix
//! seconds). `mediagate revoke --redis URL` records a rule with one Lua
//! script that merges it with the rule already there (a rule never
//! weakens), drops rules past their time, bumps a version counter
//! (`<key>:version`) and publishes `<version> <field> <value>` on the
//! channel named like the hash.
//!
//! Every `mediagate serve --redis URL` holds the whole set in memory: it
//! loads it at start, applies each published change, and once a second
//! reads the version: a gap (a change it missed while reconnecting) loads
//! the whole set again. That read is also its contact with Redis: when
//! Redis has been out of reach longer than the allowed staleness, the node
//! refuses links with 503 `revocations_unavailable` (and its health check
//! says so), or, if the operator chose to, keeps serving with the last
//! rules it had. A value that does not read is never taken to mean
//! "nothing revoked": the node keeps the rules it has and counts as out of
//! contact until a whole, valid set loads.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use mediagate::signer::Grant;
use mediagate::signer::revoke::{LinkId, Revocations};
use mediagate::signer::time::OffsetDateTime;
use mediagate::verifier::{Revocation, RevocationCheck, RevocationsHandle};

/// The hash's default key (also the channel's name).
pub(crate) const DEFAULT_KEY: &str = "mediagate:revocations";

/// How often a node reads the version (its contact with Redis).
const POLL_EVERY: Duration = Duration::from_secs(1);

/// Records one rule (see the module docs): KEYS = hash, version key,
/// prune cursor; ARGV = field, value, now (Unix seconds). Numbers are
/// compared as decimal strings (Lua's numbers are doubles; generations are
/// u64). Each call also looks at the next 100 fields for rules past their
/// time (an `HSCAN` cursor kept in Redis), so pruning costs every call a
/// bounded amount however many rules there are, and never blocks Redis
/// for long.
const RECORD: &str = r#"
local function bigger(x, y)
  if #x ~= #y then return #x > #y end
  return x > y
end
local function words(s)
  local t = {}
  for w in string.gmatch(s, '%d+') do t[#t + 1] = w end
  return t
end
local value = ARGV[2]
local current = redis.call('HGET', KEYS[1], ARGV[1])
if current then
  local a, b = words(current), words(value)
  if #a == #b then
    for i = 1, #a do
      if bigger(a[i], b[i]) then b[i] = a[i] end
    end
    value = table.concat(b, ' ')
  end
end
redis.call('HSET', KEYS[1], ARGV[1], value)
local scan = redis.call('HSCAN', KEYS[1], redis.call('GET', KEYS[3]) or '0', 'COUNT', 100)
redis.call('SET', KEYS[3], scan[1])
local some = scan[2]
for i = 1, #some, 2 do
  local w = words(some[i + 1])
  local untilv = w[#w]
  if untilv and bigger(ARGV[3], untilv) then redis.call('HDEL', KEYS[1], some[i]) end
end
local version = redis.call('INCR', KEYS[2])
redis.call('PUBLISH', KEYS[1], version .. ' ' .. ARGV[1] .. ' ' .. value)
return version
"#;

/// A rule as a hash field and value.
pub(crate) fn field_of(kind: &str, id: &str, numbers: &[i128]) -> (String, String) {
    let value: Vec<String> = numbers.iter().map(i128::to_string).collect();
    (format!("{kind}:{id}"), value.join(" "))
}

/// Applies one field of the hash to `set`.
fn apply(set: &mut Revocations, field: &str, value: &str) -> Result<()> {
    let bad = || anyhow!("a rule in Redis that does not read");
    let (kind, id) = field.split_once(':').ok_or_else(bad)?;
    let numbers: Vec<&str> = value.split(' ').collect();
    let time = |s: &str| -> Result<OffsetDateTime> {
        let secs: i64 = s.parse().map_err(|_| bad())?;
        OffsetDateTime::from_unix_timestamp(secs).map_err(|_| bad())
    };
    match (kind, numbers.as_slice()) {
        ("user", [before, until]) => set.revoke_user(id, time(before)?, time(until)?)?,
        ("generation", [below, until]) => {
            set.revoke_generation(id, below.parse().map_err(|_| bad())?, time(until)?)?
        }
        ("link", [until]) => {
            let id: LinkId = id.parse().map_err(|_| bad())?;
            set.revoke_link(id, time(until)?)?
        }
        _ => bail!(bad()),
    }
    Ok(())
}

/// The whole set, and its version, read in one transaction.
async fn load_all(
    conn: &mut redis::aio::MultiplexedConnection,
    key: &str,
) -> Result<(Revocations, u64)> {
    let (fields, version): (Vec<(String, String)>, Option<u64>) = redis::pipe()
        .atomic()
        .hgetall(key)
        .get(format!("{key}:version"))
        .query_async(conn)
        .await?;
    let mut set = Revocations::new();
    for (field, value) in &fields {
        apply(&mut set, field, value)?;
    }
    set.prune(OffsetDateTime::now_utc());
    Ok((set, version.unwrap_or(0)))
}

/// Records a rule in Redis (what `mediagate revoke --redis` does); the new
/// version.
pub(crate) fn record(url: &str, key: &str, field: &str, value: &str) -> Result<u64> {
    let client = redis::Client::open(url).context("--redis: not a Redis URL")?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let mut conn = tokio::time::timeout(
            Duration::from_secs(5),
            client.get_multiplexed_async_connection(),
        )
        .await
        .map_err(|_| anyhow!("Redis at {} did not answer in 5 s", shown(url)))?
        .with_context(|| format!("cannot reach Redis at {}", shown(url)))?;
        let now = OffsetDateTime::now_utc().unix_timestamp();
        let version: u64 = redis::Script::new(RECORD)
            .key(key)
            .key(format!("{key}:version"))
            .key(format!("{key}:prune-cursor"))
            .arg(field)
            .arg(value)
            .arg(now)
            .invoke_async(&mut conn)
            .await
            .context("Redis refused the revocation")?;
        Ok(version)
    })
}

/// The set held in Redis (what `mediagate revoke --redis --list` shows).
pub(crate) fn list(url: &str, key: &str) -> Result<Revocations> {
    let client = redis::Client::open(url).context("--redis: not a Redis URL")?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let mut conn = client
            .get_multiplexed_async_connection()
            .await
            .with_context(|| format!("cannot reach Redis at {}", shown(url)))?;
        Ok(load_all(&mut conn, key).await?.0)
    })
}

/// A Redis URL without its password, for messages.
pub(crate) fn shown(url: &str) -> String {
    match (url.split_once("://"), url.rsplit_once('@')) {
        (Some((scheme, _)), Some((_, host))) => format!("{scheme}://{host}"),
        _ => url.to_owned(),
    }
}

/// Refuses a Redis URL that carries a password when it was given on the
/// command line, where every user of the machine can read it (`ps`):
/// such a URL belongs in `MEDIAGATE_REDIS_URL` or the config file.
pub(crate) fn refuse_password_in_args(url: &str) -> Result<()> {
    let has_password = url.split_once("://").is_some_and(|(_, rest)| {
        rest.split_once('@')
            .is_some_and(|(userinfo, _)| userinfo.contains(':'))
    });
    if has_password && std::env::args().any(|a| a.contains(url)) {
        bail!(
            "--redis: a password on the command line is visible to every user \
             (ps); set MEDIAGATE_REDIS_URL or `redis` in the config file instead"
        );
    }
    Ok(())
}

/// What a node does when Redis has been out of reach too long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WhenStale {
    /// Refuse links: 503 `revocations_unavailable` (the default).
    Refuse,
    /// Keep serving with the last rules it had.
    Serve,
}

/// A node's view of the shared rules: what requests check.
#[derive(Debug)]
pub(crate) struct Shared {
    rules: RevocationsHandle,
    /// One more than the milliseconds since `base` of the last contact
    /// with Redis that confirmed the rules in force are current; 0 before
    /// any.
    contact: AtomicU64,
    base: Instant,
    max_staleness: Duration,
    when_stale: WhenStale,
}

impl Shared {
    fn touch(&self) {
        let ms = self.base.elapsed().as_millis() as u64;
        self.contact.store(ms + 1, Ordering::Relaxed);
    }

    /// Time since the last contact with Redis (`Duration::MAX` before any).
    fn since_contact(&self) -> Duration {
        match self.contact.load(Ordering::Relaxed) {
            0 => Duration::MAX,
            at => {
                let since = (self.base.elapsed().as_millis() as u64).saturating_sub(at - 1);
                Duration::from_millis(since)
            }
        }
    }

    /// Whether the rules are older than allowed (or never loaded).
    fn stale(&self) -> bool {
        self.since_contact() > self.max_staleness
    }
}

impl RevocationCheck for Shared {
    fn check(&self, grant: &Grant) -> Revocation {
        if let Some(why) = self.rules.revoked(grant) {
            return Revocation::Revoked(why);
        }
        if self.when_stale == WhenStale::Refuse && self.stale() {
            return Revocation::Unknown;
        }
        Revocation::Valid
    }

    fn unhealthy(&self) -> bool {
        self.when_stale == WhenStale::Refuse && self.stale()
    }

    fn out_of_reach(&self) -> bool {
        // A missed read of the version, and some.
        self.since_contact() > POLL_EVERY + POLL_EVERY / 2
    }
}

/// Loads the rules from Redis (waiting up to 5 s for it) and follows them
/// on a thread of its own; what requests check.
pub(crate) fn follow(
    url: &str,
    key: &str,
    max_staleness: Duration,
    when_stale: WhenStale,
) -> Result<Arc<Shared>> {
    let client = redis::Client::open(url).context("redis: not a Redis URL")?;
    let shared = Arc::new(Shared {
        rules: RevocationsHandle::default(),
        contact: AtomicU64::new(0),
        base: Instant::now(),
        max_staleness,
        when_stale,
    });
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let first = runtime.block_on(async {
        let mut conn = tokio::time::timeout(
            Duration::from_secs(5),
            client.get_multiplexed_async_connection(),
        )
        .await
        .map_err(|_| anyhow!("no answer in 5 s"))??;
        load_all(&mut conn, key).await
    });
    let mut version = 0;
    match first {
        Ok((set, v)) => {
            let rules = set.len();
            shared.rules.replace(set);
            shared.touch();
            version = v;
            // Before the server says it is up: a debug line, so that the
            // first line an operator sees is "serving" (or the error).
            tracing::debug!(redis = %shown(url), rules, version = v, "revocations loaded from Redis");
        }
        Err(e) => {
            // Out of contact from the start: in the default mode no link is
            // served until the rules load.
            tracing::warn!(redis = %shown(url), error = %format!("{e:#}"), "revocations not loaded from Redis: retrying");
        }
    }
    let (following, url, key) = (Arc::clone(&shared), shown(url), key.to_owned());
    std::thread::Builder::new()
        .name("revocations".into())
        .spawn(move || runtime.block_on(run(client, key, following, version, url)))
        .context("cannot start the revocations thread")?;
    Ok(shared)
}

/// Puts `set`, read at version `v`, in force, and returns the version the
/// node is at. A version lower than the node's own (`held`) means Redis
/// lost changes (a restart without persistence, a failover to a replica
/// that lagged): the rules the node held stay, merged with what Redis has,
/// so that nothing revoked is served again.
/// With `say`, logs it once in force.
fn install(shared: &Shared, mut set: Revocations, held: u64, v: u64, url: &str, say: bool) -> u64 {
    if v < held {
        set.merge(&shared.rules.current());
        tracing::warn!(
            redis = %url,
            held,
            found = v,
            rules = set.len(),
            "Redis holds an older version of the revocations than this node: keeping the rules held too"
        );
    }
    let rules = set.len();
    shared.rules.replace(set);
    if say {
        tracing::info!(redis = %url, rules, version = v, "revocations loaded from Redis");
    }
    v
}

/// Follows the rules for ever: subscribe, apply changes, read the version
/// every second, load everything again after a gap, reconnect after an
/// error.
async fn run(
    client: redis::Client,
    key: String,
    shared: Arc<Shared>,
    mut version: u64,
    url: String,
) {
    use futures_util::StreamExt as _;
    let mut out_of_reach = false;
    loop {
        let session = async {
            let mut conn = client.get_multiplexed_async_connection().await?;
            let mut pubsub = client.get_async_pubsub().await?;
            pubsub.subscribe(&key).await?;
            // Changes made before the subscription took are caught here.
            let (set, v) = load_all(&mut conn, &key).await?;
            let said = v != version || out_of_reach;
            version = install(&shared, set, version, v, &url, said);
            shared.touch();
            if out_of_reach {
                tracing::info!(redis = %url, "Redis in reach again");
                out_of_reach = false;
            }
            let mut messages = pubsub.on_message();
            let mut tick = tokio::time::interval(POLL_EVERY);
            loop {
                tokio::select! {
                    msg = messages.next() => {
                        let Some(msg) = msg else { bail!("the subscription ended") };
                        let text: String = msg.get_payload().unwrap_or_default();
                        let mut parts = text.splitn(3, ' ');
                        let next = parts.next().and_then(|v| v.parse::<u64>().ok());
                        let change = (parts.next(), parts.next());
                        let applied = match (next, change) {
                            (Some(n), (Some(field), Some(value))) if n == version + 1 => {
                                let mut set = (*shared.rules.current()).clone();
                                match apply(&mut set, field, value) {
                                    Ok(()) => {
                                        shared.rules.replace(set);
                                        version = n;
                                        // In force first, then said.
                                        tracing::info!(redis = %url, change = field, version = n, "revocation applied");
                                        true
                                    }
                                    Err(_) => false,
                                }
                            }
                            (Some(n), _) if n <= version => true,
                            _ => false,
                        };
                        if !applied {
                            let (set, v) = load_all(&mut conn, &key).await?;
                            version = install(&shared, set, version, v, &url, true);
                        }
                        shared.touch();
                    }
                    _ = tick.tick() => {
                        let v: Option<u64> = redis::cmd("GET")
                            .arg(format!("{key}:version"))
                            .query_async(&mut conn)
                            .await?;
                        if v.unwrap_or(0) != version {
                            let (set, v) = load_all(&mut conn, &key).await?;
                            version = install(&shared, set, version, v, &url, true);
                        }
                        shared.touch();
                    }
                }
            }
            #[allow(unreachable_code)]
            Ok::<(), anyhow::Error>(())
        };
        if let Err(e) = session.await {
            if !out_of_reach {
                tracing::error!(
                    redis = %url,
                    error = %format!("{e:#}"),
                    rules = shared.rules.current().len(),
                    "Redis out of reach: checking links against the last rules"
                );
                out_of_reach = true;
            }
        }
        tokio::time::sleep(POLL_EVERY).await;
    }
}
