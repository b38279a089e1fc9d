//! HTTPS connections: the handshake, ALPN, the PROXY header before TLS,
//! keep-alive (parked between requests) and large files over TLS, and the
//! handshake's deadline.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

mod common;

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use common::TestServer;
use mediagate_verifier::{ServerConfig, Tls};
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

/// A self-signed certificate for `media.test` written into `dir`, the
/// [`Tls`] that serves it (HTTP/2 offered when `http2`), and a client
/// config that trusts it.
fn certificate(dir: &std::path::Path, http2: bool) -> (Tls, CertificateDer<'static>) {
    let key = rcgen::KeyPair::generate().unwrap();
    let params = rcgen::CertificateParams::new(vec!["media.test".to_owned()]).unwrap();
    let cert = params.self_signed(&key).unwrap();
    std::fs::write(dir.join("site.pem"), cert.pem()).unwrap();
    std::fs::write(dir.join("site.key"), key.serialize_pem()).unwrap();
    let tls = Tls::builder()
        .http2(http2)
        .certificate(dir.join("site.pem"), dir.join("site.key"))
        .build()
        .unwrap();
    (tls, cert.der().clone())
}

/// A TLS client over `tcp` that trusts `ca` and offers `alpn`.
async fn handshake<S: AsyncRead + AsyncWrite + Unpin>(
    tcp: S,
    ca: &CertificateDer<'static>,
    alpn: &[&[u8]],
) -> tokio_rustls::client::TlsStream<S> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.clone()).unwrap();
    let mut config = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let name = ServerName::try_from("media.test").unwrap();
    connector.connect(name, tcp).await.unwrap()
}

/// Reads one HTTP/1.1 response with a Content-Length from `s`.
async fn response<S: AsyncRead + Unpin>(s: &mut S) -> common::Response {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        s.read_exact(&mut byte).await.unwrap();
        buf.push(byte[0]);
    }
    let head = common::parse(&buf);
    let len: usize = head.header("content-length").unwrap().parse().unwrap();
    let mut body = vec![0u8; len];
    s.read_exact(&mut body).await.unwrap();
    buf.extend_from_slice(&body);
    common::parse(&buf)
}

/// A test server speaking TLS with a new certificate (HTTP/2 offered when
/// `http2`), the certificate for clients to trust, and the directory that
/// holds it.
async fn tls_server(
    http2: bool,
    config: ServerConfig,
) -> (TestServer, CertificateDer<'static>, tempfile::TempDir) {
    // The client's crypto, the same as the server's.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let (tls, ca) = certificate(dir.path(), http2);
    let s = TestServer::start_tls(config, tls).await;
    (s, ca, dir)
}

#[tokio::test]
async fn http1_keeps_alive_and_sends_large_files_whole_over_tls() {
    let (s, ca, _dir) = tls_server(true, ServerConfig::default()).await;
    let tcp = TcpStream::connect(s.addr).await.unwrap();
    let mut tls = handshake(tcp, &ca, &[b"http/1.1"]).await;
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
    for path in ["/pub/a.txt", "/big.bin", "/pub/a.txt"] {
        // Quiet long enough to be parked (see `server/park.rs`): the next
        // request wakes the TLS connection from its socket.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let target = s.target(path);
        let req = format!("GET {target} HTTP/1.1\r\nHost: media.test\r\n\r\n");
        tls.write_all(req.as_bytes()).await.unwrap();
        let r = response(&mut tls).await;
        assert_eq!(r.status, 200, "{path}");
        let file = std::fs::read(s.root.join(&path[1..])).unwrap();
        assert!(r.body == file, "{path}: the bytes differ");
    }
    s.shutdown().await.unwrap();
}

#[tokio::test]
async fn http2_is_spoken_over_tls_when_alpn_chooses_it() {
    let (s, ca, _dir) = tls_server(true, ServerConfig::default()).await;
    let tcp = TcpStream::connect(s.addr).await.unwrap();
    let tls = handshake(tcp, &ca, &[b"h2", b"http/1.1"]).await;
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let mut sender = common::http2_sender(tls).await;
    let uri = format!("https://media.test{}", s.target("/pub/a.txt"));
    let request = http::Request::get(uri).body(http_body_util::Empty::new());
    let res = sender.send_request(request.unwrap()).await.unwrap();
    assert_eq!(
        (res.status().as_u16(), res.version()),
        (200, http::Version::HTTP_2)
    );
    s.shutdown().await.unwrap();
}

#[tokio::test]
async fn without_alpn_h2_a_preface_is_no_http2() {
    // HTTP/2 not offered by the server: a client asking for it gets 1.1.
    let (s, ca, _dir) = tls_server(false, ServerConfig::default()).await;
    let tcp = TcpStream::connect(s.addr).await.unwrap();
    let mut tls = handshake(tcp, &ca, &[b"h2", b"http/1.1"]).await;
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
    // HTTP/2 with prior knowledge anyway: read as HTTP/1, and refused.
    tls.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
        .await
        .unwrap();
    let mut out = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), tls.read_to_end(&mut out)).await;
    assert!(read.is_ok(), "the server closes the connection");
    assert!(
        out.starts_with(b"HTTP/1.1 4"),
        "{}",
        String::from_utf8_lossy(&out)
    );
    s.shutdown().await.unwrap();
}

/// A TCP stream that sends `header` in one write with the first bytes
/// written to it (a ClientHello): as one segment, read at once. With no
/// header, a plain TCP stream.
struct HeaderFirst {
    tcp: TcpStream,
    header: Vec<u8>,
    /// How much of the first write joined the header, once it has.
    joined: Option<usize>,
}

impl AsyncRead for HeaderFirst {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.tcp).poll_read(cx, buf)
    }
}

impl AsyncWrite for HeaderFirst {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = &mut *self;
        if this.joined.is_some() && this.header.is_empty() {
            return Pin::new(&mut this.tcp).poll_write(cx, buf);
        }
        let joined = *this.joined.get_or_insert_with(|| {
            this.header.extend_from_slice(buf);
            buf.len()
        });
        while !this.header.is_empty() {
            let n = ready!(Pin::new(&mut this.tcp).poll_write(cx, &this.header))?;
            this.header.drain(..n);
        }
        Poll::Ready(Ok(joined))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.tcp).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.tcp).poll_shutdown(cx)
    }
}

/// A GET over TLS after a PROXY header naming 203.0.113.9, from a listed
/// balancer: the header sent alone, or with the ClientHello in one write.
async fn get_after_a_proxy_header(with_the_client_hello: bool) {
    let config = ServerConfig::default().with_proxy_protocol(vec!["127.0.0.2/32".parse().unwrap()]);
    let (s, ca, _dir) = tls_server(true, config).await;
    let bound = s
        .link("/pub/a.txt")
        .client_ip("203.0.113.9".parse().unwrap())
        .sign()
        .unwrap()
        .url("/media");
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(([127, 0, 0, 2], 0).into()).unwrap();
    let mut tcp = socket.connect(s.addr).await.unwrap();
    let header = b"PROXY TCP4 203.0.113.9 127.0.0.1 4711 443\r\n".to_vec();
    let req = format!("GET {bound} HTTP/1.1\r\nHost: media.test\r\n\r\n");
    let header = if with_the_client_hello {
        header
    } else {
        tcp.write_all(&header).await.unwrap();
        Vec::new()
    };
    let tcp = HeaderFirst {
        tcp,
        header,
        joined: None,
    };
    let mut tls = handshake(tcp, &ca, &[b"http/1.1"]).await;
    tls.write_all(req.as_bytes()).await.unwrap();
    let r = response(&mut tls).await;
    assert_eq!((r.status, r.text().as_str()), (200, "hello world\n"));
    s.shutdown().await.unwrap();
}

#[tokio::test]
async fn tls_follows_a_proxy_header_from_a_listed_balancer() {
    get_after_a_proxy_header(false).await;
}

#[tokio::test]
async fn tls_follows_a_proxy_header_read_with_the_client_hello() {
    // The server hands what follows the header to TLS.
    get_after_a_proxy_header(true).await;
}

#[tokio::test]
async fn a_handshake_not_done_by_the_header_timeout_is_closed() {
    let config = ServerConfig::default().with_header_read_timeout(Duration::from_millis(300));
    let (s, _ca, _dir) = tls_server(true, config).await;
    // The first bytes of a ClientHello, then nothing.
    let mut tcp = TcpStream::connect(s.addr).await.unwrap();
    tcp.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00])
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let mut out = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), tcp.read_to_end(&mut out)).await;
    assert!(read.is_ok(), "closed by the server");
    assert!(started.elapsed() >= Duration::from_millis(250));
    assert!(out.is_empty());
    s.shutdown().await.unwrap();
}
