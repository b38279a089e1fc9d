//! What an HTTP/2 client that stops reading can make the server hold.
//!
//! A file of its own: the check reads this process's resident memory, which
//! other tests running beside it would disturb.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

mod common;

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use common::TestServer;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// A client socket that reads the server's first `allowance` bytes (its
/// settings) and then never reads again, while it keeps writing.
struct StopsReading {
    stream: TcpStream,
    allowance: usize,
}

impl AsyncRead for StopsReading {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        if self.allowance == 0 {
            // Never woken: the socket is simply not read any more.
            return Poll::Pending;
        }
        let mut scratch = [0u8; 1024];
        let allowance = self.allowance.min(buf.remaining()).min(scratch.len());
        let mut limited = ReadBuf::new(&mut scratch[..allowance]);
        let polled = Pin::new(&mut self.stream).poll_read(cx, &mut limited);
        buf.put_slice(limited.filled());
        self.allowance -= limited.filled().len();
        polled
    }
}

impl AsyncWrite for StopsReading {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, data)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

/// This process's resident memory, in bytes.
fn resident() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib * 1024
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_clients_that_stop_reading_pin_little_memory() {
    const CONNECTIONS: usize = 3;
    const STREAMS: usize = 128;
    let s = TestServer::start().await;
    // Warm up: one whole download over HTTP/2, so that the allocator's
    // and the runtime's own first growth is not counted.
    let mut sender = common::http2_sender(TcpStream::connect(s.addr).await.unwrap()).await;
    let uri = format!("http://{}{}", s.addr, s.target("/big.bin"));
    let req = http::Request::get(&uri)
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .unwrap();
    let body = sender.send_request(req).await.unwrap().into_body();
    let body = http_body_util::BodyExt::collect(body).await.unwrap();
    assert_eq!(body.to_bytes().len(), 3_000_000);
    let before = resident();

    // Clients that open every window as wide as HTTP/2 allows, ask for
    // the 3 MB file on every stream, and stop reading: all the server may
    // send is then held by the server, or refused by it.
    let mut held = Vec::new();
    for _ in 0..CONNECTIONS {
        let io = StopsReading {
            stream: TcpStream::connect(s.addr).await.unwrap(),
            allowance: 1024,
        };
        let (mut sender, conn) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
            .initial_stream_window_size(i32::MAX as u32)
            .initial_connection_window_size(i32::MAX as u32)
            .handshake::<_, http_body_util::Empty<bytes::Bytes>>(TokioIo::new(io))
            .await
            .unwrap();
        held.push(tokio::spawn(async move {
            let _ = conn.await;
        }));
        for _ in 0..STREAMS {
            let req = http::Request::get(&uri)
                .body(http_body_util::Empty::new())
                .unwrap();
            // Never answered to this client: it reads nothing.
            let pending = sender.send_request(req);
            held.push(tokio::spawn(async move {
                let _ = pending.await;
            }));
        }
        held.push(tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            drop(sender);
        }));
    }
    // Time for the server to fill the sockets and whatever it buffers.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let grown = resident().saturating_sub(before);

    // Each stream holds less than three 16 KiB chunks, and a connection
    // has at most 32 streams: under 1.5 MiB a connection. (Before the
    // bound, about 70 MiB a connection.)
    let bound = (CONNECTIONS as u64 * 10) << 20;
    assert!(
        grown < bound,
        "{CONNECTIONS} stalled HTTP/2 connections grew the process by {} KiB",
        grown >> 10
    );
    // The server still answers others.
    let r = s.get(&s.target("/pub/a.txt"), &[]).await;
    assert_eq!(r.status, 200);
    for task in held {
        task.abort();
    }
}
