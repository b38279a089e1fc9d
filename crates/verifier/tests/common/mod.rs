//! A real server on 127.0.0.1:0 over a temporary media root, and a raw
//! HTTP/1.1 client that sends bytes exactly as given.

#![allow(dead_code, clippy::unwrap_used)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use mediagate_verifier::signer::time::Duration as TtlDuration;
use mediagate_verifier::signer::{Key, Keyring, LinkBuilder, Signer};
use mediagate_verifier::{Builder, KeyringHandle, MediaGate, ServerConfig, Workers};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// What stops a test server.
type BoxFuture = std::pin::Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// Content of the canary files planted outside the root.
pub const CANARY: &str = "CANARY-OUTSIDE-THE-ROOT";

pub struct TestServer {
    pub addr: SocketAddr,
    pub dir: tempfile::TempDir,
    pub root: PathBuf,
    pub signer: Signer,
    pub keyring: Keyring,
    /// Replaces the running gate's keyring (key rotation).
    pub keys: KeyringHandle,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

/// Lays out a media root with sample files, plus canaries beside it.
pub fn media_tree() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("srv/files");
    let write = |p: &Path, data: &[u8]| {
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, data).unwrap();
    };
    write(&root.join("pub/a.txt"), b"hello world\n");
    write(
        &root.join("videos/show/master.m3u8"),
        b"#EXTM3U\nseg-0.ts\n",
    );
    write(&root.join("videos/show/seg-0.ts"), &[0x47; 1000]);
    write(&root.join("videos-private/x.ts"), b"private sibling");
    write(&root.join("docs/report.pdf"), b"%PDF-1.4 fake");
    write(&root.join("empty.bin"), b"");
    let big: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    write(&root.join("big.bin"), &big);
    write(&root.join("café/naïve file.txt"), b"unicode");
    // Canaries outside the root, including a sibling-prefix directory.
    write(&dir.path().join("srv/secret.txt"), CANARY.as_bytes());
    write(&dir.path().join("secret.txt"), CANARY.as_bytes());
    write(
        &dir.path().join("srv/files-evil/secret.txt"),
        CANARY.as_bytes(),
    );
    std::fs::create_dir_all(root.join("dir")).unwrap();
    std::os::unix::fs::symlink(dir.path().join("srv/secret.txt"), root.join("pub/link-out"))
        .unwrap();
    std::os::unix::fs::symlink("../../secret.txt", root.join("pub/rel-out")).unwrap();
    std::os::unix::fs::symlink(dir.path().join("srv"), root.join("dir-out")).unwrap();
    let fifo = root.join("pub/fifo");
    let status = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(status.success());
    (dir, root)
}

impl TestServer {
    pub async fn start() -> TestServer {
        Self::start_with(|b| b, ServerConfig::default()).await
    }

    pub async fn start_with(
        configure: impl FnOnce(Builder) -> Builder,
        config: ServerConfig,
    ) -> TestServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        Self::start_on(addr, configure, |gate, stopped| {
            tokio::spawn(mediagate_verifier::serve(listener, gate, config, stopped))
        })
    }

    /// [`start_with`](Self::start_with), HTTPS with `tls`.
    pub async fn start_tls(config: ServerConfig, tls: mediagate_verifier::Tls) -> TestServer {
        use mediagate_verifier::Listening;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        Self::start_on(
            addr,
            |b| b,
            |gate, stopped| {
                let listening = vec![Listening::tls(listener, tls)];
                tokio::spawn(mediagate_verifier::serve_all(
                    listening, gate, config, stopped,
                ))
            },
        )
    }

    /// The bundled server's multi-threaded mode: `threads` workers, each
    /// with its own runtime, socket and file cache.
    pub async fn start_workers(threads: usize) -> TestServer {
        let workers = Workers::bind("127.0.0.1:0".parse().unwrap(), threads).unwrap();
        Self::start_on(
            workers.local_addr(),
            |b| b,
            |gate, stopped| {
                tokio::task::spawn_blocking(move || {
                    workers.run(gate, ServerConfig::default(), stopped)
                })
            },
        )
    }

    fn start_on<S>(
        addr: SocketAddr,
        configure: impl FnOnce(Builder) -> Builder,
        spawn: S,
    ) -> TestServer
    where
        S: FnOnce(MediaGate, BoxFuture) -> tokio::task::JoinHandle<std::io::Result<()>>,
    {
        let (dir, root) = media_tree();
        let keyring = Keyring::new(Key::new("test", &[42u8; 32]).unwrap());
        let gate: MediaGate = configure(MediaGate::builder(&root, keyring.clone()).mount("/media"))
            .build()
            .unwrap();
        let keys = gate.keyring_handle();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = spawn(
            gate,
            Box::pin(async {
                let _ = stopped.await;
            }),
        );
        TestServer {
            addr,
            dir,
            root,
            signer: Signer::new(keyring.clone()),
            keyring,
            keys,
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// A link for `path` (a prefix when it ends in '/') to user "tester",
    /// valid 10 minutes; tests add or change claims before signing.
    pub fn link<'a>(&'a self, path: &'a str) -> LinkBuilder<'a> {
        self.link_for("tester", path)
    }

    /// [`link`](Self::link) for `user`.
    pub fn link_for<'a>(&'a self, user: &'a str, path: &'a str) -> LinkBuilder<'a> {
        let start = if path.ends_with('/') {
            self.signer.prefix(user, path)
        } else {
            self.signer.link(user, path)
        };
        start.ttl(TtlDuration::minutes(10))
    }

    /// A token for `path`, as [`link`](Self::link) signs it.
    pub fn token(&self, path: &str) -> String {
        self.link(path).sign().unwrap().into_token()
    }

    /// The request target for `path` (decoded) with a fresh token in the query.
    pub fn target(&self, path: &str) -> String {
        self.link(path).url("/media").unwrap()
    }

    pub async fn get(&self, target: &str, headers: &[(&str, &str)]) -> Response {
        self.request("GET", target, headers).await
    }

    pub async fn request(&self, method: &str, target: &str, headers: &[(&str, &str)]) -> Response {
        let mut req = format!("{method} {target} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n");
        for (k, v) in headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        req.push_str("\r\n");
        raw(self.addr, req.as_bytes()).await
    }

    pub async fn shutdown(mut self) -> std::io::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.task.take().unwrap().await.unwrap()
    }
}

#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub raw_len: usize,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Reads `sock` to its end, which must come within `limit`.
pub async fn read_to_eof(sock: &mut TcpStream, limit: Duration) -> Vec<u8> {
    let mut out = Vec::new();
    tokio::time::timeout(limit, sock.read_to_end(&mut out))
        .await
        .expect("the server ends the response in time")
        .expect("read");
    out
}

/// Sends raw bytes on a new connection and reads into `buf` until the
/// server closes it or `limit` passes; whether it closed in time.
pub async fn send_raw(
    addr: SocketAddr,
    request: &[u8],
    buf: &mut Vec<u8>,
    limit: Duration,
) -> bool {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(request).await.unwrap();
    matches!(
        tokio::time::timeout(limit, s.read_to_end(buf)).await,
        Ok(Ok(_))
    )
}

/// Sends raw bytes, reads to EOF (10 s at most), parses one response.
pub async fn raw(addr: SocketAddr, request: &[u8]) -> Response {
    let mut buf = Vec::new();
    send_raw(addr, request, &mut buf, Duration::from_secs(10)).await;
    parse(&buf)
}

pub fn parse(buf: &[u8]) -> Response {
    let end = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no response head in {:?}", String::from_utf8_lossy(buf)));
    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap();
    let status = status_line.split(' ').nth(1).unwrap().parse().unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    Response {
        status,
        headers,
        body: buf[end + 4..].to_vec(),
        raw_len: buf.len(),
    }
}

/// The request side of an HTTP/2 (prior knowledge) client over `stream`;
/// a spawned task drives the connection.
pub async fn http2_sender<S>(
    stream: S,
) -> hyper::client::conn::http2::SendRequest<http_body_util::Empty<bytes::Bytes>>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    use hyper_util::rt::{TokioExecutor, TokioIo};
    let (sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(conn);
    sender
}

/// The ETag and Last-Modified a plain GET of `target` answers with.
pub async fn validators(s: &TestServer, target: &str) -> (String, String) {
    let r = s.get(target, &[]).await;
    let header = |name| r.header(name).unwrap().to_owned();
    (header("etag"), header("last-modified"))
}
