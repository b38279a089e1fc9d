//! Every connection's I/O: what hyper reads and writes through. Reads
//! replay the bytes read before the connection was handed over, then (on
//! HTTP/1) pass the socket's bytes through the head guard (see
//! [`super::head_guard`]); writes go out as they are, a response head
//! followed by file bytes with `MSG_MORE`, and a `sendfile` placeholder as
//! `sendfile` from the connection's lane (see [`super::sendfile`]). Every
//! write passes the send timeout (see [`super::send_timeout`]), and the
//! first error is recorded in the connection's [`Report`], for the
//! access-log lines of the responses it cuts short.

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use hyper_util::rt::TokioIo;
use tokio::io::Interest;
use tokio::net::TcpStream;

use crate::access_log::{Cut, Report};
use crate::server::head_guard::{self, Head, HeadGuard, Scan};
use crate::server::park::Quiet;
use crate::server::send_timeout::{Progress, SendTimer};
use crate::server::sendfile::{Lane, placeholder_offset};
use crate::server::tls::Prefixed;

/// What a connection reads and writes through: the socket itself, or TLS
/// over it (see [`crate::server::tls`]).
#[derive(Debug)]
pub(crate) enum Transport {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::server::TlsStream<Prefixed>>),
}

impl Transport {
    /// The socket, when bytes written to it reach the client as they are
    /// (for `sendfile` and `MSG_MORE`).
    fn plain(&self) -> Option<&TcpStream> {
        match self {
            Transport::Plain(tcp) => Some(tcp),
            Transport::Tls(_) => None,
        }
    }
}

impl Transport {
    /// Resolves once the client has sent something: the socket is
    /// readable (over TLS too: rustls holds no decrypted bytes once a
    /// read through it has found none, see `park`).
    pub(crate) async fn readable(&self) -> io::Result<()> {
        match self {
            Transport::Plain(tcp) => tcp.readable().await,
            Transport::Tls(tls) => {
                let prefixed = tls.get_ref().0;
                if prefixed.has_unread() {
                    return Ok(());
                }
                prefixed.tcp.readable().await
            }
        }
    }
}

impl From<TcpStream> for Transport {
    fn from(tcp: TcpStream) -> Self {
        Transport::Plain(tcp)
    }
}

impl tokio::io::AsyncRead for Transport {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Transport::Plain(tcp) => Pin::new(tcp).poll_read(cx, buf),
            Transport::Tls(tls) => Pin::new(tls.as_mut()).poll_read(cx, buf),
        }
    }
}

impl tokio::io::AsyncWrite for Transport {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Transport::Plain(tcp) => Pin::new(tcp).poll_write(cx, buf),
            Transport::Tls(tls) => Pin::new(tls.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Transport::Plain(tcp) => Pin::new(tcp).poll_write_vectored(cx, bufs),
            Transport::Tls(tls) => Pin::new(tls.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Transport::Plain(tcp) => Pin::new(tcp).poll_flush(cx),
            Transport::Tls(tls) => Pin::new(tls.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Transport::Plain(tcp) => Pin::new(tcp).poll_shutdown(cx),
            Transport::Tls(tls) => Pin::new(tls.as_mut()).poll_shutdown(cx),
        }
    }
}

/// An accepted connection as hyper reads and writes it (see the module
/// docs).
#[derive(Debug)]
pub(crate) struct ConnIo {
    io: TokioIo<Transport>,
    /// Where bodies leave file spans (HTTP/1 with `sendfile` on).
    lane: Option<Lane>,
    /// Where the first read or write error is recorded.
    report: Report,
    /// Bytes the server read before handing the connection over (while
    /// telling HTTP/1 from HTTP/2); reads return them first.
    read_ahead: Bytes,
    stall: SendTimer,
    /// HTTP/1 only: the request heads' guard, and the bytes it has not yet
    /// let through (see [`crate::server::head_guard`]).
    guard: Option<Guarded>,
    /// Where reads and writes tell whether the connection is quiet (see
    /// [`crate::server::park`]), when it may be parked.
    quiet: Option<Arc<Quiet>>,
}

/// The read side of an HTTP/1 connection under a [`HeadGuard`].
#[derive(Debug)]
struct Guarded {
    guard: HeadGuard,
    /// Read, not yet let through (the start of a head still arriving).
    pending: BytesMut,
    /// The head at the start of `pending`, when it was checked already
    /// (as it was read ahead): the guard takes it without a second look.
    checked: Option<Head>,
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

impl ConnIo {
    /// Wraps an accepted connection; writes that wait longer than
    /// `send_timeout` for the client fail, and each write that sends
    /// something counts in `progress` when given (see
    /// [`crate::server::send_timeout`]).
    /// Errors are recorded in `report`.
    pub(crate) fn new(
        stream: impl Into<Transport>,
        report: Report,
        read_ahead: Bytes,
        send_timeout: Duration,
        progress: Option<Arc<Progress>>,
    ) -> Self {
        ConnIo {
            io: TokioIo::new(stream.into()),
            lane: None,
            report,
            read_ahead,
            stall: SendTimer::new(send_timeout, progress),
            guard: None,
            quiet: None,
        }
    }

    /// Tells `quiet` when the connection has nothing to read and nothing
    /// left to write.
    pub(crate) fn watched(mut self, quiet: Arc<Quiet>) -> Self {
        self.quiet = Some(quiet);
        self
    }

    /// What the connection reads and writes through.
    pub(crate) fn transport_mut(&mut self) -> &mut Transport {
        self.io.inner_mut()
    }

    /// Gives back what an idle connection need not hold: buffers kept from
    /// its last request and response, the send timer.
    pub(crate) fn release(&mut self) {
        if let Some(g) = &mut self.guard {
            // Empty views may still hold the buffer they were cut from.
            if g.pending.is_empty() {
                g.pending = BytesMut::new();
            }
            if g.released.is_empty() {
                g.released = Bytes::new();
            }
        }
        self.read_ahead = Bytes::new();
        self.stall.release();
        if let Some(lane) = &self.lane {
            lane.shrink();
        }
    }

    /// Hands `first`, the start of the next request (read while the
    /// connection was parked), whose head is `head` as checked, to the
    /// guard before anything else.
    pub(crate) fn resume(&mut self, first: Bytes, head: Option<Head>) {
        if let Some(q) = &self.quiet {
            q.read(true);
        }
        match &mut self.guard {
            Some(g) => {
                let mut pending = first
                    .try_into_mut()
                    .unwrap_or_else(|shared| BytesMut::from(&shared[..]));
                // Checked as the start of these bytes, nothing before them.
                g.checked = head.filter(|_| g.pending.is_empty());
                pending.unsplit(std::mem::take(&mut g.pending));
                g.pending = pending;
            }
            None => self.read_ahead = first,
        }
    }

    /// Sends placeholders from `lane` with `sendfile`.
    pub(crate) fn with_lane(mut self, lane: Lane) -> Self {
        self.lane = Some(lane);
        self
    }

    /// Sends the placeholder slice of `len` bytes at `at`, from the lane.
    fn poll_send_span(
        &mut self,
        cx: &mut Context<'_>,
        at: usize,
        len: usize,
    ) -> Poll<io::Result<usize>> {
        match (&self.lane, self.io.inner().plain()) {
            (Some(lane), Some(tcp)) => lane.poll_send(tcp, cx, at, len),
            _ => Poll::Ready(Err(io::Error::other("placeholder without a file span"))),
        }
    }

    /// Hands hyper only what `guard` lets through (HTTP/1): the bytes read
    /// ahead, which begin with `head` as checked, are the first it looks
    /// at.
    pub(crate) fn guarded(mut self, guard: HeadGuard, head: Head) -> Self {
        // The read-ahead buffer is this connection's alone: taken back
        // without a copy.
        let pending = std::mem::take(&mut self.read_ahead)
            .try_into_mut()
            .unwrap_or_else(|shared| BytesMut::from(&shared[..]));
        self.guard = Some(Guarded {
            guard,
            pending,
            checked: Some(head),
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
                if let Some(q) = &self.quiet {
                    q.read(true);
                }
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
            let scan = match g.checked.take() {
                Some(head) => g.guard.scan_checked(&g.pending, head),
                None => g.guard.scan(&g.pending),
            };
            match scan {
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
            // only say so (a system call per request).
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
            let Poll::Ready(read) = read else {
                // Nothing to read, and no part of a head held back.
                if let Some(q) = &self.quiet {
                    if g.pending.is_empty() {
                        q.read(false);
                    }
                }
                return Poll::Pending;
            };
            if let Some(q) = &self.quiet {
                q.read(true);
            }
            match read {
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
                    self.report.cut(Cut::of(&e));
                    return Poll::Ready(Err(e));
                }
            }
        }
    }

    /// Writes `bufs` with `MSG_MORE` (plain connections; TLS ones as
    /// they are).
    fn poll_send_more(
        &mut self,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        use rustix::net::{SendAncillaryBuffer, SendFlags, sendmsg};
        let Some(tcp) = self.io.inner().plain() else {
            return hyper::rt::Write::poll_write_vectored(Pin::new(&mut self.io), cx, bufs);
        };
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

impl hyper::rt::Read for ConnIo {
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
                self.report.cut(Cut::of(e));
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

impl hyper::rt::Write for ConnIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if let Some(q) = &self.quiet {
            q.wrote();
        }
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
        if let Some(q) = &self.quiet {
            q.wrote();
        }
        let write = self.as_mut().write_vectored(cx, bufs);
        self.watch(cx, write)
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // hyper flushes its IO once all it queued is written.
        let flushed = Pin::new(&mut self.io).poll_flush(cx);
        if let (Poll::Ready(Ok(())), Some(q)) = (&flushed, &self.quiet) {
            q.flushed();
        }
        flushed
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

impl ConnIo {
    /// Passes a write's outcome through the send timeout, and records in
    /// the report why the connection stops sending if it fails.
    fn watch(
        &mut self,
        cx: &mut Context<'_>,
        write: Poll<io::Result<usize>>,
    ) -> Poll<io::Result<usize>> {
        let write = self.stall.watch(cx, write);
        if let Poll::Ready(Err(e)) = &write {
            self.report.cut(Cut::of(e));
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
            // The connection's last response: held back the same way, so
            // that it leaves in one segment with the FIN that follows at
            // once (as nginx's with `tcp_nopush`): a segment less, for
            // both ends, on every connection that carries one request.
            None if self.quiet.as_ref().is_some_and(|q| q.is_last()) => {
                self.poll_send_more(cx, bufs)
            }
            None => hyper::rt::Write::poll_write_vectored(Pin::new(&mut self.io), cx, bufs),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::access_log::{Begun, Line, Served, capture};
    use crate::body::FileRange;
    use crate::server::sendfile::Spans;
    use http_body_util::BodyExt as _;
    use std::fs::File;

    use crate::server::sendfile::tests::version;
    use std::io::Write as _;

    /// A connected pair: our end wrapped in `ConnIo`, the peer's end.
    async fn pair(lane: Lane) -> (ConnIo, TcpStream) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let client = TcpStream::connect(addr).await.expect("connect");
        let (server, _) = listener.accept().await.expect("accept");
        (
            ConnIo::new(
                server,
                Report::default(),
                Bytes::new(),
                Duration::from_secs(60),
                None,
            )
            .with_lane(lane),
            client,
        )
    }

    #[tokio::test]
    async fn a_write_the_peer_never_accepts_times_out() {
        let lane = Lane::default();
        let (io, _peer) = pair(lane.clone()).await;
        let mut io = ConnIo {
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
        assert_eq!(io.report.why(), Some(Cut::SendTimeout));
    }

    /// One read of at most `max` bytes through hyper's interface.
    async fn read_some(io: &mut ConnIo, max: usize) -> Vec<u8> {
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
        let mut io = ConnIo {
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

    async fn write_all_vectored(io: &mut ConnIo, parts: &[Bytes]) -> io::Result<()> {
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
    async fn refused(io: &mut ConnIo, parts: &[Bytes]) -> io::Error {
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
        assert_eq!(lane.unsent(0), 0, "every span consumed");
    }

    #[tokio::test]
    async fn a_held_last_byte_waits_for_the_version_check() {
        use std::os::unix::fs::FileExt as _;
        let lane = Lane::default();
        let (mut io, _peer) = pair(lane.clone()).await;
        let file = file_with(&[5u8; 1000]);
        let v = version(&file);
        let p = lane.push(0, &file, v, 0, 1000, true);
        async fn write(io: &mut ConnIo, p: Bytes) -> io::Result<usize> {
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
        assert_eq!(io.report.why(), Some(Cut::FileChanged));
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
        assert_eq!(io.report.why(), Some(Cut::FileShrank));
    }

    /// A file body of `data.len()` bytes as spans in `lane`, logged as a
    /// GET of `/f` by user 7 (logging must be on: see `capture::lines`).
    /// `report` names the cause if it is cut short.
    fn spans(lane: &Lane, report: &Report, data: &[u8]) -> Spans {
        let file = file_with(data);
        let range = FileRange {
            identity: version(&file),
            file,
            offset: 0,
            len: data.len() as u64,
            place: None,
        };
        let served = Served {
            client: None,
            user: Some("7".into()),
            reason: None,
            received: None,
        };
        let begun = Begun::now();
        assert!(begun.is_some(), "access logging is captured");
        let line = Line::new(begun, &http::Method::GET, "/f", 200, served).reporting(report);
        Spans::new(lane, range, Some(line), None)
    }

    /// The placeholders of every span of `body`.
    async fn placeholders(mut body: Spans) -> Vec<Bytes> {
        let mut all = Vec::new();
        while let Some(frame) = body.frame().await {
            all.extend(frame.expect("a placeholder").into_data().ok());
        }
        all
    }

    #[tokio::test]
    async fn a_response_is_logged_once_its_last_span_has_been_sent() {
        use tokio::io::AsyncReadExt as _;
        let (lines, _guard) = capture::lines();
        let lane = Lane::default();
        let (mut io, mut peer) = pair(lane.clone()).await;
        let len = 2 * crate::server::sendfile::MAX_SPAN + 300;
        let parts = placeholders(spans(&lane, &io.report, &vec![7u8; len])).await;
        assert_eq!(parts.len(), 3);
        // Handed over, not yet sent: no line.
        assert!(capture::taken(&lines).is_empty());
        let reader = tokio::spawn(async move {
            let mut got = Vec::new();
            peer.read_to_end(&mut got).await.map(|_| got.len())
        });
        write_all_vectored(&mut io, &parts[..2])
            .await
            .expect("written");
        assert!(
            capture::taken(&lines).is_empty(),
            "the last span is not sent yet"
        );
        write_all_vectored(&mut io, &parts[2..])
            .await
            .expect("written");
        let logged = capture::taken(&lines);
        assert_eq!(logged.len(), 1, "{logged:?}");
        assert_eq!(logged[0]["bytes"], len.to_string());
        assert_eq!(logged[0]["error"], "-");
        assert_eq!(logged[0]["user"], "7");
        drop((io, lane));
        assert_eq!(reader.await.expect("joined").expect("read"), len);
        assert!(capture::taken(&lines).is_empty(), "logged once");
    }

    #[tokio::test]
    async fn a_connection_gone_before_the_last_span_logs_what_went_out_and_why() {
        let (lines, _guard) = capture::lines();
        let span = crate::server::sendfile::MAX_SPAN;
        for (cut, error) in [
            (None, "stopped before the end"),
            (Some(Cut::ClientGone), "client went away"),
            (Some(Cut::SendTimeout), "send timeout"),
        ] {
            let lane = Lane::default();
            let (mut io, peer) = pair(lane.clone()).await;
            let report = io.report.clone();
            // An earlier response, sent whole, and this one: two spans, of
            // which only the first goes out.
            let earlier = placeholders(spans(&lane, &report, &[1u8; 10])).await;
            let parts = placeholders(spans(&lane, &report, &vec![1u8; span + 2000])).await;
            let mut first = earlier;
            first.push(parts[0].clone());
            write_all_vectored(&mut io, &first).await.expect("written");
            assert_eq!(capture::taken(&lines).len(), 1, "the earlier one is logged");
            if let Some(cut) = cut {
                report.cut(cut);
            }
            drop((io, peer, lane, parts));
            let logged = capture::taken(&lines);
            assert_eq!(logged.len(), 1, "{logged:?}");
            assert_eq!(logged[0]["bytes"], span.to_string(), "{error}");
            assert_eq!(logged[0]["error"], error);
        }
    }

    #[test]
    fn the_first_cause_of_a_cut_counts() {
        let report = Report::default();
        assert_eq!(report.why(), None);
        report.cut(Cut::FileShrank);
        report.cut(Cut::ClientGone);
        assert_eq!(report.why(), Some(Cut::FileShrank));
    }
}
