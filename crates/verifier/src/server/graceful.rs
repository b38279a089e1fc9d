//! Graceful shutdown of the bundled server's connections: one signal that
//! every connection watches, and a wait until all of them have ended.
//!
//! hyper-util has one (`server::graceful`); this one differs where it
//! matters for a request in flight: a connection is polled before it looks
//! at the signal. hyper closes a connection at once, unanswered, if asked
//! to shut down before it has parsed a request; the bundled server hands
//! hyper a connection with its first request head already read
//! (`read_ahead`), and a shutdown that began meanwhile would drop a request
//! the client has sent. Polled first, the connection takes the request in;
//! asked to shut down then, it answers it and closes.

use std::future::Future;
use std::pin::Pin;

use tokio::sync::watch;

/// The signal, and the wait for the connections that watch it.
#[derive(Debug)]
pub(crate) struct Shutdown {
    tx: watch::Sender<()>,
    rx: watch::Receiver<()>,
}

impl Shutdown {
    pub(crate) fn new() -> Self {
        let (tx, rx) = watch::channel(());
        Shutdown { tx, rx }
    }

    /// A watcher for one connection; [`drain`](Self::drain) waits while it
    /// exists.
    pub(crate) fn watcher(&self) -> Watcher {
        Watcher(self.rx.clone())
    }

    /// Signals every connection, then waits until every watcher is gone.
    pub(crate) async fn drain(self) {
        let Shutdown { tx, rx } = self;
        drop(rx);
        tx.send_replace(());
        tx.closed().await;
    }
}

/// One connection's view of the signal.
#[derive(Debug)]
pub(crate) struct Watcher(watch::Receiver<()>);

impl Watcher {
    /// Resolves once the signal comes (or its sender is gone), for a
    /// connection that waits with nothing in flight (see `park`).
    pub(crate) async fn stopping(&mut self) {
        let _ = self.0.changed().await;
    }

    /// Drives `conn` to its end; once the signal comes (or its sender is
    /// gone), or `also` does (this connection alone is asked to close),
    /// calls `shutdown` on it once, after a poll of its own.
    pub(crate) async fn run<F: Future>(
        &mut self,
        mut conn: Pin<&mut F>,
        also: impl Future<Output = ()>,
        shutdown: impl FnOnce(Pin<&mut F>),
    ) -> F::Output {
        let mut shutdown = Some(shutdown);
        tokio::pin!(also);
        loop {
            tokio::select! {
                // The connection first: see the module docs.
                biased;
                out = conn.as_mut() => return out,
                _ = self.0.changed(), if shutdown.is_some() => {}
                () = also.as_mut(), if shutdown.is_some() => {}
            }
            if let Some(shutdown) = shutdown.take() {
                shutdown(conn.as_mut());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A connection that is ready on its second poll, or once asked to
    /// shut down; counts its polls.
    struct Conn {
        polls: Arc<AtomicUsize>,
        asked: bool,
    }

    impl Future for Conn {
        type Output = bool;
        fn poll(self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<bool> {
            let n = self.polls.fetch_add(1, Ordering::SeqCst) + 1;
            if self.asked || n >= 2 {
                std::task::Poll::Ready(self.asked)
            } else {
                cx.waker().wake_by_ref();
                std::task::Poll::Pending
            }
        }
    }

    #[tokio::test]
    async fn a_connection_is_polled_before_it_is_asked_to_shut_down() {
        let shutdown = Shutdown::new();
        let mut watcher = shutdown.watcher();
        // Signalled before the connection is first polled.
        let drained = tokio::spawn(shutdown.drain());
        tokio::task::yield_now().await;
        let polls = Arc::new(AtomicUsize::new(0));
        let conn = Conn {
            polls: polls.clone(),
            asked: false,
        };
        tokio::pin!(conn);
        let asked = watcher
            .run(conn, std::future::pending(), |c| {
                assert_eq!(polls.load(Ordering::SeqCst), 1, "polled once first");
                c.get_mut().asked = true;
            })
            .await;
        assert!(asked);
        // The watcher is gone (with its connection): the drain ends.
        drop(watcher);
        drained.await.unwrap();
    }

    #[tokio::test]
    async fn drain_waits_for_every_watcher() {
        let shutdown = Shutdown::new();
        let watcher = shutdown.watcher();
        let drained = tokio::spawn(shutdown.drain());
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        assert!(!drained.is_finished());
        drop(watcher);
        drained.await.unwrap();
    }
}
