//! Running out of file descriptors (EMFILE): the server answers 503 with
//! Retry-After instead of failing, backs off on accept, and recovers as
//! soon as descriptors are free again. A test binary of its own, because it
//! lowers the whole process's descriptor limit.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

mod common;

use std::fs::File;
use std::time::Duration;

use common::TestServer;
use rustix::process::{Resource, getrlimit, setrlimit};

fn open_fds() -> u64 {
    std::fs::read_dir("/proc/self/fd").unwrap().count() as u64
}

/// Opens /dev/null until the process is out of descriptors.
fn exhaust() -> Vec<File> {
    let mut held = Vec::new();
    while let Ok(f) = File::open("/dev/null") {
        held.push(f);
    }
    held
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_descriptors_is_a_503_then_recovers() {
    let s = TestServer::start().await;
    // Files above the cache's size limit always need a descriptor.
    let target = s.target("/big.bin");
    std::fs::write(s.root.join("big2.bin"), vec![b'2'; 64 << 10]).unwrap();
    let _ = s.get(&s.target("/pub/a.txt"), &[]).await;
    let saved = getrlimit(Resource::Nofile);
    let mut low = saved;
    low.current = Some(open_fds() + 32);
    setrlimit(Resource::Nofile, low).unwrap();

    // 1. No descriptor for the file: 503 busy with Retry-After. Leave two
    //    free: the client's socket and the server's accepted one.
    let mut held = exhaust();
    held.truncate(held.len().saturating_sub(2));
    let r = s.request("HEAD", &target, &[]).await;
    assert_eq!(r.status, 503);
    assert_eq!(r.header("retry-after"), Some("1"));
    drop(held);
    assert_eq!(s.request("HEAD", &target, &[]).await.status, 200);

    // 2. No descriptor to accept with: a client (another process) waits in
    //    the backlog while the server backs off, and is served once
    //    descriptors are free again.
    let port = s.addr.port();
    let script = format!(
        "sleep 0.3; exec 3<>/dev/tcp/127.0.0.1/{port}; \
         printf 'HEAD {target} HTTP/1.1\\r\\nHost: x\\r\\nConnection: close\\r\\n\\r\\n' >&3; \
         timeout 20 head -c 12 <&3"
    );
    let child = std::process::Command::new("bash")
        .args(["-c", &script])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let held = exhaust();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    drop(held);
    let out = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
        .await
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "HTTP/1.1 200");

    // 3. The file cache keeps big.bin's descriptor for reuse; out of
    //    descriptors, it gives that one back, and another file is served.
    let mut held = exhaust();
    held.truncate(held.len().saturating_sub(2));
    let r = s.request("HEAD", &s.target("/big2.bin"), &[]).await;
    drop(held);
    assert_eq!(r.status, 200);

    setrlimit(Resource::Nofile, saved).unwrap();
    assert_eq!(s.get(&s.target("/pub/a.txt"), &[]).await.status, 200);
    s.shutdown().await.unwrap();
}
