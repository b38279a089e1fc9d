//! The file cache over the wire: a switched root, revalidation windows on every worker, and deleted large files let go of.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

mod common;

use common::{TestServer, raw, validators};
use mediagate_verifier::signer::time::Duration;
use mediagate_verifier::{CacheLimits, ServerConfig};

/// A root given as a symlink is resolved when the gate is built and when
/// it is reopened, never per request: switching the link (a deployment's
/// `current` to its next release) takes effect at `reopen_root`, after
/// which nothing is served from the old directory, neither a cached small
/// file nor a kept descriptor of a large one.
#[tokio::test]
async fn reopening_the_root_follows_a_switched_symlink() {
    use mediagate_verifier::signer::{Key, Keyring, Signer};
    let dir = tempfile::tempdir().unwrap();
    let release = |name: &str, fill: u8| {
        let d = dir.path().join(name);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("x.txt"), format!("release {name}\n")).unwrap();
        std::fs::write(d.join("big.bin"), vec![fill; 100_000]).unwrap();
        d
    };
    let (a, b) = (release("a", b'a'), release("b", b'b'));
    std::fs::write(a.join("only-in-a.txt"), "old\n").unwrap();
    let current = dir.path().join("current");
    std::os::unix::fs::symlink(&a, &current).unwrap();
    let keyring = Keyring::new(Key::new("k", &[3u8; 32]).unwrap());
    let gate = mediagate_verifier::MediaGate::builder(&current, keyring.clone())
        .build()
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let served = tokio::spawn(mediagate_verifier::serve(
        listener,
        gate.clone(),
        ServerConfig::default(),
        async {
            let _ = stopped.await;
        },
    ));
    let signer = Signer::new(keyring);
    let get = |path: &'static str| {
        let url = signer
            .link("u", path)
            .ttl(Duration::minutes(5))
            .url("")
            .unwrap();
        async move {
            let request = format!("GET {url} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
            raw(addr, request.as_bytes()).await
        }
    };
    assert_eq!(gate.root(), a.canonicalize().unwrap());
    assert_eq!(get("/x.txt").await.body, b"release a\n");
    assert_eq!(get("/big.bin").await.body, vec![b'a'; 100_000]);
    // Switched (atomically, as deployments do): still the old release
    // until the root is reopened.
    let next = dir.path().join("next");
    std::os::unix::fs::symlink(&b, &next).unwrap();
    std::fs::rename(&next, &current).unwrap();
    assert_eq!(get("/x.txt").await.body, b"release a\n");
    assert_eq!(gate.reopen_root().unwrap(), b.canonicalize().unwrap());
    assert_eq!(gate.root(), b.canonicalize().unwrap());
    // Past the revalidation window (1 ms by default).
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    assert_eq!(get("/x.txt").await.body, b"release b\n");
    assert_eq!(get("/big.bin").await.body, vec![b'b'; 100_000]);
    assert_eq!(get("/only-in-a.txt").await.status, 404);
    // A root that cannot be opened: an error, and the gate keeps serving.
    std::fs::remove_file(&current).unwrap();
    assert!(gate.reopen_root().is_err());
    assert_eq!(get("/x.txt").await.body, b"release b\n");
    stop.send(()).unwrap();
    served.await.unwrap().unwrap();
}

/// Longer than the default revalidation window (1 ms), with room for a
/// slow machine's timer.
const PAST_THE_WINDOW: std::time::Duration = std::time::Duration::from_millis(20);

#[tokio::test]
async fn no_worker_serves_a_changed_file_after_its_window() {
    // Each worker caches files on its own; every one must revalidate.
    let s = TestServer::start_workers(2).await;
    let t = s.target("/pub/a.txt");
    let fetch_all = |want: &'static str| {
        let s = &s;
        let t = &t;
        async move {
            // Many connections: the kernel spreads them over both workers,
            // and each fetch after the first is a cache hit in its worker.
            for _ in 0..24 {
                let r = s.get(t, &[]).await;
                assert_eq!(r.status, 200);
                assert_eq!(r.text(), want);
            }
        }
    };
    fetch_all("hello world\n").await;
    std::fs::write(s.root.join("pub/new.txt"), "replaced\n").unwrap();
    std::fs::rename(s.root.join("pub/new.txt"), s.root.join("pub/a.txt")).unwrap();
    tokio::time::sleep(PAST_THE_WINDOW).await;
    fetch_all("replaced\n").await;
    std::fs::write(s.root.join("pub/a.txt"), "REPLACED\n").unwrap();
    tokio::time::sleep(PAST_THE_WINDOW).await;
    fetch_all("REPLACED\n").await;
    s.shutdown().await.unwrap();
}

#[tokio::test]
async fn revalidating_every_hit_never_serves_a_changed_file() {
    let mut strict = CacheLimits::default();
    strict.revalidate_after = std::time::Duration::ZERO;
    let s = TestServer::start_with(|b| b.cache_limits(strict), ServerConfig::default()).await;
    let t = s.target("/pub/a.txt");
    assert_eq!(s.get(&t, &[]).await.text(), "hello world\n");
    assert_eq!(s.get(&t, &[]).await.text(), "hello world\n");
    // Replaced by rename (how deploys and rsync publish files).
    std::fs::write(s.root.join("pub/new.txt"), "replaced\n").unwrap();
    std::fs::rename(s.root.join("pub/new.txt"), s.root.join("pub/a.txt")).unwrap();
    let r = s.get(&t, &[]).await;
    assert_eq!(r.text(), "replaced\n");
    assert_eq!(r.header("content-length"), Some("9"));
    // Rewritten in place, same length.
    std::fs::write(s.root.join("pub/a.txt"), "REPLACED\n").unwrap();
    assert_eq!(s.get(&t, &[]).await.text(), "REPLACED\n");
    // Removed.
    std::fs::remove_file(s.root.join("pub/a.txt")).unwrap();
    assert_eq!(s.get(&t, &[]).await.status, 404);
    s.shutdown().await.unwrap();
}

#[tokio::test]
async fn within_its_window_a_cached_version_is_served_whole_and_consistent() {
    let mut lazy = CacheLimits::default();
    lazy.revalidate_after = std::time::Duration::from_secs(3600);
    let s = TestServer::start_with(|b| b.cache_limits(lazy), ServerConfig::default()).await;
    let t = s.target("/pub/a.txt");
    let before = validators(&s, &t).await;
    std::fs::write(s.root.join("pub/new.txt"), "a longer replacement\n").unwrap();
    std::fs::rename(s.root.join("pub/new.txt"), s.root.join("pub/a.txt")).unwrap();
    // The version confirmed last, never a mix of old validators and new
    // bytes.
    let r = s.get(&t, &[]).await;
    assert_eq!(r.text(), "hello world\n");
    assert_eq!(r.header("content-length"), Some("12"));
    assert_eq!(validators(&s, &t).await, before);
    s.shutdown().await.unwrap();
}

/// Whether this process holds a descriptor of `path` after its deletion.
fn holds_deleted(path: &std::path::Path) -> bool {
    let wanted = format!("{} (deleted)", path.display());
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .any(|target| target.to_string_lossy() == wanted)
}

#[tokio::test]
async fn a_deleted_large_file_is_let_go_of_once_unused() {
    let unused = std::time::Duration::from_millis(600);
    let mut limits = CacheLimits::default();
    limits.close_unused_after = unused;
    let s = TestServer::start_with(|b| b.cache_limits(limits), ServerConfig::default()).await;
    let t = s.target("/big.bin");
    let big = s.root.join("big.bin");
    let started = std::time::Instant::now();
    assert_eq!(s.request("HEAD", &t, &[]).await.status, 200);
    assert_eq!(s.get(&t, &[]).await.status, 200, "served again");
    std::fs::remove_file(&big).unwrap();
    if started.elapsed() < unused {
        // Kept for the next request, and so still pinning the space.
        assert!(holds_deleted(&big));
    }
    // The server's sweep closes it without another request.
    let deadline = started + 4 * unused;
    while holds_deleted(&big) {
        assert!(
            std::time::Instant::now() < deadline,
            "a deleted file's descriptor is still held"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(s.get(&t, &[]).await.status, 404);
    s.shutdown().await.unwrap();
}
