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

use crate::files::budget::Held;
use crate::files::fs::{Identity, check_version};

/// Chunk buffers kept per response for reuse.
const POOL: usize = 2;

/// How many bytes are sent between two checks that the file is still the
/// version being sent (one `statx` each); the last chunk is always checked
/// after it is read, so a body never mixes two versions unnoticed.
pub(crate) const CHECK_EVERY: u64 = 1 << 20;

/// The body of every response the service sends: empty, a short text, or
/// a byte range of a file.
///
/// A file body is read chunk by chunk as the connection asks for more; a
/// server that can send a file's bytes another way (the bundled one, with
/// `sendfile`) takes the range out and sends it itself.
#[derive(Debug)]
pub struct MediaBody {
    kind: Kind,
}

#[derive(Debug)]
enum Kind {
    Empty,
    Full(Option<Bytes>),
    /// A line of static text, sent as the text and then its newline (no
    /// allocation for a refusal's reason code).
    Line(Option<&'static str>, bool),
    File(FileBody),
    /// A body, and something to keep until it is dropped (see
    /// [`MediaBody::holding`]).
    Holding(Box<(MediaBody, Kept)>),
}

/// What a [`Kind::Holding`] body keeps: a request body left unread.
struct Kept(#[allow(dead_code)] std::sync::Mutex<Box<dyn std::any::Any + Send>>);

impl std::fmt::Debug for Kept {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Kept")
    }
}

/// A byte range of one version of a file, read chunk by chunk as the
/// connection asks for more: at most one chunk per response is in memory,
/// and a slow client slows the reads (backpressure).
#[derive(Debug)]
pub(crate) struct FileBody {
    file: Arc<File>,
    /// The place the open file holds out of its worker's (see `budget`),
    /// until the last byte is sent.
    place: Option<Held>,
    /// The version the response's headers describe: checked now and then
    /// while sending, and once after the last byte is read (see
    /// [`CHECK_EVERY`]).
    identity: Identity,
    /// Bytes read since the version was last checked.
    unchecked: u64,
    offset: u64,
    remaining: u64,
    chunk: usize,
    /// Chunks handed out, to be reused when the connection is done with them.
    pool: Vec<Bytes>,
}

/// What a server that sends a file's bytes itself needs of a
/// [`FileBody`] (see [`MediaBody::take_file`]).
#[derive(Debug)]
pub(crate) struct FileRange {
    pub(crate) file: Arc<File>,
    pub(crate) identity: Identity,
    pub(crate) offset: u64,
    pub(crate) len: u64,
    /// To hold until the last byte is sent.
    pub(crate) place: Option<Held>,
}

impl MediaBody {
    pub(crate) fn empty() -> Self {
        MediaBody { kind: Kind::Empty }
    }

    pub(crate) fn text(text: &'static str) -> Self {
        MediaBody {
            kind: Kind::Full(Some(Bytes::from_static(text.as_bytes()))),
        }
    }

    /// This body, keeping `held` until it is dropped. An upload refused
    /// before its request body was read keeps that body here: on HTTP/2,
    /// dropping it once the response is sent resets the stream with
    /// `NO_ERROR`, which tells the client to stop sending and still read
    /// the answer (RFC 9113 §8.1); dropped earlier, the reset would come
    /// first (`CANCEL`) and the client would never see the refusal.
    pub(crate) fn holding(self, held: Box<dyn std::any::Any + Send>) -> Self {
        MediaBody {
            kind: Kind::Holding(Box::new((self, Kept(std::sync::Mutex::new(held))))),
        }
    }

    /// `text` and a newline.
    pub(crate) fn line(text: &'static str) -> Self {
        MediaBody {
            kind: Kind::Line(Some(text), true),
        }
    }

    /// Bytes already in memory.
    pub(crate) fn bytes(data: Bytes) -> Self {
        MediaBody {
            kind: Kind::Full((!data.is_empty()).then_some(data)),
        }
    }

    /// `len` bytes of `file` (version `identity`) from `offset`, read in
    /// pieces of up to `chunk` bytes; `place` is held until the last is
    /// sent.
    pub(crate) fn file(
        file: Arc<File>,
        place: Option<Held>,
        identity: Identity,
        offset: u64,
        len: u64,
        chunk: usize,
    ) -> Self {
        MediaBody {
            kind: Kind::File(FileBody {
                file,
                place,
                identity,
                unchecked: 0,
                offset,
                remaining: len,
                chunk,
                pool: Vec::new(),
            }),
        }
    }

    /// The file range of a file body none of which was read yet, for a
    /// connection that sends it itself, leaving this body empty; `None`
    /// (and the body as it was) for any other.
    pub(crate) fn take_file(&mut self) -> Option<FileRange> {
        if !matches!(&self.kind, Kind::File(f) if f.unchecked == 0 && f.pool.is_empty()) {
            return None;
        }
        match std::mem::replace(&mut self.kind, Kind::Empty) {
            Kind::File(f) => Some(FileRange {
                file: f.file,
                identity: f.identity,
                offset: f.offset,
                len: f.remaining,
                place: f.place,
            }),
            _ => None,
        }
    }

    /// Reads a file body in chunks of at most `max` bytes.
    pub(crate) fn cap_chunk(&mut self, max: usize) {
        if let Kind::File(f) = &mut self.kind {
            f.chunk = f.chunk.min(max);
        }
    }
}

impl FileBody {
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
            // Every byte is read: were they all of one version? Then the
            // file is no longer read for this response.
            self.check_version()?;
            self.place = None;
        }
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
}

impl Body for MediaBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        match &mut self.kind {
            Kind::Holding(inner) => Pin::new(&mut inner.0).poll_frame(_cx),
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
            Kind::File(file) => {
                if file.remaining == 0 {
                    return Poll::Ready(None);
                }
                // Reads are synchronous, like nginx without aio: from the page
                // cache they take microseconds, far less than a hand-off to a
                // blocking thread pool would cost.
                match file.read_chunk() {
                    Ok(data) => Poll::Ready(Some(Ok(Frame::data(data)))),
                    Err(e) => {
                        file.remaining = 0;
                        file.place = None;
                        Poll::Ready(Some(Err(e)))
                    }
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Holding(inner) => inner.0.is_end_stream(),
            Kind::Empty => true,
            Kind::Full(data) => data.is_none(),
            Kind::Line(text, newline) => text.is_none() && !newline,
            Kind::File(file) => file.remaining == 0,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Holding(inner) => inner.0.size_hint(),
            Kind::Empty => SizeHint::with_exact(0),
            Kind::Full(data) => SizeHint::with_exact(data.as_ref().map_or(0, |d| d.len() as u64)),
            Kind::Line(text, newline) => {
                SizeHint::with_exact((text.map_or(0, str::len) + usize::from(*newline)) as u64)
            }
            Kind::File(file) => SizeHint::with_exact(file.remaining),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use http_body_util::BodyExt as _;
    use std::io::Write as _;

    /// A file of `len` bytes, and its version.
    pub(crate) fn file(len: usize) -> (Arc<File>, Identity) {
        let mut f = tempfile::tempfile().expect("temp file");
        f.write_all(&vec![3u8; len]).expect("write");
        let version = crate::files::fs::identity_of(&f)
            .expect("statx")
            .expect("a file");
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
        // Rewritten in place (same length) before the last chunk, and
        // before a later chunk past CHECK_EVERY.
        for (len, chunk) in [(10_000usize, 4096usize), (3 << 20, 256 << 10)] {
            let (f, v) = file(len);
            let mut body = MediaBody::file(f.clone(), None, v, 0, len as u64, chunk);
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
            assert!(body.is_end_stream(), "nothing follows the error");
        }
        // Unchanged: every byte, no error.
        let (f, v) = file(10_000);
        let mut body = MediaBody::file(f, None, v, 0, 10_000, 4096);
        let mut sent = 0;
        while let Some(frame) = body.frame().await {
            sent += frame.expect("ok").data_ref().map_or(0, Bytes::len);
        }
        assert_eq!(sent, 10_000);
    }

    #[test]
    fn a_file_body_gives_up_its_range_only_before_it_is_read() {
        let (f, v) = file(10_000);
        let mut body = MediaBody::file(f.clone(), None, v, 100, 900, 4096);
        let range = body.take_file().expect("a file body");
        assert_eq!((range.offset, range.len), (100, 900));
        assert!(body.is_end_stream(), "left empty");
        assert!(MediaBody::line("x").take_file().is_none());
        let mut read = MediaBody::file(f, None, v, 0, 10_000, 4096);
        let waker = std::task::Waker::noop();
        let polled = Pin::new(&mut read).poll_frame(&mut Context::from_waker(waker));
        assert!(matches!(polled, Poll::Ready(Some(Ok(_)))));
        assert!(read.take_file().is_none(), "a chunk went out already");
        assert_eq!(read.size_hint().exact(), Some(10_000 - 4096));
    }

    #[test]
    fn its_place_is_given_back_once_the_last_chunk_is_read() {
        let budget = crate::files::budget::Budget::new(1);
        let (f, v) = file(5000);
        let place = budget.try_take();
        let mut body = MediaBody::file(f, place, v, 0, 5000, 4096);
        let waker = std::task::Waker::noop();
        let mut cx = Context::from_waker(waker);
        let _ = Pin::new(&mut body).poll_frame(&mut cx);
        assert_eq!(budget.used(), 1);
        let _ = Pin::new(&mut body).poll_frame(&mut cx);
        assert_eq!(budget.used(), 0);
    }
}
