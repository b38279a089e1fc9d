//! An axum app that mints links for its logged-in user and serves them from
//! the verifier mounted under `/media` in the same router. The links are
//! bound to the user's address: a middleware hands each connection's
//! address to the verifier as a `PeerAddr` extension, which is how an
//! embedded verifier learns it.
//!
//! Run: `cargo run --example axum_embed` and open the printed address, or
//! `cargo run --example axum_embed -- --self-test` to exercise it once and
//! exit (CI does this).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::{ConnectInfo, Query, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use mediagate::signer::time::Duration;
use mediagate::signer::{Key, Keyring, Signer};
use mediagate::verifier::{AccessLog, MediaGate, PeerAddr};

#[derive(Clone)]
struct App {
    signer: Arc<Signer>,
}

#[derive(serde::Deserialize)]
struct Want {
    file: String,
}

/// A stand-in for real authentication: the user id from a session cookie.
fn logged_in_user(headers: &HeaderMap) -> Option<String> {
    let cookies = headers.get("cookie")?.to_str().ok()?;
    cookies
        .split(';')
        .filter_map(|c| c.trim().strip_prefix("session="))
        .map(str::to_owned)
        .next()
}

/// `/download?file=/reports/q3.pdf`: checks the session, then redirects to
/// a short-lived signed link for that user at this address.
async fn download(
    State(app): State<App>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Query(want): Query<Want>,
) -> impl IntoResponse {
    let Some(user) = logged_in_user(&headers) else {
        return (StatusCode::UNAUTHORIZED, "log in first\n").into_response();
    };
    match app
        .signer
        .link(&user, &want.file)
        .client_ip(peer.ip())
        .ttl(Duration::minutes(2))
        .sign()
    {
        Ok(link) => Redirect::to(&link.url("/media")).into_response(),
        Err(e) => (StatusCode::BAD_REQUEST, format!("{e}\n")).into_response(),
    }
}

/// Hands the connection's address to the verifier, which checks IP-bound
/// links against it (without it they are refused: 403 `ip`).
async fn peer_addr(
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    mut req: Request,
    next: Next,
) -> Response {
    req.extensions_mut().insert(PeerAddr(peer));
    next.run(req).await
}

fn router(root: &std::path::Path) -> Result<Router, Box<dyn std::error::Error>> {
    let keyring = Keyring::new(Key::generate("app")?);
    let signer = Signer::new(keyring.clone());
    // axum's nest_service strips "/media" before the gate sees the path, so
    // the gate itself is mounted at "/"; links are rendered under "/media".
    let gate = MediaGate::builder(root, keyring).build()?;
    let app = App {
        signer: Arc::new(signer),
    };
    Ok(Router::new()
        .route("/download", get(download))
        // One access-log line per media request (target mediagate::access).
        .nest_service("/media", AccessLog::new(gate))
        .layer(middleware::from_fn(peer_addr))
        .with_state(app))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    std::fs::create_dir_all(dir.path().join("reports"))?;
    std::fs::write(
        dir.path().join("reports/q3.pdf"),
        b"%PDF-1.4 quarterly figures",
    )?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let app = router(dir.path())?;
    let self_test = std::env::args().any(|a| a == "--self-test");
    let app = app.into_make_service_with_connect_info::<SocketAddr>();
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    if !self_test {
        println!("try: curl -iL -b session=alice 'http://{addr}/download?file=/reports/q3.pdf'");
        server.await??;
        return Ok(());
    }
    check(addr).await?;
    println!("axum_embed self-test passed");
    Ok(())
}

/// Logs in, follows the redirect, and gets the file; without a session the
/// app refuses, and without a link the verifier does.
async fn check(addr: SocketAddr) -> Result<(), Box<dyn std::error::Error>> {
    let res = fetch(addr, "/download?file=/reports/q3.pdf", Some("alice")).await?;
    assert!(res.starts_with("HTTP/1.1 303"), "{res}");
    let location = res
        .lines()
        .find_map(|l| l.strip_prefix("location: "))
        .ok_or("no redirect")?
        .trim()
        .to_owned();
    let file = fetch(addr, &location, None).await?;
    assert!(file.starts_with("HTTP/1.1 200"), "{file}");
    assert!(file.ends_with("%PDF-1.4 quarterly figures"));
    // The same link from another address (127.0.0.2 is loopback too).
    let elsewhere = fetch_from([127, 0, 0, 2].into(), addr, &location, None).await?;
    assert!(elsewhere.starts_with("HTTP/1.1 403"), "{elsewhere}");
    assert!(elsewhere.ends_with("ip\n"), "{elsewhere}");
    assert!(
        fetch(addr, "/download?file=/reports/q3.pdf", None)
            .await?
            .starts_with("HTTP/1.1 401")
    );
    assert!(
        fetch(addr, "/media/reports/q3.pdf", None)
            .await?
            .starts_with("HTTP/1.1 403")
    );
    Ok(())
}

async fn fetch(addr: SocketAddr, target: &str, session: Option<&str>) -> std::io::Result<String> {
    fetch_from([127, 0, 0, 1].into(), addr, target, session).await
}

/// One request to `addr` from the local address `from`; the whole response.
async fn fetch_from(
    from: std::net::Ipv4Addr,
    addr: SocketAddr,
    target: &str,
    session: Option<&str>,
) -> std::io::Result<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.bind((from, 0).into())?;
    let mut s = socket.connect(addr).await?;
    let cookie = session
        .map(|u| format!("Cookie: session={u}\r\n"))
        .unwrap_or_default();
    s.write_all(
        format!("GET {target} HTTP/1.1\r\nHost: x\r\n{cookie}Connection: close\r\n\r\n").as_bytes(),
    )
    .await?;
    let mut out = String::new();
    s.read_to_string(&mut out).await?;
    Ok(out)
}
