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

use crate::access_log::AccessLog;
use crate::sendfile::{self, Lane};
use crate::slots::Responding;

/// Chunk buffers kept per response for reuse.
const POOL: usize = 2;

/// The largest chunk an HTTP/2 response reads at a time: one DATA frame
/// at the protocol's default frame size. A connection holds a few chunks
/// per open stream at most (see `server.rs`), so this, times the streams
/// a client may open, bounds what a client that stops reading can pin.
pub(crate) const HTTP2_CHUNK: usize = 16 * 1024;

/// How the connection a response goes out on takes a file's bytes.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Delivery<'a> {
    /// Read into chunks of the configured size (an embedding server's
    /// connections, and the bundled server's HTTP/1 without `sendfile`).
    Chunks,
    /// Read into chunks of at most [`HTTP2_CHUNK`]: an HTTP/2 stream of the
    /// bundled server, one of up to 128 on a connection.
    Frames,
    /// Sent by the connection itself with `sendfile` (HTTP/1 over TCP).
    Sendfile(&'a Lane),
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
    File(FileStream),
}

/// A byte range of a file, read chunk by chunk as the connection asks for
/// more: at most one chunk per response is in memory, and a slow client
/// slows the reads (backpressure).
#[derive(Debug)]
struct FileStream {
    file: Arc<File>,
    offset: u64,
    remaining: u64,
    chunk: usize,
    sent: u64,
    /// Chunks handed out, to be reused when the connection is done with them.
    pool: Vec<Bytes>,
    log: Option<AccessLog>,
    /// Set when the connection sends file spans itself (HTTP/1 over TCP):
    /// the body then hands out placeholders instead of reading.
    lane: Option<Lane>,
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
    /// [`crate::sendfile`]), or read in pieces of up to `chunk` bytes.
    pub(crate) fn file(
        file: Arc<File>,
        offset: u64,
        len: u64,
        chunk: usize,
        log: AccessLog,
        delivery: Delivery<'_>,
    ) -> Self {
        let (chunk, lane) = match delivery {
            Delivery::Chunks => (chunk, None),
            Delivery::Frames => (chunk.min(HTTP2_CHUNK), None),
            Delivery::Sendfile(lane) => (chunk, Some(lane.clone())),
        };
        MediaBody {
            kind: Kind::File(FileStream {
                file,
                offset,
                remaining: len,
                chunk,
                sent: 0,
                pool: Vec::new(),
                log: Some(log),
                lane,
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
        let Some(lane) = &self.lane else {
            return self.read_chunk();
        };
        let span = self.remaining.min(sendfile::MAX_SPAN as u64) as usize;
        let placeholder = lane.push(&self.file, self.offset, span);
        self.offset += span as u64;
        self.remaining -= span as u64;
        self.sent += span as u64;
        Ok(placeholder)
    }

    fn read_chunk(&mut self) -> io::Result<Bytes> {
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

    fn finish(&mut self, error: Option<&io::Error>) {
        if let Some(log) = self.log.take() {
            log.finish(self.sent, error.map(|e| e.to_string()));
        }
    }
}

impl Drop for FileStream {
    fn drop(&mut self) {
        if self.remaining > 0 {
            let aborted = io::Error::new(io::ErrorKind::ConnectionAborted, "client went away");
            self.finish(Some(&aborted));
        } else {
            self.finish(None);
        }
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
                        // the response is in progress until it is sent.
                        if let (0, Some(lane)) = (stream.remaining, &stream.lane) {
                            if let Some(responding) = responding.take() {
                                lane.ends_with(responding);
                            }
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
            Kind::File(stream) => stream.remaining == 0,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Empty => SizeHint::with_exact(0),
            Kind::Full(data) => SizeHint::with_exact(data.as_ref().map_or(0, |d| d.len() as u64)),
            Kind::File(stream) => SizeHint::with_exact(stream.remaining),
        }
    }
}
