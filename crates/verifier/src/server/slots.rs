//! Connection slots: the cap on connections served at once, and what
//! happens at the cap.
//!
//! A connection holds a slot from its accept to its end. At the cap, a new
//! connection does not wait for a slot while others sit idle: the one idle
//! longest is asked to close (nginx does the same with its "reusable"
//! connections), and the newcomer takes its slot. Idle means no response
//! in progress: waiting for a first request head, whole or in part, or
//! kept alive between requests. So clients that open connections and send
//! nothing, or trickle a head byte by byte (slowloris), cannot keep others
//! out for the header timeout, and a crowd of idle keep-alive connections
//! gives way to new clients. A response in progress is never cut short:
//! when every connection is busy, the newcomer waits, as before.
//!
//! Each connection's state is a few atomics that its requests update
//! without a lock; the registry of connections is locked on accept, on
//! close, and to find the longest idle when the cap is reached.

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::Poll;

use atomic_waker::AtomicWaker;
use slab::Slab;

use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};

/// The slots of one listener's connections.
#[derive(Debug)]
pub(crate) struct Slots {
    permits: Arc<Semaphore>,
    /// Every connection holding a slot, by id.
    conns: Mutex<Slab<Arc<ConnState>>>,
    idle: Arc<Idling>,
}

/// What connections going idle tell the slots, shared with each of them.
#[derive(Debug, Default)]
struct Idling {
    /// Ticks once per connection that goes idle: a larger value means idle
    /// since later.
    clock: AtomicU64,
    /// Newcomers waiting for a slot, and their wake-up when a connection
    /// goes idle (that one may then be asked to close).
    waiting: AtomicUsize,
    went_idle: Notify,
}

/// What the registry knows of one connection. Its fields are hints read
/// without a lock: at worst a connection that has just begun a response
/// is asked to close, and it then answers before it closes.
#[derive(Debug)]
struct ConnState {
    /// Responses in progress (more than one on HTTP/2).
    active: AtomicU32,
    /// When it last went idle, on [`Idling::clock`]; [`BUSY`] while a
    /// request head has arrived and its response has not yet begun.
    idle_since: AtomicU64,
    /// Set to ask the connection to close; its task is then woken.
    evicted: AtomicBool,
    waker: AtomicWaker,
    idle: Arc<Idling>,
}

/// `idle_since` while a connection has a request to answer.
const BUSY: u64 = u64::MAX;

impl Slots {
    /// Slots for `max` connections at once (at least one).
    pub(crate) fn new(max: usize) -> Arc<Self> {
        Arc::new(Slots {
            permits: Arc::new(Semaphore::new(max.max(1))),
            conns: Mutex::new(Slab::new()),
            idle: Arc::default(),
        })
    }

    /// A slot, at once when one is free; otherwise the connection idle
    /// longest is asked to close and this waits for its slot. With none
    /// idle, it waits for a slot to come free, or for a connection to go
    /// idle and be asked in turn.
    pub(crate) async fn take(self: &Arc<Self>) -> Slot {
        if let Some(slot) = self.try_take() {
            return slot;
        }
        // SeqCst here and in `Responding::drop`: either this newcomer's
        // scan sees the connection that goes idle meanwhile, or that
        // connection sees a newcomer waiting and wakes it.
        self.idle.waiting.fetch_add(1, Ordering::SeqCst);
        let _waited = Waited(&self.idle);
        loop {
            // Listening before looking, so that no connection goes idle
            // unseen in between.
            let went_idle = self.idle.went_idle.notified();
            tokio::pin!(went_idle);
            went_idle.as_mut().enable();
            let asked = self.evict_longest_idle();
            tokio::select! {
                permit = self.permits.clone().acquire_owned() => match permit {
                    Ok(permit) => return self.register(permit),
                    // The semaphore is never closed.
                    Err(_) => std::future::pending::<()>().await,
                },
                // The one asked is closing: its slot is on the way.
                () = went_idle, if !asked => {}
            }
        }
    }

    /// A slot if one is free now, without asking anyone to close.
    pub(crate) fn try_take(self: &Arc<Self>) -> Option<Slot> {
        let permit = self.permits.clone().try_acquire_owned().ok()?;
        Some(self.register(permit))
    }

    fn register(self: &Arc<Self>, permit: OwnedSemaphorePermit) -> Slot {
        let state = Arc::new(ConnState {
            active: AtomicU32::new(0),
            idle_since: AtomicU64::new(self.idle.clock.fetch_add(1, Ordering::Relaxed)),
            evicted: AtomicBool::new(false),
            waker: AtomicWaker::new(),
            idle: self.idle.clone(),
        });
        let id = self.lock().insert(state.clone());
        Slot {
            slots: self.clone(),
            id,
            state,
            _permit: permit,
        }
    }

    /// Asks the connection idle longest, if any, to close; whether there
    /// was one.
    fn evict_longest_idle(&self) -> bool {
        let conns = self.lock();
        let idle = conns
            .iter()
            .map(|(_, c)| c)
            .filter(|c| c.active.load(Ordering::Relaxed) == 0)
            .map(|c| (c.idle_since.load(Ordering::SeqCst), c))
            .filter(|&(since, _)| since != BUSY)
            .min_by_key(|&(since, _)| since);
        match idle {
            Some((_, conn)) => {
                // Marked so that the next eviction picks another.
                conn.idle_since.store(BUSY, Ordering::Relaxed);
                conn.evicted.store(true, Ordering::Release);
                conn.waker.wake();
                crate::metrics::evicted();
                true
            }
            None => false,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Slab<Arc<ConnState>>> {
        // A panic elsewhere while holding the lock leaves a valid map.
        self.conns.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// One connection's slot, given back when dropped.
#[derive(Debug)]
pub(crate) struct Slot {
    slots: Arc<Slots>,
    id: usize,
    state: Arc<ConnState>,
    _permit: OwnedSemaphorePermit,
}

impl Slot {
    /// A whole request head has arrived: not idle until its response (or
    /// the next one's) has been sent, and no longer to be asked to close.
    pub(crate) fn head_arrived(&self) {
        self.state.idle_since.store(BUSY, Ordering::Relaxed);
    }

    /// What a connection's service holds to mark its responses (the slot
    /// itself stays with the connection).
    pub(crate) fn responder(&self) -> Responder {
        Responder(self.state.clone())
    }

    /// Whether no response is in progress.
    pub(crate) fn no_response_in_progress(&self) -> bool {
        self.state.active.load(Ordering::Relaxed) == 0
    }

    /// Resolves when the connection is asked to close. Polled with the
    /// connection on every wake-up, so it costs one atomic load: the task's
    /// waker is registered on the first poll only (a connection's task
    /// keeps its waker; the connection future is not moved to another).
    pub(crate) fn evicted(&self) -> impl Future<Output = ()> + '_ {
        let mut registered = false;
        std::future::poll_fn(move |cx| {
            let asked = || self.state.evicted.load(Ordering::Acquire);
            if asked() {
                return Poll::Ready(());
            }
            if !std::mem::replace(&mut registered, true) {
                self.state.waker.register(cx.waker());
                // Asked between the look and the registration: not missed.
                if asked() {
                    return Poll::Ready(());
                }
            }
            Poll::Pending
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.slots.lock().try_remove(self.id);
    }
}

/// Marks the responses of one connection (see [`Slot::responder`]).
#[derive(Debug, Clone)]
pub(crate) struct Responder(Arc<ConnState>);

impl Responder {
    /// A response begins; the connection is idle again once every
    /// [`Responding`] has been dropped.
    pub(crate) fn responding(&self) -> Responding {
        self.0.active.fetch_add(1, Ordering::Relaxed);
        Responding(self.0.clone())
    }
}

/// A response in progress, held by its body until the connection is done
/// with it.
#[derive(Debug)]
pub(crate) struct Responding(Arc<ConnState>);

impl Drop for Responding {
    fn drop(&mut self) {
        let conn = &self.0;
        if conn.active.fetch_sub(1, Ordering::Relaxed) == 1 {
            let idle = &conn.idle;
            conn.idle_since
                .store(idle.clock.fetch_add(1, Ordering::Relaxed), Ordering::SeqCst);
            if idle.waiting.load(Ordering::SeqCst) > 0 {
                idle.went_idle.notify_waiters();
            }
        }
    }
}

/// Counts a newcomer out of [`Idling::waiting`] however its wait ends.
struct Waited<'a>(&'a Idling);

impl Drop for Waited<'_> {
    fn drop(&mut self) {
        self.0.waiting.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// Whether `slot` has been asked to close.
    async fn asked(slot: &Slot) -> bool {
        tokio::time::timeout(Duration::from_millis(20), slot.evicted())
            .await
            .is_ok()
    }

    #[tokio::test]
    async fn at_the_cap_the_longest_idle_gives_way() {
        let slots = Slots::new(3);
        let (a, b, c) = (slots.take().await, slots.take().await, slots.take().await);
        // `a` answers a request, then idles again; `b` waits for its
        // first head; `c` is answering.
        drop(a.responder().responding());
        let _busy = c.responder().responding();
        let waiting = tokio::spawn({
            let slots = slots.clone();
            async move { slots.take().await }
        });
        // `b` has been idle longest (since its accept).
        assert!(asked(&b).await);
        assert!(!asked(&a).await && !asked(&c).await);
        assert!(!waiting.is_finished());
        drop(b);
        let d = waiting.await.unwrap();
        // Next at the cap: `a`, not `c`, whose response is in progress.
        let waiting = tokio::spawn({
            let slots = slots.clone();
            async move { slots.take().await }
        });
        assert!(asked(&a).await);
        assert!(!asked(&c).await);
        drop(a);
        let _e = waiting.await.unwrap();
        drop(d);
    }

    #[tokio::test]
    async fn busy_connections_are_never_asked() {
        let slots = Slots::new(2);
        let (a, b) = (slots.take().await, slots.take().await);
        a.head_arrived();
        let _responding = b.responder().responding();
        let waiting = tokio::spawn({
            let slots = slots.clone();
            async move { slots.take().await }
        });
        assert!(!asked(&a).await && !asked(&b).await);
        assert!(slots.try_take().is_none());
        // `b`'s response ends: it is idle now, and asked to close.
        drop(_responding);
        assert!(asked(&b).await);
        assert!(!waiting.is_finished());
        drop(b);
        waiting.await.unwrap();
    }

    #[tokio::test]
    async fn a_closed_connection_leaves_the_registry() {
        let slots = Slots::new(4);
        let held: Vec<Slot> = vec![slots.take().await, slots.take().await];
        assert_eq!(slots.lock().len(), 2);
        drop(held);
        assert!(slots.lock().is_empty());
        assert!(slots.try_take().is_some());
    }
}
