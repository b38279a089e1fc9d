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
//!    lane, reporting the bytes sent as written.
//!
//! The placeholder's own bytes (zeros) are never written: a placeholder
//! slice that does not match the front span exactly (position and length)
//! is an error that closes the connection, as is a file that shrinks under
//! `sendfile` (a response shorter than its `Content-Length` is never sent
//! as if complete).
//!
//! [`SendfileIo`] is every connection's I/O, HTTP/2 and sendfile-less ones
//! included, and so also where the send timeout watches the writes (see
//! [`crate::send_timeout`]).

use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::{Buf, Bytes};
use hyper_util::rt::TokioIo;
use tokio::io::Interest;
use tokio::net::TcpStream;

use crate::send_timeout::{Progress, SendTimer};
use crate::slots::Responding;

/// The most bytes one placeholder stands for. hyper stops asking the body
/// for more while one is queued, so this bounds nothing in memory; it only
/// sets how often the body is polled.
pub(crate) const MAX_SPAN: usize = 1 << 20;

/// What placeholders point into. Immutable, so it sits in the binary's
/// read-only data (1 MiB of zeros); never read, so it is never paged in
/// and costs no memory.
static PLACEHOLDER: [u8; MAX_SPAN] = [0; MAX_SPAN];

/// File spans handed to hyper as placeholders and not yet sent, in the
/// order hyper will write them. One per connection, shared by its bodies
/// and its [`SendfileIo`].
#[derive(Debug, Clone, Default)]
pub(crate) struct Lane(Arc<Mutex<VecDeque<Span>>>);

#[derive(Debug)]
struct Span {
    file: Arc<File>,
    offset: u64,
    len: usize,
    sent: usize,
    /// On a response's last span: its mark of being in progress, dropped
    /// once the span is sent (see `slots`).
    last_of: Option<Responding>,
}

impl Lane {
    /// Registers `len` bytes (at most [`MAX_SPAN`]) of `file` from `offset`
    /// and returns the placeholder to give hyper in their place.
    pub(crate) fn push(&self, file: &Arc<File>, offset: u64, len: usize) -> Bytes {
        let len = len.min(MAX_SPAN);
        self.spans().push_back(Span {
            file: Arc::clone(file),
            offset,
            len,
            sent: 0,
            last_of: None,
        });
        Bytes::from_static(&PLACEHOLDER[..len])
    }

    /// Hands `responding` to the span pushed last, the response's last: the
    /// response counts as in progress until that span has been sent.
    pub(crate) fn ends_with(&self, responding: Responding) {
        if let Some(span) = self.spans().back_mut() {
            span.last_of = Some(responding);
        }
    }

    fn spans(&self) -> std::sync::MutexGuard<'_, VecDeque<Span>> {
        // A panic elsewhere while holding the lock leaves the queue as
        // consistent as it was: every operation on it is a single step.
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
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
    /// `None` when sendfile is off (and on HTTP/2): no body hands out
    /// placeholders then, and this is a plain TCP stream.
    lane: Option<Lane>,
    /// Bytes the server read before handing the connection over (while
    /// telling HTTP/1 from HTTP/2); reads return them first.
    read_ahead: Bytes,
    stall: SendTimer,
}

impl SendfileIo {
    /// Wraps an accepted connection; writes that wait longer than
    /// `send_timeout` for the client fail, and each write that sends
    /// something counts in `progress` when given (see
    /// [`crate::send_timeout`]).
    pub(crate) fn new(
        stream: TcpStream,
        lane: Option<Lane>,
        read_ahead: Bytes,
        send_timeout: Duration,
        progress: Option<Arc<Progress>>,
    ) -> Self {
        SendfileIo {
            io: TokioIo::new(stream),
            lane,
            read_ahead,
            stall: SendTimer::new(send_timeout, progress),
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
            let mut spans = match &self.lane {
                Some(lane) => lane.spans(),
                None => return Poll::Ready(Err(io::Error::other("placeholder without a lane"))),
            };
            let Some(span) = spans.front_mut() else {
                return Poll::Ready(Err(io::Error::other("placeholder without a file span")));
            };
            if at != span.sent || slice_len != span.len - span.sent {
                return Poll::Ready(Err(io::Error::other(
                    "placeholder out of step with its file span",
                )));
            }
            let mut offset = span.offset + span.sent as u64;
            let sent = tcp.try_io(Interest::WRITABLE, || {
                rustix::fs::sendfile(tcp, &*span.file, Some(&mut offset), slice_len)
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
                        spans.pop_front();
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
        if self.read_ahead.is_empty() {
            return Pin::new(&mut self.io).poll_read(cx, buf);
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
        self.stall.watch(cx, write)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let write = self.as_mut().write_vectored(cx, bufs);
        self.stall.watch(cx, write)
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
    use std::io::Write as _;

    #[test]
    fn placeholders_are_recognized_by_address_only() {
        let lane = Lane::default();
        let file = Arc::new(tempfile::tempfile().expect("temp file"));
        let p = lane.push(&file, 0, 10);
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
        let p = lane.push(&file, 0, MAX_SPAN * 3);
        assert_eq!(p.len(), MAX_SPAN);
        assert_eq!(lane.spans().front().map(|s| s.len), Some(MAX_SPAN));
    }

    /// A connected pair: our end wrapped in `SendfileIo`, the peer's end.
    async fn pair(lane: impl Into<Option<Lane>>) -> (SendfileIo, TcpStream) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let client = TcpStream::connect(addr).await.expect("connect");
        let (server, _) = listener.accept().await.expect("accept");
        (
            SendfileIo::new(
                server,
                lane.into(),
                Bytes::new(),
                Duration::from_secs(60),
                None,
            ),
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
            .map(|i| lane.push(&file, i << 20, 1 << 20))
            .collect();
        let started = std::time::Instant::now();
        let err = refused(&mut io, &spans).await;
        assert_eq!(err.kind(), io::ErrorKind::TimedOut, "{err}");
        assert!(started.elapsed() >= Duration::from_millis(200));
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
        let (io, mut client) = pair(None).await;
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
            lane.push(&file, 1000, 200_000),
            Bytes::from_static(b"-middle-"),
            lane.push(&file, 5, 7),
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
    async fn a_placeholder_without_a_span_is_an_error_not_zeros() {
        let lane = Lane::default();
        let (mut io, _peer) = pair(Lane::default()).await;
        let file = file_with(b"abcdef");
        // Registered with another lane: ours has no span for it.
        let p = lane.push(&file, 0, 6);
        let err = refused(&mut io, &[p]).await;
        assert!(err.to_string().contains("without a file span"), "{err}");
    }

    #[tokio::test]
    async fn without_a_lane_a_placeholder_is_an_error_and_bytes_pass() {
        use tokio::io::AsyncReadExt as _;
        let lane = Lane::default();
        let (mut io, mut peer) = pair(None).await;
        write_all_vectored(&mut io, &[Bytes::from_static(b"plain")])
            .await
            .expect("ordinary bytes are written");
        let mut got = [0u8; 5];
        peer.read_exact(&mut got).await.expect("read");
        assert_eq!(&got, b"plain");
        let p = lane.push(&file_with(b"abcdef"), 0, 6);
        let err = refused(&mut io, &[p]).await;
        assert!(err.to_string().contains("without a lane"), "{err}");
    }

    #[tokio::test]
    async fn a_placeholder_out_of_step_is_an_error() {
        let lane = Lane::default();
        let (mut io, _peer) = pair(lane.clone()).await;
        let file = file_with(b"abcdefgh");
        let p = lane.push(&file, 0, 8);
        // Skipping the first bytes of the span does not match it.
        let err = refused(&mut io, &[p.slice(2..)]).await;
        assert!(err.to_string().contains("out of step"), "{err}");
    }

    #[tokio::test]
    async fn a_file_shorter_than_its_span_is_an_error() {
        let lane = Lane::default();
        let (mut io, _peer) = pair(lane.clone()).await;
        let file = file_with(b"abc");
        let p = lane.push(&file, 0, 10);
        let err = refused(&mut io, &[p]).await;
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
    }
}
