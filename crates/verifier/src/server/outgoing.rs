//! A response as a connection of the bundled server sends it: the
//! service's response under its access-log line, holding the connection's
//! mark of a response in progress (see `slots`) until it ends; on an
//! HTTP/1 connection with `sendfile`, a file body goes out as spans of its
//! file (see `sendfile`), on HTTP/2 in chunks of at most [`HTTP2_CHUNK`].

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::Response;
use http_body::{Body, Frame, SizeHint};

use crate::access_log::LoggedBody;
use crate::body::MediaBody;
use crate::server::sendfile::{Lane, Spans};
use crate::server::slots::Responding;

/// The largest chunk an HTTP/2 or TLS response reads at a time: one DATA
/// frame at the protocol's default frame size, and the plaintext of one
/// TLS record. A connection holds a few chunks per open stream at most
/// (see `server::HTTP2_MAX_STREAMS`), so this, times the streams a client
/// may open, bounds what a client that stops reading can pin; over TLS,
/// larger chunks would only wait in rustls' buffer, record by record.
pub(crate) const HTTP2_CHUNK: usize = 16 * 1024;

/// The body a connection sends.
#[derive(Debug)]
pub(crate) enum Outgoing {
    /// Read by the body, chunk by chunk (or already in memory).
    Read {
        body: LoggedBody<MediaBody>,
        responding: Option<Responding>,
    },
    /// Sent by the connection itself with `sendfile`.
    Spans(Spans),
}

/// How a connection takes file bodies.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Files<'a> {
    /// Read into chunks of the configured size.
    Chunks,
    /// Read into chunks of at most [`HTTP2_CHUNK`] (HTTP/2, and TLS).
    Frames,
    /// Left in `lane` for `sendfile`.
    Sendfile(&'a Lane),
}

impl Outgoing {
    /// `res` as a connection that takes file bodies as `files` says sends
    /// it, holding `responding` until it ends unless it is a refusal: a
    /// short refusal is no download to protect, so a connection answered
    /// only refusals stays the first to give way at the cap, even while
    /// one waits for a window the client never opens.
    pub(crate) fn response(
        res: Response<LoggedBody<MediaBody>>,
        responding: Responding,
        files: Files<'_>,
    ) -> Response<Outgoing> {
        let refused = res.status().is_client_error() || res.status().is_server_error();
        let responding = (!refused).then_some(responding);
        res.map(|mut body| match files {
            Files::Chunks => Outgoing::Read { body, responding },
            Files::Frames => {
                body.get_mut().cap_chunk(HTTP2_CHUNK);
                Outgoing::Read { body, responding }
            }
            Files::Sendfile(lane) => {
                let (mut media, line) = body.into_parts();
                match media.take_file() {
                    Some(range) => Outgoing::Spans(Spans::new(lane, range, line, responding)),
                    None => Outgoing::Read {
                        body: LoggedBody::rejoin(media, line),
                        responding,
                    },
                }
            }
        })
    }
}

impl Body for Outgoing {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        match self.get_mut() {
            Outgoing::Read { body, responding } => {
                let frame = Pin::new(&mut *body).poll_frame(cx);
                if body.is_end_stream() {
                    // The connection may count as idle once hyper has this.
                    responding.take();
                }
                frame
            }
            Outgoing::Spans(spans) => Pin::new(spans).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Outgoing::Read { body, .. } => body.is_end_stream(),
            Outgoing::Spans(spans) => spans.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Outgoing::Read { body, .. } => body.size_hint(),
            Outgoing::Spans(spans) => spans.size_hint(),
        }
    }
}
