//! Zero-copy file bodies on HTTP/1 connections: the bytes of a file go from
//! the page cache to the socket with `sendfile(2)`, never through a buffer
//! of ours.
//!
//! hyper owns the socket and wants every body byte as a [`Bytes`] frame, so
//! the two meet half-way through a per-connection [`Lane`]:
//!
//! 1. the body registers a span (file, offset, length) with the lane and
//!    hands hyper a *placeholder*: a [`Bytes`] of the same length pointing
//!    into one private static that nothing else points into;
//! 2. hyper queues it behind the response head (vectored-write mode, which
//!    the server forces; in that mode hyper never copies body bytes) and
//!    writes the queue through [`SendfileIo`];
//! 3. [`SendfileIo`] writes ordinary slices as they are, and turns a
//!    placeholder slice into `sendfile` from the span at the front of the
//!    lane, reporting the bytes sent as written;
//! 4. a response's last span carries what waits for the response's end
//!    (its access-log line, its in-progress mark), settled once the span
//!    has been sent, or when the connection is gone with what did go out.
//!
//! The placeholder's own bytes (zeros) are never written: a placeholder
//! slice that does not match the front span exactly (position and length)
//! is an error that closes the connection, as is a file that shrinks under
//! `sendfile` (a response shorter than its `Content-Length` is never sent
//! as if complete).
//!
//! [`SendfileIo`] is every connection's I/O, HTTP/2 and sendfile-less ones
//! included, and so also where the send timeout watches the writes (see
//! [`crate::server::send_timeout`]) and where the first write error is recorded in
//! the lane, for the access log of responses it cuts short.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use hyper_util::rt::TokioIo;
use tokio::io::Interest;
use tokio::net::TcpStream;

use crate::access_log::{AccessLog, Cut};
use crate::body::FilePlace;
use crate::fs::{Identity, check_version};
use crate::server::head_guard::{self, HeadGuard, Scan};
use crate::server::send_timeout::{Progress, SendTimer};
use crate::server::slots::Responding;

/// The most bytes one placeholder stands for. hyper stops asking the body
/// for more while one is queued, so this bounds nothing in memory; it only
/// sets how often the body is polled.
pub(crate) const MAX_SPAN: usize = 1 << 20;

/// What placeholders point into. Immutable, so it sits in the binary's
/// read-only data (1 MiB of zeros); never read, so it is never paged in
/// and costs no memory.
static PLACEHOLDER: [u8; MAX_SPAN] = [0; MAX_SPAN];

/// One connection's lane between its response bodies and its I/O: the
/// file spans handed to hyper as placeholders and not yet sent, in the
/// order hyper will write them, and why the connection stopped sending if
/// it stopped before the end. Every connection of the bundled server has
/// one; only HTTP/1 over TCP with `sendfile` on puts spans in it.
#[derive(Debug, Clone, Default)]
pub(crate) struct Lane(Arc<Shared>);

#[derive(Debug, Default)]
struct Shared {
    spans: Mutex<VecDeque<Span>>,
    /// Why the connection stopped sending, if it did: the first cause.
    cut: OnceLock<Cut>,
    /// Responses numbered so far, to tell whose spans are whose.
    responses: AtomicU64,
}

#[derive(Debug)]
struct Span {
    /// The response the span belongs to (see [`Lane::response`]).
    owner: u64,
    file: Arc<File>,
    /// The version of the file the response describes.
    identity: Identity,
    offset: u64,
    len: usize,
    sent: usize,
    /// On a response's last span: what waits for it to be sent.
    ending: Option<Ending>,
    /// Whether its last byte waits for a check of the file's version (the
    /// last span of a response of several spans).
    hold_last: bool,
}

/// What a response leaves on its last span, settled when that span has
/// been sent (or never will be): its access-log line, written then with
/// the bytes that really went out and the time the last of them took; and
/// its mark of being in progress (see `slots`).
#[derive(Debug)]
pub(crate) struct Ending {
    /// The line, if access logging is on.
    pub(crate) log: Option<AccessLog>,
    /// The response's body bytes, all spans together.
    pub(crate) bytes: u64,
    /// The in-progress mark, if the connection counts one.
    pub(crate) responding: Option<Responding>,
    /// The place the response's file holds (see `budget`).
    pub(crate) place: Option<FilePlace>,
}

impl Ending {
    /// Writes the line (`unsent` of the bytes never went out, cut short
    /// for `cut`), then lets the in-progress mark go.
    fn settle(self, unsent: u64, cut: Option<Cut>) {
        let Ending {
            log,
            bytes,
            responding,
            place,
        } = self;
        // The file is no longer read for this response.
        drop(place);
        if let Some(log) = log {
            log.finish(bytes - unsent.min(bytes), cut.map(|c| c.to_string()));
        }
        // The connection may now count as idle (see `slots`).
        drop(responding);
    }
}

impl Lane {
    /// A number for a new response whose spans will pass through the lane.
    pub(crate) fn response(&self) -> u64 {
        self.0.responses.fetch_add(1, Ordering::Relaxed)
    }

    /// Registers `len` bytes (at most [`MAX_SPAN`]) of `file` from `offset`
    /// for response `owner` and returns the placeholder to give hyper in
    /// their place.
    /// With `hold_last`, the span's last byte is sent only after one more
    /// check that the file is still `identity`.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn push(
        &self,
        owner: u64,
        file: &Arc<File>,
        identity: Identity,
        offset: u64,
        len: usize,
        hold_last: bool,
    ) -> Bytes {
        let len = len.min(MAX_SPAN);
        self.spans().push_back(Span {
            owner,
            file: Arc::clone(file),
            identity,
            offset,
            len,
            sent: 0,
            ending: None,
            hold_last,
        });
        Bytes::from_static(&PLACEHOLDER[..len])
    }

    /// Hands `ending` to the span pushed last, the response's last: it is
    /// settled once that span has been sent.
    pub(crate) fn ends_with(&self, ending: Ending) {
        let mut spans = self.spans();
        match spans.back_mut() {
            Some(span) => span.ending = Some(ending),
            None => {
                // Every span already sent (not the case when called right
                // after a push, but harmless): settle now.
                drop(spans);
                ending.settle(0, None);
            }
        }
    }

    /// Bytes of response `owner`'s spans not yet sent.
    pub(crate) fn unsent(&self, owner: u64) -> u64 {
        unsent(&self.spans(), owner)
    }

    /// Records why the connection stopped sending; the first cause counts.
    pub(crate) fn cut(&self, cut: Cut) {
        let _ = self.0.cut.set(cut);
    }

    /// Why the connection stopped sending, if it did.
    pub(crate) fn why_cut(&self) -> Option<Cut> {
        self.0.cut.get().copied()
    }

    fn spans(&self) -> std::sync::MutexGuard<'_, VecDeque<Span>> {
        // A panic elsewhere while holding the lock leaves the queue as
        // consistent as it was: every operation on it is a single step.
        self.0.spans.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Bytes of response `owner`'s spans in `spans` not yet sent.
fn unsent(spans: &VecDeque<Span>, owner: u64) -> u64 {
    spans
        .iter()
        .filter(|s| s.owner == owner)
        .map(|s| (s.len - s.sent) as u64)
        .sum()
}

impl Drop for Shared {
    /// The connection is gone: responses whose last span was never sent
    /// are settled with what did go out.
    fn drop(&mut self) {
        let spans = self.spans.get_mut().unwrap_or_else(PoisonError::into_inner);
        let why = self.cut.get().copied().unwrap_or(Cut::Unfinished);
        while let Some(at) = spans.iter().position(|s| s.ending.is_some()) {
            let Some(last) = spans.get_mut(at) else { break };
            let (owner, ending) = (last.owner, last.ending.take());
            if let Some(ending) = ending {
                ending.settle(unsent(spans, owner), Some(why));
            }
        }
    }
}

/// Where `slice` starts in the placeholder, if it lies in it.
fn placeholder_offset(slice: &[u8]) -> Option<usize> {
    let base = PLACEHOLDER.as_ptr() as usize;
    let start = slice.as_ptr() as usize;
    (start >= base && start - base < MAX_SPAN && !slice.is_empty()).then(|| start - base)
}

/// A TCP connection for hyper's HTTP/1 server that sends placeholder slices
/// with `sendfile` (see the module docs).
#[derive(Debug)]
pub(crate) struct SendfileIo {
    io: TokioIo<TcpStream>,
    /// Where bodies leave file spans (only with sendfile on, over
    /// HTTP/1), and where a write error is recorded.
    lane: Lane,
    /// Bytes the server read before handing the connection over (while
    /// telling HTTP/1 from HTTP/2); reads return them first.
    read_ahead: Bytes,
    stall: SendTimer,
    /// HTTP/1 only: the request heads' guard, and the bytes it has not yet
    /// let through (see [`crate::server::head_guard`]).
    guard: Option<Guarded>,
}

/// The read side of an HTTP/1 connection under a [`HeadGuard`].
#[derive(Debug)]
struct Guarded {
    guard: HeadGuard,
    /// Read, not yet let through (the start of a head still arriving).
    pending: BytesMut,
    /// Let through, not yet handed to hyper.
    released: Bytes,
}

/// The most bytes one read takes from the socket under a guard.
const GUARDED_READ: usize = 16 * 1024;

thread_local! {
    /// Where guarded reads land before the guard looks at them: one buffer
    /// per worker thread, none per connection.
    static SCRATCH: std::cell::RefCell<Box<[u8]>> =
        std::cell::RefCell::new(vec![0; GUARDED_READ].into_boxed_slice());
}

impl SendfileIo {
    /// Wraps an accepted connection; writes that wait longer than
    /// `send_timeout` for the client fail, and each write that sends
    /// something counts in `progress` when given (see
    /// [`crate::server::send_timeout`]).
    pub(crate) fn new(
        stream: TcpStream,
        lane: Lane,
        read_ahead: Bytes,
        send_timeout: Duration,
        progress: Option<Arc<Progress>>,
    ) -> Self {
        SendfileIo {
            io: TokioIo::new(stream),
            lane,
            read_ahead,
            stall: SendTimer::new(send_timeout, progress),
            guard: None,
        }
    }

    /// Hands hyper only what `guard` lets through (HTTP/1): the bytes read
    /// ahead are the first it looks at.
    pub(crate) fn guarded(mut self, guard: HeadGuard) -> Self {
        // The read-ahead buffer is this connection's alone: taken back
        // without a copy.
        let pending = std::mem::take(&mut self.read_ahead)
            .try_into_mut()
            .unwrap_or_else(|shared| BytesMut::from(&shared[..]));
        self.guard = Some(Guarded {
            guard,
            pending,
            released: Bytes::new(),
        });
        self
    }

    /// A read under the guard (see [`crate::server::head_guard`]): what it has let
    /// through, a stand-in for a head it refused (then the end of the
    /// stream), or, when it needs more of a head, a read from the socket.
    fn poll_read_guarded(
        &mut self,
        cx: &mut Context<'_>,
        mut buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        let Some(g) = self.guard.as_mut() else {
            return Poll::Ready(Ok(()));
        };
        loop {
            if !g.released.is_empty() {
                let n = g.released.len().min(buf.remaining());
                buf.put_slice(&g.released[..n]);
                g.released.advance(n);
                return Poll::Ready(Ok(()));
            }
            if g.guard.refused() {
                // Nothing more: the stand-in's answer closes the
                // connection. (An end of stream here would make hyper
                // close it before answering.)
                return Poll::Pending;
            }
            match g.guard.scan(&g.pending) {
                Scan::Pass(n) => {
                    g.released = g.pending.split_to(n).freeze();
                    continue;
                }
                Scan::Refuse(_) => {
                    g.pending = BytesMut::new();
                    g.released = Bytes::from_static(head_guard::STAND_IN);
                    continue;
                }
                Scan::NeedMore => {}
            }
            let room = buf.remaining().min(GUARDED_READ);
            // How many bytes were read, and whether some went to hyper.
            // tokio's own read: a read that does not fill the buffer tells
            // it the socket is drained, which spares a `recvfrom` that would
            // only say so (a tenth of a small request's cost).
            let read: Poll<io::Result<(usize, bool)>> = SCRATCH.with(|scratch| {
                let mut scratch = scratch.borrow_mut();
                let mut into = tokio::io::ReadBuf::new(&mut scratch[..room]);
                let tcp = Pin::new(self.io.inner_mut());
                ready!(tokio::io::AsyncRead::poll_read(tcp, cx, &mut into))?;
                let n = into.filled().len();
                let read = &scratch[..n];
                if n == 0 || !g.pending.is_empty() {
                    g.pending.extend_from_slice(read);
                    return Poll::Ready(Ok((n, false)));
                }
                // The usual case: a whole head (or body bytes) in one read,
                // straight to hyper.
                Poll::Ready(Ok(match g.guard.scan(read) {
                    Scan::Pass(k) => {
                        buf.put_slice(&read[..k]);
                        g.pending.extend_from_slice(&read[k..]);
                        (n, true)
                    }
                    Scan::Refuse(_) => {
                        g.released = Bytes::from_static(head_guard::STAND_IN);
                        (n, false)
                    }
                    Scan::NeedMore => {
                        g.pending.extend_from_slice(read);
                        (n, false)
                    }
                }))
            });
            match ready!(read) {
                Ok((0, _)) => {
                    // End of stream: what is left goes to hyper as it is
                    // (an unfinished head, which hyper drops).
                    g.released = g.pending.split().freeze();
                    if g.released.is_empty() {
                        return Poll::Ready(Ok(()));
                    }
                }
                Ok((_, true)) => return Poll::Ready(Ok(())),
                Ok((_, false)) => {}
                Err(e) => {
                    self.lane.cut(Cut::of(&e));
                    return Poll::Ready(Err(e));
                }
            }
        }
    }

    /// Sends the placeholder slice `slice` (at `at` in the placeholder) from
    /// the span at the front of the lane.
    fn poll_send_span(
        &mut self,
        cx: &mut Context<'_>,
        at: usize,
        slice_len: usize,
    ) -> Poll<io::Result<usize>> {
        let tcp = self.io.inner();
        loop {
            ready!(tcp.poll_write_ready(cx))?;
            let mut spans = self.lane.spans();
            let Some(span) = spans.front_mut() else {
                return Poll::Ready(Err(io::Error::other("placeholder without a file span")));
            };
            if at != span.sent || slice_len != span.len - span.sent {
                return Poll::Ready(Err(io::Error::other(
                    "placeholder out of step with its file span",
                )));
            }
            // The version is checked as each span begins, and the last
            // byte of a response of several spans waits for one more check:
            // a file written to while it was sent never goes out whole. (A
            // response of one span goes out in one `sendfile` right after
            // its check; holding its last byte back would cost every small
            // file an extra call and packet, a tenth of its rate.)
            let last = span.hold_last;
            let count = match slice_len {
                1 if last => {
                    if let Err(e) = check_version(&span.file, &span.identity) {
                        return Poll::Ready(Err(e));
                    }
                    1
                }
                n if last => n - 1,
                n => n,
            };
            if span.sent == 0 {
                if let Err(e) = check_version(&span.file, &span.identity) {
                    return Poll::Ready(Err(e));
                }
            }
            let mut offset = span.offset + span.sent as u64;
            let sent = tcp.try_io(Interest::WRITABLE, || {
                rustix::fs::sendfile(tcp, &*span.file, Some(&mut offset), count)
                    .map_err(io::Error::from)
            });
            match sent {
                Ok(0) => {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "file shrank while being sent",
                    )));
                }
                Ok(n) => {
                    span.sent += n;
                    if span.sent == span.len {
                        let done = spans.pop_front();
                        // Settled outside the lock: it may write a log line.
                        drop(spans);
                        if let Some(ending) = done.and_then(|span| span.ending) {
                            ending.settle(0, None);
                        }
                    }
                    return Poll::Ready(Ok(n));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }

    /// Writes `bufs` with `MSG_MORE`.
    fn poll_send_more(
        &mut self,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        use rustix::net::{SendAncillaryBuffer, SendFlags, sendmsg};
        let tcp = self.io.inner();
        loop {
            ready!(tcp.poll_write_ready(cx))?;
            let sent = tcp.try_io(Interest::WRITABLE, || {
                sendmsg(
                    tcp,
                    bufs,
                    &mut SendAncillaryBuffer::default(),
                    SendFlags::MORE | SendFlags::NOSIGNAL,
                )
                .map_err(io::Error::from)
            });
            match sent {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                other => return Poll::Ready(other),
            }
        }
    }
}

impl hyper::rt::Read for SendfileIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        if self.guard.is_some() {
            return self.poll_read_guarded(cx, buf);
        }
        if self.read_ahead.is_empty() {
            let read = Pin::new(&mut self.io).poll_read(cx, buf);
            // A client that resets the connection while a response is
            // being sent is often seen here first, not by a write (hyper
            // then ends the connection). (A clean end of stream looks like
            // any other read from here, and is left unnamed.)
            if let Poll::Ready(Err(e)) = &read {
                self.lane.cut(Cut::of(e));
            }
            return read;
        }
        let mut buf = buf;
        let n = self.read_ahead.len().min(buf.remaining());
        buf.put_slice(&self.read_ahead[..n]);
        if n == self.read_ahead.len() {
            // Release the buffer rather than keep it for the connection's life.
            self.read_ahead = Bytes::new();
        } else {
            self.read_ahead.advance(n);
        }
        Poll::Ready(Ok(()))
    }
}

impl hyper::rt::Write for SendfileIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let write = match placeholder_offset(buf) {
            Some(at) => self.poll_send_span(cx, at, buf.len()),
            None => Pin::new(&mut self.io).poll_write(cx, buf),
        };
        self.watch(cx, write)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let write = self.as_mut().write_vectored(cx, bufs);
        self.watch(cx, write)
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

impl SendfileIo {
    /// Passes a write's outcome through the send timeout, and records in
    /// the lane why the connection stops sending if it fails.
    fn watch(
        &mut self,
        cx: &mut Context<'_>,
        write: Poll<io::Result<usize>>,
    ) -> Poll<io::Result<usize>> {
        let write = self.stall.watch(cx, write);
        if let Poll::Ready(Err(e)) = &write {
            self.lane.cut(Cut::of(e));
        }
        write
    }

    /// One vectored write: ordinary slices as they are, a placeholder at
    /// the front as `sendfile`.
    fn write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let bufs = match bufs.iter().position(|b| !b.is_empty()) {
            Some(first) => &bufs[first..],
            None => return Poll::Ready(Ok(0)),
        };
        if let Some(at) = placeholder_offset(&bufs[0]) {
            return self.poll_send_span(cx, at, bufs[0].len());
        }
        // Ordinary bytes up to the next placeholder go out in one writev.
        match bufs.iter().position(|b| placeholder_offset(b).is_some()) {
            // A response head followed by file bytes: tell the kernel more
            // is coming, so that the head shares a segment with the body
            // instead of travelling (and waking the client) alone; nginx's
            // `tcp_nopush` does the same with TCP_CORK.
            Some(plain) => self.poll_send_more(cx, &bufs[..plain]),
            None => hyper::rt::Write::poll_write_vectored(Pin::new(&mut self.io), cx, bufs),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::access_log::capture;

    fn version(file: &File) -> Identity {
        crate::fs::identity_of(file)
            .expect("statx")
            .expect("a regular file")
    }
    use std::io::Write as _;

    #[test]
    fn placeholders_are_recognized_by_address_only() {
        let lane = Lane::default();
        let file = Arc::new(tempfile::tempfile().expect("temp file"));
        let p = lane.push(0, &file, version(&file), 0, 10, false);
        assert_eq!(placeholder_offset(&p), Some(0));
        assert_eq!(placeholder_offset(&p[3..]), Some(3));
        // The same bytes elsewhere are ordinary bytes.
        let zeros = vec![0u8; 10];
        assert_eq!(placeholder_offset(&zeros), None);
        assert_eq!(placeholder_offset(&[]), None);
    }

    #[test]
    fn spans_are_capped_at_the_placeholder_size() {
        let lane = Lane::default();
        let file = Arc::new(tempfile::tempfile().expect("temp file"));
        let p = lane.push(0, &file, version(&file), 0, MAX_SPAN * 3, false);
        assert_eq!(p.len(), MAX_SPAN);
        assert_eq!(lane.spans().front().map(|s| s.len), Some(MAX_SPAN));
    }

    /// A connected pair: our end wrapped in `SendfileIo`, the peer's end.
    async fn pair(lane: Lane) -> (SendfileIo, TcpStream) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let client = TcpStream::connect(addr).await.expect("connect");
        let (server, _) = listener.accept().await.expect("accept");
        (
            SendfileIo::new(server, lane, Bytes::new(), Duration::from_secs(60), None),
            client,
        )
    }

    #[tokio::test]
    async fn a_write_the_peer_never_accepts_times_out() {
        let lane = Lane::default();
        let (io, _peer) = pair(lane.clone()).await;
        let mut io = SendfileIo {
            stall: SendTimer::new(Duration::from_millis(200), None),
            ..io
        };
        // A sparse file far larger than the socket buffers; the peer reads
        // nothing.
        let file = tempfile::tempfile().expect("temp file");
        file.set_len(64 << 20).expect("set_len");
        let file = Arc::new(file);
        let spans: Vec<Bytes> = (0..64u64)
            .map(|i| lane.push(0, &file, version(&file), i << 20, 1 << 20, false))
            .collect();
        let started = std::time::Instant::now();
        let err = refused(&mut io, &spans).await;
        assert_eq!(err.kind(), io::ErrorKind::TimedOut, "{err}");
        assert!(started.elapsed() >= Duration::from_millis(200));
        assert_eq!(lane.why_cut(), Some(Cut::SendTimeout));
    }

    /// One read of at most `max` bytes through hyper's interface.
    async fn read_some(io: &mut SendfileIo, max: usize) -> Vec<u8> {
        let mut storage = vec![0u8; max];
        let mut buf = hyper::rt::ReadBuf::new(&mut storage);
        std::future::poll_fn(|cx| {
            hyper::rt::Read::poll_read(Pin::new(&mut *io), cx, buf.unfilled())
        })
        .await
        .expect("read");
        buf.filled().to_vec()
    }

    #[tokio::test]
    async fn bytes_read_ahead_come_first_then_the_socket() {
        use tokio::io::AsyncWriteExt as _;
        let (io, mut client) = pair(Lane::default()).await;
        let mut io = SendfileIo {
            read_ahead: Bytes::from_static(b"GET / HTTP/1.1\r\n"),
            ..io
        };
        assert_eq!(read_some(&mut io, 5).await, b"GET /");
        assert_eq!(read_some(&mut io, 100).await, b" HTTP/1.1\r\n");
        client.write_all(b"Host: x\r\n").await.expect("write");
        assert_eq!(read_some(&mut io, 100).await, b"Host: x\r\n");
        drop(client);
        assert_eq!(read_some(&mut io, 100).await, b"", "then end of stream");
    }

    fn file_with(data: &[u8]) -> Arc<File> {
        let mut f = tempfile::tempfile().expect("temp file");
        f.write_all(data).expect("write");
        Arc::new(f)
    }

    async fn write_all_vectored(io: &mut SendfileIo, parts: &[Bytes]) -> io::Result<()> {
        use bytes::Buf as _;
        let mut parts: Vec<Bytes> = parts.to_vec();
        while parts.iter().any(|p| !p.is_empty()) {
            let n = std::future::poll_fn(|cx| {
                let slices: Vec<IoSlice<'_>> = parts.iter().map(|p| IoSlice::new(p)).collect();
                hyper::rt::Write::poll_write_vectored(Pin::new(&mut *io), cx, &slices)
            })
            .await?;
            if n == 0 {
                return Err(io::ErrorKind::WriteZero.into());
            }
            let mut left = n;
            for p in parts.iter_mut() {
                let take = left.min(p.len());
                p.advance(take);
                left -= take;
            }
        }
        Ok(())
    }

    /// Writes `parts`, which must be refused; the error.
    async fn refused(io: &mut SendfileIo, parts: &[Bytes]) -> io::Error {
        write_all_vectored(io, parts).await.expect_err("refused")
    }

    #[tokio::test]
    async fn placeholders_become_file_bytes_between_ordinary_ones() {
        use tokio::io::AsyncReadExt as _;
        let lane = Lane::default();
        let (mut io, mut peer) = pair(lane.clone()).await;
        let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        let file = file_with(&data);
        let parts = [
            Bytes::from_static(b"head\r\n"),
            lane.push(0, &file, version(&file), 1000, 200_000, false),
            Bytes::from_static(b"-middle-"),
            lane.push(0, &file, version(&file), 5, 7, false),
        ];
        let reader = tokio::spawn(async move {
            let mut got = Vec::new();
            peer.read_to_end(&mut got).await.map(|_| got)
        });
        write_all_vectored(&mut io, &parts).await.expect("written");
        drop(io);
        let got = reader.await.expect("joined").expect("read");
        let mut want = b"head\r\n".to_vec();
        want.extend_from_slice(&data[1000..201_000]);
        want.extend_from_slice(b"-middle-");
        want.extend_from_slice(&data[5..12]);
        assert_eq!(got.len(), want.len());
        assert!(got == want, "bytes differ");
        assert!(lane.spans().is_empty(), "every span consumed");
    }

    #[tokio::test]
    async fn a_held_last_byte_waits_for_the_version_check() {
        use std::os::unix::fs::FileExt as _;
        let lane = Lane::default();
        let (mut io, _peer) = pair(lane.clone()).await;
        let file = file_with(&[5u8; 1000]);
        let v = version(&file);
        let p = lane.push(0, &file, v, 0, 1000, true);
        async fn write(io: &mut SendfileIo, p: Bytes) -> io::Result<usize> {
            std::future::poll_fn(|cx| {
                hyper::rt::Write::poll_write_vectored(Pin::new(&mut *io), cx, &[IoSlice::new(&p)])
            })
            .await
        }
        // All but the last byte goes out at once.
        assert_eq!(write(&mut io, p.clone()).await.expect("sent"), 999);
        // Written to meanwhile (in another tick of the file clock): the last
        // byte is refused, so the response never ends whole.
        std::thread::sleep(Duration::from_millis(20));
        file.write_all_at(&[6u8; 1000], 0).expect("rewrite");
        let err = write(&mut io, p.slice(999..)).await.expect_err("refused");
        assert_eq!(err.to_string(), "file changed while being sent");
        assert_eq!(lane.why_cut(), Some(Cut::FileChanged));
    }

    #[tokio::test]
    async fn a_placeholder_without_a_span_is_an_error_not_zeros() {
        let lane = Lane::default();
        let (mut io, _peer) = pair(Lane::default()).await;
        let file = file_with(b"abcdef");
        // Registered with another lane: ours has no span for it.
        let p = lane.push(0, &file, version(&file), 0, 6, false);
        let err = refused(&mut io, &[p]).await;
        assert!(err.to_string().contains("without a file span"), "{err}");
    }

    #[tokio::test]
    async fn a_placeholder_out_of_step_is_an_error() {
        let lane = Lane::default();
        let (mut io, _peer) = pair(lane.clone()).await;
        let file = file_with(b"abcdefgh");
        let p = lane.push(0, &file, version(&file), 0, 8, false);
        // Skipping the first bytes of the span does not match it.
        let err = refused(&mut io, &[p.slice(2..)]).await;
        assert!(err.to_string().contains("out of step"), "{err}");
    }

    #[tokio::test]
    async fn a_file_shorter_than_its_span_is_an_error() {
        let lane = Lane::default();
        let (mut io, _peer) = pair(lane.clone()).await;
        let file = file_with(b"abc");
        let p = lane.push(0, &file, version(&file), 0, 10, false);
        let err = refused(&mut io, &[p]).await;
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
        assert_eq!(lane.why_cut(), Some(Cut::FileShrank));
    }

    /// An access-log line for a response of `bytes` body bytes, to be
    /// finished by the code under test (logging must be on: see
    /// `capture::lines`).
    fn pending_line(bytes: u64) -> Ending {
        let begun = AccessLog::begin(None);
        assert!(begun.is_some(), "access logging is captured");
        let log = AccessLog::start(&http::Method::GET, "/f", Some("7"), 200, None, begun);
        Ending {
            log: Some(log),
            bytes,
            responding: None,
            place: None,
        }
    }

    #[tokio::test]
    async fn a_response_is_logged_once_its_last_span_has_been_sent() {
        use tokio::io::AsyncReadExt as _;
        let (lines, _guard) = crate::access_log::capture::lines();
        let lane = Lane::default();
        let (mut io, mut peer) = pair(lane.clone()).await;
        let data = vec![7u8; 300_000];
        let file = file_with(&data);
        let owner = lane.response();
        let first = lane.push(owner, &file, version(&file), 0, 200_000, false);
        let last = lane.push(owner, &file, version(&file), 200_000, 100_000, false);
        lane.ends_with(pending_line(300_000));
        // Handed over, not yet sent: no line.
        assert!(capture::taken(&lines).is_empty());
        let reader = tokio::spawn(async move {
            let mut got = Vec::new();
            peer.read_to_end(&mut got).await.map(|_| got.len())
        });
        write_all_vectored(&mut io, &[first])
            .await
            .expect("written");
        assert!(
            capture::taken(&lines).is_empty(),
            "the last span is not sent yet"
        );
        write_all_vectored(&mut io, &[last]).await.expect("written");
        let logged = capture::taken(&lines);
        assert_eq!(logged.len(), 1, "{logged:?}");
        assert_eq!(logged[0]["bytes"], "300000");
        assert_eq!(logged[0]["error"], "-");
        drop((io, lane));
        assert_eq!(reader.await.expect("joined").expect("read"), 300_000);
        assert!(capture::taken(&lines).is_empty(), "logged once");
    }

    #[tokio::test]
    async fn a_connection_gone_before_the_last_span_logs_what_went_out_and_why() {
        let (lines, _guard) = crate::access_log::capture::lines();
        for (cut, error) in [
            (None, "stopped before the end"),
            (Some(Cut::ClientGone), "client went away"),
            (Some(Cut::SendTimeout), "send timeout"),
        ] {
            let lane = Lane::default();
            let (mut io, peer) = pair(lane.clone()).await;
            let file = file_with(&[1u8; 5000]);
            // An earlier response, sent whole, and this one: 3000 bytes in
            // two spans, of which only the first goes out.
            let earlier = lane.response();
            let done = lane.push(earlier, &file, version(&file), 0, 10, false);
            let owner = lane.response();
            let first = lane.push(owner, &file, version(&file), 0, 1000, false);
            let _last = lane.push(owner, &file, version(&file), 1000, 2000, false);
            lane.ends_with(pending_line(3000));
            write_all_vectored(&mut io, &[done, first])
                .await
                .expect("written");
            assert_eq!(lane.unsent(owner), 2000);
            assert_eq!(lane.unsent(earlier), 0);
            if let Some(cut) = cut {
                lane.cut(cut);
            }
            drop((io, peer, lane));
            let logged = capture::taken(&lines);
            assert_eq!(logged.len(), 1, "{logged:?}");
            assert_eq!(logged[0]["bytes"], "1000", "{error}");
            assert_eq!(logged[0]["error"], error);
        }
    }

    #[test]
    fn the_first_cause_of_a_cut_counts() {
        let lane = Lane::default();
        assert_eq!(lane.why_cut(), None);
        lane.cut(Cut::FileShrank);
        lane.cut(Cut::ClientGone);
        assert_eq!(lane.why_cut(), Some(Cut::FileShrank));
    }
}
