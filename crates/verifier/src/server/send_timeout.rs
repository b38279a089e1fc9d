//! The send timeout ([`ServerConfig::send_timeout`](crate::ServerConfig)):
//! a client that accepts no bytes for that long while a response waits to
//! be sent is cut off, so that clients that stop reading cannot hold every
//! place under the connection cap (a slow-read attack).
//!
//! It takes two forms, because a response can wait in two places:
//!
//! - on the socket, when the client stops reading and the socket buffers
//!   fill: [`SendTimer`] watches every write of the connection's I/O and
//!   fails one that has waited the timeout (HTTP/1 and HTTP/2);
//! - inside HTTP/2, when the client never opens a stream's flow-control
//!   window: nothing is written at all, so no write waits. [`Progress`]
//!   counts the connection's writes and its response bodies ([`Tracked`]),
//!   and [`watch_http2`] ends the connection when bodies have been open for
//!   the timeout without a single byte written.
//!
//! The same watch also closes an HTTP/2 connection that has had no request
//! for the header-read timeout, as HTTP/1 keep-alive connections are
//! closed: hyper's HTTP/2 server keeps an idle connection for as long as
//! the client answers its pings, which would let clients without any link
//! hold every place under the connection cap.

use std::collections::BTreeMap;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::Instant;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};

/// Ends a write that has waited `timeout` for the client to accept a byte
/// (nginx's `send_timeout`). The timer is allocated the first time a write
/// has to wait, which a small response on a reading client never does, and
/// re-armed each time a wait begins after progress.
#[derive(Debug)]
pub(crate) struct SendTimer {
    timeout: Duration,
    sleep: Option<Pin<Box<tokio::time::Sleep>>>,
    /// Whether `sleep` counts down the current wait.
    armed: bool,
    /// Counts the writes that sent something (HTTP/2 connections).
    progress: Option<Arc<Progress>>,
}

impl SendTimer {
    pub(crate) fn new(timeout: Duration, progress: Option<Arc<Progress>>) -> Self {
        SendTimer {
            timeout,
            sleep: None,
            armed: false,
            progress,
        }
    }

    /// Gives back the timer's allocation (a connection going idle); the
    /// next wait makes a new one.
    pub(crate) fn release(&mut self) {
        self.sleep = None;
        self.armed = false;
    }

    /// Passes a write's outcome through: progress (or an error) disarms the
    /// timer; a wait arms it if need be, and becomes a `TimedOut` error
    /// once the timer has run out.
    pub(crate) fn watch(
        &mut self,
        cx: &mut Context<'_>,
        write: Poll<io::Result<usize>>,
    ) -> Poll<io::Result<usize>> {
        if let Poll::Ready(result) = &write {
            self.armed = false;
            if let (Ok(1..), Some(progress)) = (result, &self.progress) {
                progress.writes.fetch_add(1, Ordering::Relaxed);
            }
            return write;
        }
        if !self.armed {
            let deadline = tokio::time::Instant::now() + self.timeout;
            match &mut self.sleep {
                Some(sleep) => sleep.as_mut().reset(deadline),
                None => self.sleep = Some(Box::pin(tokio::time::sleep_until(deadline))),
            }
            self.armed = true;
        }
        match self.sleep.as_mut().map(|sleep| sleep.as_mut().poll(cx)) {
            Some(Poll::Ready(())) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the client accepted no bytes within the send timeout",
            ))),
            _ => Poll::Pending,
        }
    }
}

/// What [`watch_http2`] watches on one HTTP/2 connection.
#[derive(Debug, Default)]
pub(crate) struct Progress {
    /// Writes that sent at least one byte.
    writes: AtomicU64,
    /// Response bodies made so far (one per request).
    made: AtomicU64,
    /// Response bodies not yet dropped (sent in full, or abandoned).
    open: AtomicUsize,
    /// Bodies whose first frame has not gone out yet, by number, with
    /// when they were made. hyper asks a body for its first frame at once,
    /// holds it until the stream's flow-control window has room, and asks
    /// for the next only once it is sent (a body of one frame is dropped
    /// then), so an entry that stays is a window kept shut.
    waiting: Mutex<BTreeMap<u64, Instant>>,
}

impl Progress {
    fn waiting(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, Instant>> {
        self.waiting.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A response body counted in [`Progress::open`] until dropped, and in
/// [`Progress::waiting`] until its first frame has gone out: until hyper
/// asks it for a second one, or drops it.
#[derive(Debug)]
pub(crate) struct Tracked<B> {
    body: B,
    progress: Arc<Progress>,
    /// Its number while in [`Progress::waiting`].
    waiting: Option<u64>,
    /// Whether hyper has asked it for a frame yet.
    asked: bool,
}

impl<B: Body> Tracked<B> {
    pub(crate) fn new(body: B, progress: &Arc<Progress>) -> Self {
        let number = progress.made.fetch_add(1, Ordering::Relaxed);
        progress.open.fetch_add(1, Ordering::Relaxed);
        // A body that ends with its head is never asked for data.
        let waiting = (!body.is_end_stream()).then(|| {
            progress.waiting().insert(number, Instant::now());
            number
        });
        Tracked {
            body,
            progress: Arc::clone(progress),
            waiting,
            asked: false,
        }
    }
}

impl<B> Tracked<B> {
    fn no_longer_waiting(&mut self) {
        if let Some(number) = self.waiting.take() {
            self.progress.waiting().remove(&number);
        }
    }
}

impl<B> Drop for Tracked<B> {
    fn drop(&mut self) {
        self.no_longer_waiting();
        self.progress.open.fetch_sub(1, Ordering::Relaxed);
    }
}

impl<B: Body<Data = Bytes> + Unpin> Body for Tracked<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        if std::mem::replace(&mut self.asked, true) {
            self.no_longer_waiting();
        }
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// Why [`watch_http2`] ended a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ended {
    /// Response bodies were open for the send timeout and nothing was
    /// written.
    Stalled,
    /// No request came for the keep-alive timeout.
    Idle,
    /// A response waited the window timeout for its stream's window to
    /// open.
    WindowShut,
}

/// Completes when the HTTP/2 connection of `progress` has had response
/// bodies open for `send_timeout` without a byte written, or no response
/// open and no new request for `idle_timeout`, or a response whose stream
/// window stayed shut for `window_timeout` after its head.
pub(crate) fn watch_http2(
    progress: Arc<Progress>,
    send_timeout: Duration,
    idle_timeout: Duration,
    window_timeout: Duration,
) -> impl Future<Output = Ended> {
    // Checked four times per timeout, so each is caught within 1.25 of
    // it; waking a connection's task that rarely costs nothing.
    let shortest = send_timeout.min(idle_timeout).min(window_timeout);
    let tick = (shortest / 4).max(Duration::from_millis(10));
    async move {
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        let (mut writes, mut made) = (load(&progress.writes), load(&progress.made));
        let mut since = tokio::time::Instant::now();
        let mut wrote_at = since;
        loop {
            tokio::time::sleep(tick).await;
            let wrote = load(&progress.writes) != writes;
            if wrote {
                wrote_at = tokio::time::Instant::now();
            }
            // A response still waiting for its first frame to go out, and
            // nothing at all written for as long: its window is kept shut.
            // (Streams that wait their turn while others are sent are not.)
            let oldest = progress.waiting().first_key_value().map(|(_, &made)| made);
            if oldest.is_some_and(|made| made.elapsed() >= window_timeout)
                && wrote_at.elapsed() >= window_timeout
            {
                return Ended::WindowShut;
            }
            let open = progress.open.load(Ordering::Relaxed) > 0;
            // Progress: a byte written while a response is open, or a new
            // request at any time.
            let moved = (open && wrote) || load(&progress.made) != made;
            (writes, made) = (load(&progress.writes), load(&progress.made));
            if moved {
                since = tokio::time::Instant::now();
            } else if open && since.elapsed() >= send_timeout {
                return Ended::Stalled;
            } else if !open && since.elapsed() >= idle_timeout {
                return Ended::Idle;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::Full;

    #[tokio::test(start_paused = true)]
    async fn a_connection_ends_when_stalled_with_open_bodies() {
        let progress = Arc::new(Progress::default());
        let timeout = Duration::from_secs(60);
        let idle = Duration::from_secs(1000);
        let watch = tokio::spawn(watch_http2(Arc::clone(&progress), timeout, idle, idle));
        // A body open and bytes going out: not stalled.
        let body = Tracked::new(Full::new(Bytes::from_static(b"x")), &progress);
        for _ in 0..12 {
            progress.writes.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(timeout / 4).await;
        }
        assert!(!watch.is_finished());
        // No more writes while it stays open: stalled within 1.25 timeouts.
        tokio::time::sleep(timeout + timeout / 4 + Duration::from_secs(1)).await;
        assert_eq!(watch.await.unwrap(), Ended::Stalled);
        drop(body);
        assert_eq!(progress.open.load(Ordering::Relaxed), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_response_whose_first_frame_never_goes_out_ends_the_connection() {
        use http_body_util::BodyExt as _;
        let progress = Arc::new(Progress::default());
        let (long, window) = (Duration::from_secs(1000), Duration::from_secs(10));
        let watch = tokio::spawn(watch_http2(Arc::clone(&progress), long, long, window));
        // Asked for its first frame (hyper holds it for the window) and
        // never for a second: the window stays shut.
        let mut stuck = Tracked::new(Full::new(Bytes::from_static(b"refused\n")), &progress);
        let _first = stuck.frame().await;
        // Others on the connection go out meanwhile: it waits its turn.
        for _ in 0..8 {
            progress.writes.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(window / 4).await;
        }
        assert!(!watch.is_finished());
        // Nothing written for the window timeout: ended.
        tokio::time::sleep(window + window / 2).await;
        assert_eq!(watch.await.unwrap(), Ended::WindowShut);
        // A body asked for a second frame, or dropped, waits no more.
        let mut moving = Tracked::new(Full::new(Bytes::from_static(b"x")), &progress);
        let _ = moving.frame().await;
        let _ = moving.frame().await;
        drop(stuck);
        assert!(progress.waiting().is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn a_connection_ends_when_idle_and_new_requests_keep_it() {
        let progress = Arc::new(Progress::default());
        let idle = Duration::from_secs(10);
        let send = Duration::from_secs(1000);
        let watch = tokio::spawn(watch_http2(Arc::clone(&progress), send, idle, send));
        // A request now and then, each answered at once: never idle long.
        for _ in 0..10 {
            drop(Tracked::new(Full::new(Bytes::new()), &progress));
            tokio::time::sleep(idle / 2).await;
        }
        assert!(!watch.is_finished());
        // Writes alone (the server's pings) do not count as activity.
        for _ in 0..4 {
            progress.writes.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(idle / 2).await;
        }
        assert_eq!(watch.await.unwrap(), Ended::Idle);
    }
}
