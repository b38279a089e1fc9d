//! The server's settings, [`ServerConfig`], each with its default.

use std::time::Duration;

use ipnet::IpNet;
use tokio::sync::Semaphore;

/// The longest any timeout is taken to be, 100 years: a longer one (up to
/// `Duration::MAX`, to mean "never") would overflow the arithmetic of the
/// deadlines.
pub(super) const LONGEST_TIMEOUT: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// Settings of [`serve`](crate::serve). Every field has a default, given with it.
/// Timeouts longer than 100 years count as 100 years.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ServerConfig {
    /// A client must send its request head within this time: the first
    /// from the moment the connection is accepted (on HTTP/2, the first
    /// request's headers), each next one on HTTP/1.1 from its first byte,
    /// or from the end of the previous response for a client that sends
    /// requests back to back (default 10 s, as nginx's
    /// `client_header_timeout` bounds a head that has begun).
    pub header_read_timeout: Duration,
    /// How long a kept-alive connection may wait, idle, for its next
    /// request to begin (HTTP/1.1), or with no response open and no new
    /// request (HTTP/2), before it is closed (default 75 s, nginx's
    /// `keepalive_timeout`). An idle HTTP/1.1 connection is parked (a few
    /// KiB) and gives way first at [`max_connections`](Self::max_connections),
    /// so a long wait costs little.
    pub keep_alive_timeout: Duration,
    /// The most connections served at once (default: sized from memory,
    /// see [`memory_sized_max_connections`]; 0 counts as 1, and more than
    /// [`Semaphore::MAX_PERMITS`] as that many). At the cap,
    /// the connection idle longest (no response in progress) is closed for
    /// each newcomer; with none idle, newcomers wait in the listen backlog
    /// (see `src/slots.rs`).
    pub max_connections: usize,
    /// How long a graceful shutdown waits for requests in flight (default 10 s).
    pub drain_timeout: Duration,
    /// Whether to accept HTTP/2 with prior knowledge (default true).
    pub http2: bool,
    /// Largest request head accepted, in bytes; larger ones get 431 (default 16 KiB).
    pub max_header_bytes: usize,
    /// Whether HTTP/1 file bodies go from the page cache to the socket with
    /// `sendfile(2)` instead of being read and written (default true; the
    /// mechanism is described in `src/sendfile.rs`). Turn it off for a file
    /// system that cannot `sendfile`.
    pub sendfile: bool,
    /// A connection whose client accepts no bytes for this long while a
    /// response waits to be sent is closed (default 60 s, as nginx's
    /// `send_timeout`): a client that stops reading a large file would
    /// otherwise hold its connection, and a place under
    /// [`max_connections`](Self::max_connections), for ever. A client that
    /// reads slowly but steadily is not affected.
    pub send_timeout: Duration,
    /// An HTTP/2 response whose stream's flow-control window the client
    /// keeps shut this long after the response head ends its connection
    /// (default 10 s; the client's other streams end with it, as hyper
    /// cannot reset one stream of a server's own accord). A client that
    /// announces a window of 0 and never opens it would otherwise hold a
    /// stream, and its file, for the send timeout.
    pub window_timeout: Duration,
    /// TCP load balancers that send the PROXY protocol (v1 or v2: HAProxy,
    /// AWS NLB and most others that pass connections through): every
    /// connection from one of these networks must begin with a PROXY
    /// header, and the client address it names stands for the peer's (for
    /// IP-bound links and trusted-proxy checks); one without a valid header
    /// is closed. Connections from anywhere else are read as plain HTTP, so
    /// a header a client writes itself is never believed (default: none).
    /// See `src/proxy_protocol.rs`.
    pub proxy_protocol: Vec<IpNet>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            header_read_timeout: Duration::from_secs(10),
            keep_alive_timeout: Duration::from_secs(75),
            max_connections: memory_sized_max_connections(),
            drain_timeout: Duration::from_secs(10),
            http2: true,
            max_header_bytes: 16 * 1024,
            sendfile: true,
            send_timeout: Duration::from_secs(60),
            window_timeout: Duration::from_secs(10),
            proxy_protocol: Vec::new(),
        }
    }
}

/// Memory a connection is allowed in the default cap: an idle one costs
/// the server about 4 KiB and the kernel a few more, a busy one tens of
/// KiB; the cap leaves room for many to be busy at once.
const PER_CONNECTION: u64 = 32 * 1024;

/// The default [`ServerConfig::max_connections`]: a quarter of the memory
/// the process may use (the machine's, or its cgroup's limit when lower)
/// at 32 KiB a connection, at least 1024 and at most 1,000,000: 4096 with
/// 512 MiB, 196,608 with 24 GiB. Read from `/proc/meminfo` and
/// `/sys/fs/cgroup/memory.max`; 4096 when neither reads. The open-files
/// limit may lower it further (see [`fit_open_files`](crate::fit_open_files)).
pub fn memory_sized_max_connections() -> usize {
    let total = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| mem_total(&m));
    let cgroup = std::fs::read_to_string("/sys/fs/cgroup/memory.max")
        .ok()
        .and_then(|m| m.trim().parse::<u64>().ok());
    match total.into_iter().chain(cgroup).min() {
        Some(bytes) => cap_for_memory(bytes),
        None => 4096,
    }
}

/// The cap for `bytes` of memory (see [`memory_sized_max_connections`]).
fn cap_for_memory(bytes: u64) -> usize {
    usize::try_from(bytes / 4 / PER_CONNECTION)
        .unwrap_or(usize::MAX)
        .clamp(1024, 1_000_000)
}

/// `MemTotal` of a `/proc/meminfo` text, in bytes.
fn mem_total(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find_map(|l| l.strip_prefix("MemTotal:"))?;
    let kib: u64 = line.trim().strip_suffix("kB")?.trim().parse().ok()?;
    kib.checked_mul(1024)
}

impl ServerConfig {
    /// This config as [`serve`](crate::serve) applies it: timeouts of at most
    /// [`LONGEST_TIMEOUT`], and a connection cap a semaphore can hold.
    pub(super) fn bounded(mut self) -> Self {
        for timeout in [
            &mut self.header_read_timeout,
            &mut self.keep_alive_timeout,
            &mut self.drain_timeout,
            &mut self.send_timeout,
            &mut self.window_timeout,
        ] {
            *timeout = (*timeout).min(LONGEST_TIMEOUT);
        }
        self.max_connections = self.max_connections.clamp(1, Semaphore::MAX_PERMITS);
        self
    }

    /// Sets [`header_read_timeout`](Self::header_read_timeout).
    pub fn with_header_read_timeout(mut self, timeout: Duration) -> Self {
        self.header_read_timeout = timeout;
        self
    }

    /// Sets [`keep_alive_timeout`](Self::keep_alive_timeout).
    pub fn with_keep_alive_timeout(mut self, timeout: Duration) -> Self {
        self.keep_alive_timeout = timeout;
        self
    }

    /// Sets [`max_connections`](Self::max_connections).
    pub fn with_max_connections(mut self, n: usize) -> Self {
        self.max_connections = n;
        self
    }

    /// Sets [`drain_timeout`](Self::drain_timeout).
    pub fn with_drain_timeout(mut self, timeout: Duration) -> Self {
        self.drain_timeout = timeout;
        self
    }

    /// Sets [`http2`](Self::http2).
    pub fn with_http2(mut self, enabled: bool) -> Self {
        self.http2 = enabled;
        self
    }

    /// Sets [`max_header_bytes`](Self::max_header_bytes).
    pub fn with_max_header_bytes(mut self, bytes: usize) -> Self {
        self.max_header_bytes = bytes;
        self
    }

    /// Sets [`sendfile`](Self::sendfile).
    pub fn with_sendfile(mut self, enabled: bool) -> Self {
        self.sendfile = enabled;
        self
    }

    /// Sets [`send_timeout`](Self::send_timeout).
    pub fn with_send_timeout(mut self, timeout: Duration) -> Self {
        self.send_timeout = timeout;
        self
    }

    /// Sets [`window_timeout`](Self::window_timeout).
    pub fn with_window_timeout(mut self, timeout: Duration) -> Self {
        self.window_timeout = timeout;
        self
    }

    /// Sets [`proxy_protocol`](Self::proxy_protocol).
    pub fn with_proxy_protocol(mut self, balancers: Vec<IpNet>) -> Self {
        self.proxy_protocol = balancers;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_cap_grows_with_memory_within_bounds() {
        assert_eq!(cap_for_memory(512 << 20), 4096);
        assert_eq!(cap_for_memory(24 << 30), 196_608);
        assert_eq!(cap_for_memory(64 << 20), 1024);
        assert_eq!(cap_for_memory(u64::MAX), 1_000_000);
        let meminfo = "MemTotal:       24683664 kB\nMemFree:  1 kB\n";
        assert_eq!(mem_total(meminfo), Some(24_683_664 * 1024));
        assert_eq!(mem_total("MemFree: 1 kB\n"), None);
        assert_eq!(mem_total("MemTotal: lots\n"), None);
        // This machine's: within the bounds, whatever it has.
        let here = memory_sized_max_connections();
        assert!((1024..=1_000_000).contains(&here));
    }
}
