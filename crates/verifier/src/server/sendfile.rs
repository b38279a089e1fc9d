//! Zero-copy file bodies on HTTP/1 connections: the bytes of a file go from
//! the page cache to the socket with `sendfile(2)`, never through a buffer
//! of ours.
//!
//! hyper owns the socket and wants every body byte as a [`Bytes`] frame, so
//! the two meet half-way through a per-connection [`Lane`]:
//!
//! 1. the response's file body becomes [`Spans`]: each poll registers a
//!    span (file, offset, length) with the lane and hands hyper a
//!    *placeholder*, a [`Bytes`] of the same length pointing into one
//!    private static that nothing else points into;
//! 2. hyper queues it behind the response head and writes the queue
//!    through the connection's I/O ([`super::io::ConnIo`]);
//! 3. the I/O writes ordinary slices as they are, and turns a placeholder
//!    slice into `sendfile` from the span at the front of the lane
//!    ([`Lane::poll_send`]), reporting the bytes sent as written;
//! 4. a response's last span carries what waits for the response's end
//!    (its access-log line, its in-progress mark), settled once the span
//!    has been sent, or when the connection is gone with what did go out.
//!
//! This rests on one hyper behaviour: with vectored writes on
//! (`http1::Builder::writev(true)`), hyper queues body frames and hands
//! them to the I/O as they are, never copying their bytes. It is not a
//! documented promise, so [`zero_copy_holds`] checks it once per process
//! against the hyper linked in, on an in-memory connection, before any
//! placeholder is made; if a hyper upgrade changes it, the server warns
//! and reads file bodies into chunks instead (and the unit test of the
//! check fails).
//!
//! The placeholder's own bytes (zeros) are never written: a placeholder
//! slice that does not match the front span exactly (position and length)
//! is an error that closes the connection, as is a file that shrinks under
//! `sendfile` (a response shorter than its `Content-Length` is never sent
//! as if complete).

use std::collections::VecDeque;
use std::fs::File;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use tokio::io::Interest;
use tokio::net::TcpStream;

use crate::access_log::Line;
use crate::body::FileRange;
use crate::files::budget::Held;
use crate::files::fs::{Identity, check_version};
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
/// order hyper will write them. Every HTTP/1 connection of the bundled
/// server has one; only with `sendfile` on are spans put in it.
#[derive(Debug, Clone, Default)]
pub(crate) struct Lane(Arc<Shared>);

#[derive(Debug, Default)]
struct Shared {
    spans: Mutex<VecDeque<Span>>,
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
/// been sent (or never will be): its access-log line, ended then with the
/// bytes that really went out and the time the last of them took; and
/// its mark of being in progress (see `slots`).
#[derive(Debug)]
struct Ending {
    line: Option<Line>,
    /// The response's body bytes, all spans together.
    bytes: u64,
    /// The in-progress mark, if the connection counts one.
    responding: Option<Responding>,
    /// The place the response's file holds (see `budget`).
    place: Option<Held>,
}

impl Ending {
    /// Ends the line (`unsent` of the bytes never went out: cut short),
    /// then lets the in-progress mark go.
    fn settle(self, unsent: u64) {
        let Ending {
            line,
            bytes,
            responding,
            place,
        } = self;
        // The file is no longer read for this response.
        drop(place);
        if let Some(mut line) = line {
            line.set_sent(bytes - unsent.min(bytes));
            if unsent == 0 {
                line.end(None);
            }
            // Else dropped: cut short, for the cause its connection reported.
        }
        // The connection may now count as idle (see `slots`).
        drop(responding);
    }
}

impl Lane {
    /// Gives back the room of spans sent (a connection going idle).
    pub(crate) fn shrink(&self) {
        self.spans().shrink_to_fit();
    }

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
    fn ends_with(&self, ending: Ending) {
        let mut spans = self.spans();
        match spans.back_mut() {
            Some(span) => span.ending = Some(ending),
            None => {
                // Every span already sent (not the case when called right
                // after a push, but harmless): settle now.
                drop(spans);
                ending.settle(0);
            }
        }
    }

    /// Bytes of response `owner`'s spans not yet sent.
    pub(crate) fn unsent(&self, owner: u64) -> u64 {
        unsent(&self.spans(), owner)
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
        while let Some(at) = spans.iter().position(|s| s.ending.is_some()) {
            let Some(last) = spans.get_mut(at) else { break };
            let (owner, ending) = (last.owner, last.ending.take());
            if let Some(ending) = ending {
                ending.settle(unsent(spans, owner));
            }
        }
    }
}

impl Lane {
    /// Sends the placeholder slice of `slice_len` bytes at `at` in the
    /// placeholder on `tcp`, from the span at the front of the lane.
    pub(crate) fn poll_send(
        &self,
        tcp: &TcpStream,
        cx: &mut Context<'_>,
        at: usize,
        slice_len: usize,
    ) -> Poll<io::Result<usize>> {
        loop {
            ready!(tcp.poll_write_ready(cx))?;
            let mut spans = self.spans();
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
            // its check; holding its last byte back would cost every such
            // file an extra call and packet: BENCHMARKS.md, "Design
            // measurements".)
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
                            ending.settle(0);
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
}

/// Where `slice` starts in the placeholder, if it lies in it.
pub(crate) fn placeholder_offset(slice: &[u8]) -> Option<usize> {
    let base = PLACEHOLDER.as_ptr() as usize;
    let start = slice.as_ptr() as usize;
    (start >= base && start - base < MAX_SPAN && !slice.is_empty()).then(|| start - base)
}

/// A file body as placeholders: each poll registers the next span of up
/// to [`MAX_SPAN`] bytes with the lane and hands hyper its placeholder;
/// the last span carries the response's [`Ending`].
#[derive(Debug)]
pub(crate) struct Spans {
    lane: Lane,
    /// This response's number in the lane.
    owner: u64,
    file: Arc<File>,
    identity: Identity,
    offset: u64,
    remaining: u64,
    /// Bytes handed to hyper so far.
    handed: u64,
    /// Until the last span is handed over: what waits for it.
    line: Option<Line>,
    responding: Option<Responding>,
    place: Option<Held>,
}

impl Spans {
    /// The spans of `range` in `lane`; `line` and `responding` wait for
    /// the last of them to be sent.
    pub(crate) fn new(
        lane: &Lane,
        range: FileRange,
        line: Option<Line>,
        responding: Option<Responding>,
    ) -> Self {
        Spans {
            owner: lane.response(),
            lane: lane.clone(),
            file: range.file,
            identity: range.identity,
            offset: range.offset,
            remaining: range.len,
            handed: 0,
            line,
            responding,
            place: range.place,
        }
    }
}

impl Body for Spans {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        let this = &mut *self;
        if this.remaining == 0 {
            return Poll::Ready(None);
        }
        let span = this.remaining.min(MAX_SPAN as u64) as usize;
        // The last span of several keeps its last byte for a final check.
        let hold_last = span as u64 == this.remaining && this.handed > 0;
        let placeholder = this.lane.push(
            this.owner,
            &this.file,
            this.identity,
            this.offset,
            span,
            hold_last,
        );
        this.offset += span as u64;
        this.remaining -= span as u64;
        this.handed += span as u64;
        if this.remaining == 0 {
            // The response is in progress, and its line waits, until the
            // connection has sent this last span.
            this.lane.ends_with(Ending {
                line: this.line.take(),
                bytes: this.handed,
                responding: this.responding.take(),
                place: this.place.take(),
            });
        }
        Poll::Ready(Some(Ok(Frame::data(placeholder))))
    }

    fn is_end_stream(&self) -> bool {
        self.remaining == 0
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.remaining)
    }
}

impl Drop for Spans {
    /// Dropped before its last span was handed over: hyper gave up on the
    /// response. Its line counts what of the spans went out.
    fn drop(&mut self) {
        if let Some(mut line) = self.line.take() {
            let unsent = self.lane.unsent(self.owner);
            line.set_sent(self.handed - unsent.min(self.handed));
            // Dropped: cut short, for the cause the connection reported.
        }
    }
}

/// Whether the hyper linked in hands body frames to the connection's I/O
/// as they are, which placeholders rely on (see the module docs): checked
/// once per process, on an in-memory connection. When it does not hold,
/// a warning says so and the server reads file bodies instead.
pub(crate) fn zero_copy_holds() -> bool {
    static HOLDS: OnceLock<bool> = OnceLock::new();
    *HOLDS.get_or_init(|| {
        let holds = placeholders_pass_through_hyper();
        if !holds {
            tracing::warn!(
                "this hyper copies response bodies before writing them: \
                 sendfile is off, file bodies are read and written"
            );
        }
        holds
    })
}

/// Serves one request over an in-memory HTTP/1 connection set up as the
/// server sets up its own (vectored writes), with a body of one
/// placeholder, and tells whether the placeholder reached the I/O whole
/// and in place.
fn placeholders_pass_through_hyper() -> bool {
    const PROBE: usize = 64 * 1024;
    let service = hyper::service::service_fn(|_req| {
        let body = http_body_util::Full::new(Bytes::from_static(&PLACEHOLDER[..PROBE]));
        std::future::ready(Ok::<_, std::convert::Infallible>(http::Response::new(body)))
    });
    let mut io = Probe {
        request: b"GET / HTTP/1.1\r\nHost: probe\r\n\r\n",
        whole: false,
    };
    {
        let conn = hyper::server::conn::http1::Builder::new()
            .header_read_timeout(None)
            .writev(true)
            .serve_connection(&mut io, service);
        let mut conn = std::pin::pin!(conn);
        let mut cx = Context::from_waker(std::task::Waker::noop());
        // Every step is ready at once: a few polls answer the request.
        for _ in 0..16 {
            if conn.as_mut().poll(&mut cx).is_ready() {
                break;
            }
        }
    }
    io.whole
}

/// The probe's connection: one request to read, then nothing; writes
/// taken whole, noting whether the placeholder came through in place.
struct Probe {
    request: &'static [u8],
    whole: bool,
}

impl Probe {
    fn note(&mut self, slice: &[u8]) {
        if placeholder_offset(slice) == Some(0) && slice.len() == 64 * 1024 {
            self.whole = true;
        }
    }
}

impl hyper::rt::Read for &mut Probe {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        mut buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        if self.request.is_empty() {
            return Poll::Pending;
        }
        let n = self.request.len().min(buf.remaining());
        buf.put_slice(&self.request[..n]);
        self.request = &self.request[n..];
        Poll::Ready(Ok(()))
    }
}

impl hyper::rt::Write for &mut Probe {
    fn poll_write(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.note(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        for buf in bufs {
            self.note(buf);
        }
        Poll::Ready(Ok(bufs.iter().map(|b| b.len()).sum()))
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::access_log::{Begun, Served, capture};
    use http_body_util::BodyExt as _;

    /// The version of `file`.
    pub(crate) fn version(file: &File) -> Identity {
        crate::files::fs::identity_of(file)
            .expect("statx")
            .expect("a regular file")
    }

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

    #[test]
    fn hyper_hands_body_frames_to_the_io_in_place() {
        // If this fails after a hyper upgrade, hyper now copies body bytes
        // in vectored-write mode: the server turns sendfile off by itself
        // (with a warning), but the zero-copy path is gone until it is
        // rebuilt on what hyper offers then.
        assert!(placeholders_pass_through_hyper());
        assert!(zero_copy_holds());
    }

    #[tokio::test]
    async fn a_file_body_becomes_spans_and_its_end_waits_for_the_lane() {
        use std::io::Write as _;
        let (lines, _guard) = capture::lines();
        let lane = Lane::default();
        let mut f = tempfile::tempfile().expect("temp file");
        f.write_all(&[3u8; 5000]).expect("write");
        let file = Arc::new(f);
        let range = FileRange {
            identity: version(&file),
            file,
            offset: 0,
            len: 5000,
            place: None,
        };
        let line = Line::new(
            Begun::now(),
            &http::Method::GET,
            "/f",
            200,
            Served::default(),
        );
        let mut body = Spans::new(&lane, range, Some(line), None);
        let only = body.frame().await.expect("a frame").expect("ok");
        assert_eq!(only.data_ref().map(Bytes::len), Some(5000));
        assert_eq!(placeholder_offset(only.data_ref().expect("data")), Some(0));
        assert!(body.is_end_stream());
        drop(body);
        // Every byte handed over, none sent: the line waits for the lane.
        assert!(capture::taken(&lines).is_empty());
        assert_eq!(lane.unsent(0), 5000);
        drop(lane);
        let logged = capture::taken(&lines);
        assert_eq!(logged.len(), 1, "{logged:?}");
        assert_eq!(logged[0]["bytes"], "0");
        assert_eq!(logged[0]["error"], "stopped before the end");
    }
}
