//! Counted places for files open for responses: one bound per worker's
//! file cache, all connections and HTTP/2 streams together (a connection
//! has at most `server::HTTP2_MAX_STREAMS` streams). A response holds its
//! place from the moment its file is chosen until its last byte is sent,
//! so clients that open many streams and read none cannot take every
//! descriptor the process has.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// A number of places, shared by whoever takes them.
#[derive(Debug, Clone)]
pub(crate) struct Budget {
    limit: usize,
    used: Arc<AtomicUsize>,
}

impl Budget {
    /// `limit` places.
    pub(crate) fn new(limit: usize) -> Self {
        Budget {
            limit,
            used: Arc::default(),
        }
    }

    /// A place, if one is free; given back when dropped.
    pub(crate) fn try_take(&self) -> Option<Held> {
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                (used < self.limit).then_some(used + 1)
            })
            .ok()?;
        Some(Held(Arc::clone(&self.used)))
    }

    /// Places taken now.
    #[cfg(test)]
    pub(crate) fn used(&self) -> usize {
        self.used.load(Ordering::Acquire)
    }
}

/// One place of a [`Budget`], given back when dropped.
#[derive(Debug)]
pub(crate) struct Held(Arc<AtomicUsize>);

impl Drop for Held {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn places_are_taken_up_to_the_limit_and_given_back() {
        let b = Budget::new(2);
        let (x, y) = (b.try_take(), b.try_take());
        assert!(x.is_some() && y.is_some());
        assert!(b.try_take().is_none());
        assert_eq!(b.used(), 2);
        drop(x);
        assert!(b.try_take().is_some());
        assert_eq!(b.used(), 1, "the one taken and dropped at once is back");
        let none = Budget::new(0);
        assert!(none.try_take().is_none());
    }
}
