//! The response body: empty, a short fixed text, or a file streamed in
//! bounded memory.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use http_body::{Body, Frame, SizeHint};

use crate::access_log::{AccessLog, Cut};
use crate::budget::{Budget, Held};
use crate::fs::{Identity, check_version};
use crate::server::sendfile::{self, Ending, Lane};
use crate::server::slots::Responding;

/// Chunk buffers kept per response for reuse.
const POOL: usize = 2;

/// How many bytes are sent between two checks that the file is still the
/// version being sent (one `statx` each); the last chunk is always checked
/// after it is read, so a body never mixes two versions unnoticed.
pub(crate) const CHECK_EVERY: u64 = 1 << 20;

/// The largest chunk an HTTP/2 response reads at a time: one DATA frame
/// at the protocol's default frame size. A connection holds a few chunks
/// per open stream at most (see `server.rs`), so this, times the streams
/// a client may open, bounds what a client that stops reading can pin.
pub(crate) const HTTP2_CHUNK: usize = 16 * 1024;

/// How the connection a response goes out on takes a file's bytes, and
/// what it records about itself.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Delivery<'a> {
    mode: Mode,
    /// The bundled server's connection: it records why it stopped sending
    /// if it stops early (an embedding server's says nothing).
    lane: Option<&'a Lane>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Read into chunks of the configured size.
    Chunks,
    /// Read into chunks of at most [`HTTP2_CHUNK`].
    Frames,
    /// Sent by the connection itself with `sendfile`.
    Sendfile,
}

/// The place a response's open file holds, out of its worker's (see
/// [`CacheLimits::max_streaming_files`](crate::CacheLimits)), until its
/// last byte is sent.
#[derive(Debug)]
pub(crate) struct FilePlace {
    _held: Held,
}

impl<'a> Delivery<'a> {
    /// A place for one more file open for a response, out of `worker`'s;
    /// `None` when none is left.
    pub(crate) fn file_place(&self, worker: &Budget) -> Option<FilePlace> {
        worker.try_take().map(|held| FilePlace { _held: held })
    }

    /// An embedding server's connection: chunks of the configured size.
    pub(crate) const EMBEDDED: Delivery<'static> = Delivery {
        mode: Mode::Chunks,
        lane: None,
    };

    /// An HTTP/1 connection of the bundled server: file spans left in
    /// `lane` for `sendfile` when `sendfile` is on, else chunks of the
    /// configured size.
    pub(crate) fn http1(lane: &'a Lane, sendfile: bool) -> Self {
        let mode = if sendfile {
            Mode::Sendfile
        } else {
            Mode::Chunks
        };
        Delivery {
            mode,
            lane: Some(lane),
        }
    }

    /// An HTTP/2 stream of the bundled server, one of up to 128 on a
    /// connection: chunks of at most [`HTTP2_CHUNK`].
    pub(crate) fn http2(lane: &'a Lane) -> Self {
        Delivery {
            mode: Mode::Frames,
            lane: Some(lane),
        }
    }
}

/// The body of every response the service sends.
#[derive(Debug)]
pub struct MediaBody {
    kind: Kind,
    /// The bundled server's mark that this response is in progress on its
    /// connection (see `slots`), dropped with the body.
    responding: Option<Responding>,
}

#[derive(Debug)]
enum Kind {
    Empty,
    Full(Option<Bytes>),
    /// A line of static text, sent as the text and then its newline (no
    /// allocation for a refusal's reason code).
    Line(Option<&'static str>, bool),
    File(FileStream),
}

/// A byte range of a file, read chunk by chunk as the connection asks for
/// more: at most one chunk per response is in memory, and a slow client
/// slows the reads (backpressure).
#[derive(Debug)]
struct FileStream {
    file: Arc<File>,
    /// Held until the last byte is sent (moved to the lane's last span
    /// with `sendfile`).
    place: Option<FilePlace>,
    /// The version the response's headers describe: checked now and then
    /// while sending, and once after the last byte is read (see
    /// [`CHECK_EVERY`]).
    identity: Identity,
    /// Bytes read since the version was last checked.
    unchecked: u64,
    offset: u64,
    remaining: u64,
    chunk: usize,
    sent: u64,
    /// Chunks handed out, to be reused when the connection is done with them.
    pool: Vec<Bytes>,
    log: Option<AccessLog>,
    /// The bundled server's connection (see [`Delivery`]).
    lane: Option<Lane>,
    /// Set when the connection sends file spans itself (HTTP/1 over TCP):
    /// the body then hands out placeholders, numbered as this response's,
    /// instead of reading.
    spans_of: Option<u64>,
}

impl MediaBody {
    pub(crate) fn empty() -> Self {
        MediaBody {
            kind: Kind::Empty,
            responding: None,
        }
    }

    pub(crate) fn text(text: &'static str) -> Self {
        MediaBody {
            kind: Kind::Full(Some(Bytes::from_static(text.as_bytes()))),
            responding: None,
        }
    }

    /// `text` and a newline.
    pub(crate) fn line(text: &'static str) -> Self {
        MediaBody {
            kind: Kind::Line(Some(text), true),
            responding: None,
        }
    }

    /// Bytes already in memory; `log` is written at once.
    pub(crate) fn bytes(data: Bytes, log: AccessLog) -> Self {
        log.finish(data.len() as u64, None);
        MediaBody {
            kind: Kind::Full((!data.is_empty()).then_some(data)),
            responding: None,
        }
    }

    /// Streams `len` bytes of `file` from `offset`; `log` is written when the
    /// body is finished or dropped, with the bytes handed to the connection.
    /// Sent as `delivery` says: by the connection itself (see
    /// [`crate::server::sendfile`]), or read in pieces of up to `chunk` bytes.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn file(
        file: Arc<File>,
        place: Option<FilePlace>,
        identity: Identity,
        offset: u64,
        len: u64,
        chunk: usize,
        log: AccessLog,
        delivery: Delivery<'_>,
    ) -> Self {
        let chunk = match delivery.mode {
            Mode::Frames => chunk.min(HTTP2_CHUNK),
            Mode::Chunks | Mode::Sendfile => chunk,
        };
        let lane = delivery.lane.cloned();
        let spans_of = match (&lane, delivery.mode) {
            (Some(lane), Mode::Sendfile) => Some(lane.response()),
            _ => None,
        };
        MediaBody {
            kind: Kind::File(FileStream {
                file,
                place,
                identity,
                unchecked: 0,
                offset,
                remaining: len,
                chunk,
                sent: 0,
                pool: Vec::new(),
                log: Some(log),
                lane,
                spans_of,
            }),
            responding: None,
        }
    }

    /// This body, holding `responding` until it is dropped.
    pub(crate) fn holding(mut self, responding: Responding) -> Self {
        self.responding = Some(responding);
        self
    }
}

impl FileStream {
    /// A buffer of `len` initialized bytes: one handed out earlier that
    /// the connection has finished with, or a new one. Reusing buffers
    /// spares a zeroing and an allocation per chunk.
    fn buffer(&mut self, len: usize) -> BytesMut {
        let mut i = 0;
        while i < self.pool.len() {
            let candidate = self.pool.swap_remove(i);
            match candidate.try_into_mut() {
                Ok(mut buf) => {
                    if buf.len() >= len {
                        buf.truncate(len);
                    } else {
                        buf.resize(len, 0);
                    }
                    return buf;
                }
                Err(still_in_use) => {
                    self.pool.push(still_in_use);
                    i += 1;
                }
            }
        }
        BytesMut::zeroed(len)
    }

    /// The next piece of the body: a placeholder for the connection to
    /// fill with `sendfile`, or bytes read from the file.
    fn next_chunk(&mut self) -> io::Result<Bytes> {
        let (Some(lane), Some(owner)) = (&self.lane, self.spans_of) else {
            return self.read_chunk();
        };
        let span = self.remaining.min(sendfile::MAX_SPAN as u64) as usize;
        // The last span of several keeps its last byte for a final check.
        let hold_last = span as u64 == self.remaining && self.sent > 0;
        let placeholder = lane.push(
            owner,
            &self.file,
            self.identity,
            self.offset,
            span,
            hold_last,
        );
        self.offset += span as u64;
        self.remaining -= span as u64;
        self.sent += span as u64;
        Ok(placeholder)
    }

    fn read_chunk(&mut self) -> io::Result<Bytes> {
        if self.unchecked >= CHECK_EVERY {
            self.check_version()?;
        }
        let want = self.remaining.min(self.chunk as u64) as usize;
        let mut buf = self.buffer(want);
        let mut filled = 0;
        while filled < want {
            match self
                .file
                .read_at(&mut buf[filled..], self.offset + filled as u64)
            {
                Ok(0) => {
                    // The file shrank under us: abort rather than send a
                    // response shorter than its Content-Length.
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "file shrank while being sent",
                    ));
                }
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        self.offset += want as u64;
        self.remaining -= want as u64;
        self.unchecked += want as u64;
        if self.remaining == 0 {
            // Every byte is read: were they all of one version?
            self.check_version()?;
        }
        self.sent += want as u64;
        let data = buf.freeze();
        // Keep a handle to get the buffer back once the connection has
        // written it; at most POOL buffers per response.
        if self.pool.len() >= POOL {
            self.pool.remove(0);
        }
        self.pool.push(data.clone());
        Ok(data)
    }

    /// Fails when the file is no longer the version being sent: a body
    /// that went on would mix two versions under one strong `ETag` and
    /// `Content-Length`, which a cache would keep as complete.
    fn check_version(&mut self) -> io::Result<()> {
        self.unchecked = 0;
        check_version(&self.file, &self.identity)
    }

    fn finish(&mut self, error: Option<&dyn std::fmt::Display>) {
        if let Some(log) = self.log.take() {
            log.finish(self.sent, error.map(|e| e.to_string()));
        }
    }
}

impl Drop for FileStream {
    fn drop(&mut self) {
        if self.remaining == 0 {
            self.finish(None);
            return;
        }
        // Cut short: the connection says why, if it knows, and what of the
        // spans handed to it never went out.
        let (why, unsent) = match (&self.lane, self.spans_of) {
            (Some(lane), owner) => (lane.why_cut(), owner.map_or(0, |owner| lane.unsent(owner))),
            (None, _) => (None, 0),
        };
        self.sent -= unsent.min(self.sent);
        self.finish(Some(&why.unwrap_or(Cut::Unfinished)));
    }
}

impl Body for MediaBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        let MediaBody { kind, responding } = &mut *self;
        match kind {
            Kind::Empty => Poll::Ready(None),
            Kind::Full(data) => Poll::Ready(data.take().map(|d| Ok(Frame::data(d)))),
            Kind::Line(text, newline) => {
                let frame = match text.take() {
                    Some(text) => Bytes::from_static(text.as_bytes()),
                    None if std::mem::take(newline) => Bytes::from_static(b"\n"),
                    None => return Poll::Ready(None),
                };
                Poll::Ready(Some(Ok(Frame::data(frame))))
            }
            Kind::File(stream) => {
                if stream.remaining == 0 {
                    stream.finish(None);
                    return Poll::Ready(None);
                }
                // Reads are synchronous, like nginx without aio: from the page
                // cache they take microseconds, far less than a hand-off to a
                // blocking thread pool would cost.
                match stream.next_chunk() {
                    Ok(data) => {
                        // The last span handed to the connection to send:
                        // the response is in progress, and its line waits,
                        // until the connection has sent it.
                        if let (0, Some(lane), Some(_)) =
                            (stream.remaining, &stream.lane, stream.spans_of)
                        {
                            lane.ends_with(Ending {
                                log: stream.log.take(),
                                bytes: stream.sent,
                                responding: responding.take(),
                                place: stream.place.take(),
                            });
                        }
                        Poll::Ready(Some(Ok(Frame::data(data))))
                    }
                    Err(e) => {
                        stream.finish(Some(&e));
                        stream.remaining = 0;
                        Poll::Ready(Some(Err(e)))
                    }
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Empty => true,
            Kind::Full(data) => data.is_none(),
            Kind::Line(text, newline) => text.is_none() && !newline,
            Kind::File(stream) => stream.remaining == 0,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Empty => SizeHint::with_exact(0),
            Kind::Full(data) => SizeHint::with_exact(data.as_ref().map_or(0, |d| d.len() as u64)),
            Kind::Line(text, newline) => {
                SizeHint::with_exact((text.map_or(0, str::len) + usize::from(*newline)) as u64)
            }
            Kind::File(stream) => SizeHint::with_exact(stream.remaining),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::access_log::capture;
    use http_body_util::BodyExt as _;
    use std::io::Write as _;

    /// A file of `len` bytes, and its version.
    fn file(len: usize) -> (Arc<File>, Identity) {
        let mut f = tempfile::tempfile().expect("temp file");
        f.write_all(&vec![3u8; len]).expect("write");
        let version = crate::fs::identity_of(&f).expect("statx").expect("a file");
        (Arc::new(f), version)
    }

    #[tokio::test]
    async fn a_line_is_its_text_and_a_newline() {
        let body = MediaBody::line("expired");
        assert_eq!(body.size_hint().exact(), Some(8));
        let bytes = body.collect().await.expect("no error").to_bytes();
        assert_eq!(&bytes[..], b"expired\n");
    }

    #[tokio::test]
    async fn a_file_written_to_while_read_is_never_sent_whole() {
        let (lines, _guard) = capture::lines();
        // Rewritten in place (same length) before the last chunk, and
        // before a later chunk past CHECK_EVERY.
        for (len, chunk) in [(10_000usize, 4096usize), (3 << 20, 256 << 10)] {
            let (f, v) = file(len);
            let mut body = MediaBody::file(
                f.clone(),
                None,
                v,
                0,
                len as u64,
                chunk,
                line(),
                Delivery::EMBEDDED,
            );
            let first = body.frame().await.expect("a frame").expect("ok");
            assert_eq!(first.data_ref().map(Bytes::len), Some(chunk));
            std::thread::sleep(std::time::Duration::from_millis(5));
            f.write_all_at(&vec![9u8; len], 0).expect("rewrite");
            let mut sent = chunk;
            let err = loop {
                match body.frame().await.expect("a frame") {
                    Ok(frame) => sent += frame.data_ref().map_or(0, Bytes::len),
                    Err(e) => break e,
                }
            };
            assert!(sent < len, "{sent} of {len}");
            assert_eq!(err.to_string(), "file changed while being sent");
            drop(body);
            let logged = capture::taken(&lines);
            assert_eq!(logged[0]["error"], "file changed while being sent");
        }
        // Unchanged: every byte, no error.
        let (f, v) = file(10_000);
        let mut body = MediaBody::file(f, None, v, 0, 10_000, 4096, line(), Delivery::EMBEDDED);
        let mut sent = 0;
        while let Some(frame) = body.frame().await {
            sent += frame.expect("ok").data_ref().map_or(0, Bytes::len);
        }
        assert_eq!(sent, 10_000);
    }

    fn line() -> AccessLog {
        let begun = AccessLog::begin(None);
        assert!(begun.is_some(), "access logging is captured");
        AccessLog::start(&http::Method::GET, "/f", Some("7"), 200, None, begun)
    }

    #[tokio::test]
    async fn a_body_cut_short_logs_what_its_connection_sent_and_why() {
        let (lines, _guard) = capture::lines();
        let len = 3 * sendfile::MAX_SPAN as u64;
        // With sendfile: one span handed over and never sent, on a
        // connection that recorded why.
        let lane = Lane::default();
        let delivery = Delivery::http1(&lane, true);
        let (f, v) = file(len as usize);
        let mut body = MediaBody::file(f, None, v, 0, len, 4096, line(), delivery);
        let first = body.frame().await.expect("a frame").expect("ok");
        assert_eq!(first.data_ref().map(Bytes::len), Some(sendfile::MAX_SPAN));
        lane.cut(Cut::ClientGone);
        drop(body);
        let logged = capture::taken(&lines);
        assert_eq!(logged.len(), 1, "{logged:?}");
        assert_eq!(logged[0]["bytes"], "0");
        assert_eq!(logged[0]["error"], "client went away");
        // Read in chunks, on a connection that says nothing (an embedding
        // server's): what was handed over, and no cause made up.
        let (f, v) = file(10_000);
        let mut body = MediaBody::file(f, None, v, 0, 10_000, 4096, line(), Delivery::EMBEDDED);
        body.frame().await.expect("a frame").expect("ok");
        drop(body);
        let logged = capture::taken(&lines);
        assert_eq!(logged[0]["bytes"], "4096");
        assert_eq!(logged[0]["error"], "stopped before the end");
    }

    #[tokio::test]
    async fn a_sendfile_body_leaves_its_line_to_its_last_span() {
        let (lines, _guard) = capture::lines();
        let lane = Lane::default();
        let (f, v) = file(5000);
        let mut body = MediaBody::file(
            f,
            None,
            v,
            0,
            5000,
            4096,
            line(),
            Delivery::http1(&lane, true),
        );
        let only = body.frame().await.expect("a frame").expect("ok");
        assert_eq!(only.data_ref().map(Bytes::len), Some(5000));
        assert!(body.is_end_stream());
        drop(body);
        // Every byte handed over, none sent: the line waits for the lane.
        assert!(capture::taken(&lines).is_empty());
        drop(lane);
        let logged = capture::taken(&lines);
        assert_eq!(logged.len(), 1, "{logged:?}");
        assert_eq!(logged[0]["bytes"], "0");
        assert_eq!(logged[0]["error"], "stopped before the end");
    }
}
