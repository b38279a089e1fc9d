//! Prometheus metrics, off until [`install`]ed: requests by status and
//! refusal reason, bytes sent, response times, connections open and
//! evicted, file cache hits and misses, open descriptors, key and root
//! reloads, and the build. Requests are counted where their access-log line
//! is written (`access_log::Line`), so a metric and a line never disagree.
//!
//! The metrics are process-wide, as the log is; [`render`] gives them in
//! the Prometheus text format, and the bundled server answers them on a
//! listener of their own ([`serve_metrics`](crate::serve_metrics)).
//!
//! ```
//! mediagate_verifier::metrics::install();
//! let text = mediagate_verifier::metrics::render();
//! assert!(text.contains("mediagate_build_info"));
//! ```

use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::{Registry, Unit};

/// The labels of a request count: its status and, for a refusal, the
/// reason code (empty for a file served).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    status: u16,
    reason: &'static str,
}

/// What was reloaded while serving.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Reload {
    /// The keys file, read again.
    Keys,
    /// The media root, opened again.
    Root,
    /// The TLS certificates, read again.
    Certificates,
}

/// Upper bounds of the response-time buckets, in microseconds: 50 µs to
/// about 13 s, each 4x the last (and +Inf).
const BUCKETS_MICROS: [u64; 10] = [
    50, 200, 800, 3_200, 12_800, 51_200, 204_800, 819_200, 3_276_800, 13_107_200,
];

/// What one thread counted. The counts of every request live here, one
/// tally per thread on a cache line of its own, so that worker threads
/// never write to the same line (shared atomics cost more than the 3 % of
/// the fastest request a metric may take); a scrape adds them up.
#[derive(Debug, Default)]
struct Tally {
    /// Requests by status and reason: a handful of pairs, searched in order.
    requests: Vec<((u16, &'static str), u64)>,
    bytes: u64,
    /// Per bucket (not cumulative); the last is +Inf.
    buckets: [u64; BUCKETS_MICROS.len() + 1],
    count: u64,
    sum_micros: u64,
    opened: u64,
    closed: u64,
    parked: u64,
    unparked: u64,
    hits: u64,
    misses: u64,
}

#[derive(Debug, Default)]
#[repr(align(128))]
struct Shard(Mutex<Tally>);

/// Tallies, one per thread that counts (threads beyond this share).
const SHARDS: usize = 32;

#[derive(Debug)]
struct Metrics {
    registry: Registry,
    open_fds: Gauge,
    connections_evicted: Counter,
    key_reloads: Counter,
    root_reloads: Counter,
    certificate_reloads: Counter,
}

/// The tallies, added up at each scrape.
#[derive(Debug)]
struct Tallies;

static SHARD_LIST: OnceLock<Vec<Shard>> = OnceLock::new();

fn shards() -> &'static [Shard] {
    SHARD_LIST.get_or_init(|| (0..SHARDS).map(|_| Shard::default()).collect())
}

thread_local! {
    static MINE: Cell<Option<usize>> = const { Cell::new(None) };
}

/// This thread's tally.
fn with_tally(f: impl FnOnce(&mut Tally)) {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let i = MINE.with(|mine| {
        mine.get().unwrap_or_else(|| {
            let i = NEXT.fetch_add(1, Ordering::Relaxed) % SHARDS;
            mine.set(Some(i));
            i
        })
    });
    // A poisoned tally is still a valid one.
    let mut tally = shards()[i].0.lock().unwrap_or_else(|e| e.into_inner());
    f(&mut tally);
}

impl Tallies {
    fn sum(&self) -> Tally {
        let mut all = Tally::default();
        for shard in shards() {
            let t = shard.0.lock().unwrap_or_else(|e| e.into_inner());
            for &(key, n) in &t.requests {
                match all.requests.iter_mut().find(|(k, _)| *k == key) {
                    Some((_, total)) => *total += n,
                    None => all.requests.push((key, n)),
                }
            }
            all.bytes += t.bytes;
            for (a, b) in all.buckets.iter_mut().zip(t.buckets) {
                *a += b;
            }
            all.count += t.count;
            all.sum_micros += t.sum_micros;
            all.opened += t.opened;
            all.closed += t.closed;
            all.parked += t.parked;
            all.unparked += t.unparked;
            all.hits += t.hits;
            all.misses += t.misses;
        }
        all.requests.sort_unstable();
        all
    }
}

impl Collector for Tallies {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let t = self.sum();
        let counter = |encoder: &mut DescriptorEncoder, name, help, unit: Option<&Unit>, v| {
            let e = encoder.encode_descriptor(name, help, unit, MetricType::Counter)?;
            ConstCounter::new(v).encode(e)
        };
        let mut e = encoder.encode_descriptor(
            "requests",
            "Requests answered, by status and refusal reason (empty for a file served)",
            None,
            MetricType::Counter,
        )?;
        for &((status, reason), n) in &t.requests {
            let labels = RequestLabels { status, reason };
            ConstCounter::new(n).encode(e.encode_family(&labels)?)?;
        }
        counter(
            &mut encoder,
            "response_body",
            "Response body bytes sent",
            Some(&Unit::Bytes),
            t.bytes,
        )?;
        let mut e = encoder.encode_descriptor(
            "response_duration",
            "Time from a request's arrival to its last byte handed to the connection",
            Some(&Unit::Seconds),
            MetricType::Histogram,
        )?;
        let buckets: Vec<(f64, u64)> = BUCKETS_MICROS
            .iter()
            .map(|&b| b as f64 / 1e6)
            .chain([f64::INFINITY])
            .zip(t.buckets)
            .collect();
        e.encode_histogram::<NoLabelSet>(t.sum_micros as f64 / 1e6, t.count, &buckets, None)?;
        let e = encoder.encode_descriptor(
            "connections_open",
            "Client connections open",
            None,
            MetricType::Gauge,
        )?;
        ConstGauge::new(t.opened as i64 - t.closed as i64).encode(e)?;
        let e = encoder.encode_descriptor(
            "connections_parked",
            "Idle HTTP/1 connections parked between requests, without hyper's buffers",
            None,
            MetricType::Gauge,
        )?;
        ConstGauge::new(t.parked as i64 - t.unparked as i64).encode(e)?;
        counter(
            &mut encoder,
            "file_cache_hits",
            "Files found in the cache of file versions, still current",
            None,
            t.hits,
        )?;
        counter(
            &mut encoder,
            "file_cache_misses",
            "Files opened because the cache had no current version",
            None,
            t.misses,
        )
    }
}

impl Metrics {
    fn new() -> Metrics {
        let m = Metrics {
            registry: Registry::with_prefix("mediagate"),
            open_fds: Gauge::default(),
            connections_evicted: Counter::default(),
            key_reloads: Counter::default(),
            root_reloads: Counter::default(),
            certificate_reloads: Counter::default(),
        };
        let mut r = m.registry;
        r.register_collector(Box::new(Tallies));
        r.register(
            "connections_evicted",
            "Idle connections closed to make room at the connection limit",
            m.connections_evicted.clone(),
        );
        r.register(
            "open_fds",
            "File descriptors the process holds open (sockets, files, the root)",
            m.open_fds.clone(),
        );
        r.register(
            "key_reloads",
            "Keys files read again while serving",
            m.key_reloads.clone(),
        );
        r.register(
            "root_reloads",
            "Media roots opened again while serving",
            m.root_reloads.clone(),
        );
        r.register(
            "certificate_reloads",
            "TLS certificates read again while serving",
            m.certificate_reloads.clone(),
        );
        r.register(
            "build",
            "The mediagate build",
            Info::new(vec![("version", env!("CARGO_PKG_VERSION"))]),
        );
        Metrics { registry: r, ..m }
    }
}

static METRICS: OnceLock<Metrics> = OnceLock::new();

/// Turns the metrics on for this process (idempotent). Until then nothing
/// is counted and nothing costs.
pub fn install() {
    METRICS.get_or_init(Metrics::new);
}

/// Whether the metrics are on.
pub(crate) fn on() -> bool {
    METRICS.get().is_some()
}

/// The metrics in the Prometheus text exposition format (empty when not
/// [`install`]ed).
pub fn render() -> String {
    let Some(m) = METRICS.get() else {
        return String::new();
    };
    if let Some(n) = open_fds() {
        m.open_fds.set(n);
    }
    let mut out = String::with_capacity(4096);
    // Writing to a String cannot fail.
    let _ = prometheus_client::encoding::text::encode(&mut out, &m.registry);
    out
}

/// Counts a reload done while serving.
pub fn record_reload(what: Reload) {
    if let Some(m) = METRICS.get() {
        match what {
            Reload::Keys => m.key_reloads.inc(),
            Reload::Root => m.root_reloads.inc(),
            Reload::Certificates => m.certificate_reloads.inc(),
        };
    }
}

/// One request answered: `status`, `reason` for a refusal, `bytes` of body
/// sent, `micros` until the last of them was handed on.
pub(crate) fn request(status: u16, reason: Option<&'static str>, bytes: u64, micros: u64) {
    if !on() {
        return;
    }
    let key = (status, reason.unwrap_or(""));
    let bucket = BUCKETS_MICROS
        .iter()
        .position(|&b| micros <= b)
        .unwrap_or(BUCKETS_MICROS.len());
    with_tally(|t| {
        match t.requests.iter_mut().find(|(k, _)| *k == key) {
            Some((_, n)) => *n += 1,
            None => t.requests.push((key, 1)),
        }
        t.bytes += bytes;
        t.buckets[bucket] += 1;
        t.count += 1;
        t.sum_micros += micros;
    });
}

/// A connection opened; counted closed when the guard is dropped.
pub(crate) fn connection() -> Option<ConnectionGauge> {
    on().then(|| {
        with_tally(|t| t.opened += 1);
        ConnectionGauge
    })
}

/// Counts a connection in `connections_parked` while the guard lives.
pub(crate) fn parked() -> Option<ParkedGauge> {
    on().then(|| {
        with_tally(|t| t.parked += 1);
        ParkedGauge
    })
}

/// Holds one count in `connections_parked` while the connection is parked.
#[derive(Debug)]
pub(crate) struct ParkedGauge;

impl Drop for ParkedGauge {
    fn drop(&mut self) {
        with_tally(|t| t.unparked += 1);
    }
}

/// Holds one count in `connections_open` while the connection lives.
#[derive(Debug)]
pub(crate) struct ConnectionGauge;

impl Drop for ConnectionGauge {
    fn drop(&mut self) {
        with_tally(|t| t.closed += 1);
    }
}

/// An idle connection asked to close to make room.
pub(crate) fn evicted() {
    if let Some(m) = METRICS.get() {
        m.connections_evicted.inc();
    }
}

/// A file found current in the cache (`true`) or opened (`false`).
pub(crate) fn file_cache(hit: bool) {
    if on() {
        with_tally(|t| {
            if hit {
                t.hits += 1;
            } else {
                t.misses += 1;
            }
        });
    }
}

/// The number of descriptors open, from `/proc/self/fd` (Linux).
fn open_fds() -> Option<i64> {
    let dir = std::fs::read_dir("/proc/self/fd").ok()?;
    // The directory's own descriptor is one of them.
    Some(dir.count() as i64 - 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_counted_by_status_and_reason_and_rendered() {
        install();
        request(200, None, 1024, 150);
        request(403, Some("expired"), 8, 20);
        request(403, Some("expired"), 8, 20);
        record_reload(Reload::Keys);
        file_cache(true);
        let gauge = connection();
        let text = render();
        for needle in [
            "mediagate_requests_total{status=\"200\",reason=\"\"}",
            "mediagate_requests_total{status=\"403\",reason=\"expired\"}",
            "mediagate_response_body_bytes_total",
            "mediagate_response_duration_seconds_bucket{le=\"0.0002\"}",
            "mediagate_connections_open",
            "mediagate_key_reloads_total",
            "mediagate_file_cache_hits_total",
            "mediagate_open_fds",
            "mediagate_build_info{version=\"",
        ] {
            assert!(text.contains(needle), "{needle} in\n{text}");
        }
        // Other tests in this process count too: at least ours are there.
        let expired = text
            .lines()
            .find(|l| l.starts_with("mediagate_requests_total{status=\"403\",reason=\"expired\"}"))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|n| n.parse::<u64>().ok());
        assert!(expired >= Some(2), "{text}");
        drop(gauge);
    }
}
