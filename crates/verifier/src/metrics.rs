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

use std::sync::OnceLock;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
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
}

#[derive(Debug)]
struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    bytes: Counter,
    duration: Histogram,
    connections_open: Gauge,
    connections_evicted: Counter,
    cache_hits: Counter,
    cache_misses: Counter,
    open_fds: Gauge,
    key_reloads: Counter,
    root_reloads: Counter,
}

/// Response-time buckets, in seconds: 50 µs to about 13 s, each 4x the last.
fn buckets() -> impl Iterator<Item = f64> {
    prometheus_client::metrics::histogram::exponential_buckets(0.000_05, 4.0, 10)
}

impl Metrics {
    fn new() -> Metrics {
        let m = Metrics {
            registry: Registry::with_prefix("mediagate"),
            requests: Family::default(),
            bytes: Counter::default(),
            duration: Histogram::new(buckets()),
            connections_open: Gauge::default(),
            connections_evicted: Counter::default(),
            cache_hits: Counter::default(),
            cache_misses: Counter::default(),
            open_fds: Gauge::default(),
            key_reloads: Counter::default(),
            root_reloads: Counter::default(),
        };
        let mut r = m.registry;
        r.register(
            "requests",
            "Requests answered, by status and refusal reason (empty for a file served)",
            m.requests.clone(),
        );
        r.register_with_unit(
            "response_body",
            "Response body bytes sent",
            Unit::Bytes,
            m.bytes.clone(),
        );
        r.register_with_unit(
            "response_duration",
            "Time from a request's arrival to its last byte handed to the connection",
            Unit::Seconds,
            m.duration.clone(),
        );
        r.register(
            "connections_open",
            "Client connections open",
            m.connections_open.clone(),
        );
        r.register(
            "connections_evicted",
            "Idle connections closed to make room at the connection limit",
            m.connections_evicted.clone(),
        );
        r.register(
            "file_cache_hits",
            "Files found in the cache of file versions, still current",
            m.cache_hits.clone(),
        );
        r.register(
            "file_cache_misses",
            "Files opened because the cache had no current version",
            m.cache_misses.clone(),
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
        };
    }
}

/// One request answered: `status`, `reason` for a refusal, `bytes` of body
/// sent, `micros` until the last of them was handed on.
pub(crate) fn request(status: u16, reason: Option<&'static str>, bytes: u64, micros: u64) {
    if let Some(m) = METRICS.get() {
        let labels = RequestLabels {
            status,
            reason: reason.unwrap_or(""),
        };
        m.requests.get_or_create(&labels).inc();
        m.bytes.inc_by(bytes);
        m.duration.observe(micros as f64 / 1e6);
    }
}

/// A connection opened; the gauge goes down when the guard is dropped.
pub(crate) fn connection() -> Option<ConnectionGauge> {
    METRICS.get().map(|m| {
        m.connections_open.inc();
        ConnectionGauge
    })
}

/// Holds one count in `connections_open` while the connection lives.
#[derive(Debug)]
pub(crate) struct ConnectionGauge;

impl Drop for ConnectionGauge {
    fn drop(&mut self) {
        if let Some(m) = METRICS.get() {
            m.connections_open.dec();
        }
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
    if let Some(m) = METRICS.get() {
        if hit {
            m.cache_hits.inc();
        } else {
            m.cache_misses.inc();
        }
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
