//! What the integration tests share: real nginx and Caddy processes of
//! their own, and waiting for a condition.

#![allow(dead_code)] // each test file uses its own part

use std::process::{Command, Stdio};
use std::time::Duration;

/// Polls `f` every 50 ms for up to `limit`; whether it came true.
pub fn within(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + limit;
    loop {
        if f() {
            return true;
        }
        if std::time::Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A port of 127.0.0.1 free a moment ago, for a server to listen on.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Waits up to 10 s for `what` to listen on `port` of 127.0.0.1.
fn await_listening(port: u16, what: &str) {
    let up = within(Duration::from_secs(10), || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    assert!(up, "{what} did not start");
}

/// A process this test started, stopped with SIGTERM by its PID when
/// dropped (an nginx master stops its workers then; SIGKILL would leave
/// them running, orphaned).
struct Stopped(std::process::Child);

impl Drop for Stopped {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        let _ = self.0.wait();
    }
}

/// A real nginx of our own on a free port of 127.0.0.1; stopped when
/// dropped.
pub struct Nginx {
    _process: Stopped,
    pub port: u16,
    _dir: tempfile::TempDir,
}

impl Nginx {
    /// Runs `server` (a `server { ... }` block's body, its `listen` added).
    pub fn start(server: &str) -> Nginx {
        Nginx::start_http(|port| format!("server {{\n listen 127.0.0.1:{port};\n{server}\n }}\n"))
    }

    /// Runs the `http { ... }` body `http` makes for the port nginx is to
    /// listen on (its own server blocks, as a deployed file has them).
    pub fn start_http(http: impl FnOnce(u16) -> String) -> Nginx {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let d = dir.path().display();
        let body = http(port);
        let conf = format!(
            "worker_processes 1;\ndaemon off;\npid {d}/nginx.pid;\nerror_log {d}/error.log warn;\n\
             events {{ worker_connections 256; }}\nhttp {{\n access_log off;\n\
             client_body_temp_path {d}/body;\n proxy_temp_path {d}/proxy;\n\
             fastcgi_temp_path {d}/fastcgi;\n uwsgi_temp_path {d}/uwsgi;\n scgi_temp_path {d}/scgi;\n\
             {body}}}\n"
        );
        let path = dir.path().join("nginx.conf");
        std::fs::write(&path, conf).unwrap();
        // Debian puts it in /usr/sbin, which a user's PATH may lack.
        let nginx = if std::path::Path::new("/usr/sbin/nginx").exists() {
            "/usr/sbin/nginx"
        } else {
            "nginx"
        };
        let child = Command::new(nginx)
            .args(["-c", path.to_str().unwrap(), "-p", &d.to_string()])
            .stderr(Stdio::null())
            .spawn()
            .expect("nginx (apt install nginx-light; .ci/run installs it)");
        await_listening(port, "nginx");
        Nginx {
            _process: Stopped(child),
            port,
            _dir: dir,
        }
    }
}

/// A real Caddy of our own on a free port of 127.0.0.1, serving `site` (a
/// site block's body) with no admin endpoint and its state in a temporary
/// directory; stopped when dropped.
pub struct Caddy {
    _process: Stopped,
    pub port: u16,
    _dir: tempfile::TempDir,
}

impl Caddy {
    pub fn start(site: &str) -> Caddy {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let conf = format!(
            "{{\n  admin off\n  auto_https off\n}}\n\
             http://:{port} {{\n  bind 127.0.0.1\n{site}\n}}\n"
        );
        let path = dir.path().join("Caddyfile");
        std::fs::write(&path, conf).unwrap();
        let child = Command::new("caddy")
            .args(["run", "--adapter", "caddyfile", "--config"])
            .arg(&path)
            .env("HOME", dir.path())
            .env("XDG_DATA_HOME", dir.path())
            .env("XDG_CONFIG_HOME", dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("caddy (apt install caddy; .ci/run installs it)");
        await_listening(port, "caddy");
        Caddy {
            _process: Stopped(child),
            port,
            _dir: dir,
        }
    }
}

/// Makes `path` and the directories above it readable to nginx's workers
/// (they run as an unprivileged user when nginx starts as root).
pub fn readable_to_all(path: &std::path::Path) {
    use std::os::unix::fs::PermissionsExt as _;
    for p in path
        .ancestors()
        .take_while(|p| p.starts_with(std::env::temp_dir()))
    {
        if p == std::env::temp_dir() {
            break;
        }
        let mode = if p.is_dir() { 0o755 } else { 0o644 };
        let _ = std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode));
    }
}
