//! What the integration tests share: the built `mediagate` run as a
//! command or a server, real nginx and Caddy processes of their own, and
//! waiting for a condition.

#![allow(dead_code)] // each test file uses its own part

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

pub fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_mediagate"));
    c.env_remove("MEDIAGATE_KEYS")
        .env_remove("MEDIAGATE_KEYS_FILE")
        .env("MEDIAGATE_LOG", "info")
        .env("NO_COLOR", "1");
    c
}

pub fn run(args: &[&str]) -> (i32, String, String) {
    let out = bin().args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A running `mediagate serve`, killed if a test ends (fails) without
/// stopping it: a server left running would keep the test run's output
/// open, and the run from ending.
pub struct Served(pub std::process::Child);

impl Served {
    pub fn id(&self) -> u32 {
        self.0.id()
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// Starts `mediagate serve` with `cmd`'s arguments; returns the child, its
/// stderr lines, and the address it logged.
pub fn start_server(
    mut cmd: Command,
) -> (
    Served,
    std::io::Lines<BufReader<std::process::ChildStderr>>,
    String,
) {
    let mut child = Served(cmd.stderr(Stdio::piped()).spawn().unwrap());
    let child_stderr = child.0.stderr.take().unwrap();
    let mut lines = BufReader::new(child_stderr).lines();
    let addr = loop {
        let line = lines.next().expect("server exited early").unwrap();
        if let Some(rest) = line.split("addr=").nth(1) {
            break rest.split_whitespace().next().unwrap().to_owned();
        }
    };
    (child, lines, addr)
}

/// A server's stderr lines, read on a thread of their own, so that a
/// server that stops logging fails a test (a receive with a timeout)
/// instead of hanging it.
pub fn lines_on_a_thread(
    lines: std::io::Lines<BufReader<std::process::ChildStderr>>,
) -> std::sync::mpsc::Receiver<String> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in lines {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// A link for user 7 signed by the CLI with `keys` and the options in
/// `args`, which must succeed; the line it prints, trimmed.
pub fn sign_for_7(keys: &str, args: &[&str]) -> String {
    let mut all = vec!["sign", "--keys", keys, "--user", "7"];
    all.extend_from_slice(args);
    let (code, url, err) = run(&all);
    assert_eq!(code, 0, "{args:?}: {err}");
    url.trim().to_owned()
}

/// A temporary directory holding a new keys file and a media root with
/// `a.txt`; the directory, the keys file's path and the root.
pub fn keys_and_media(a_txt: &str) -> (tempfile::TempDir, String, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys.toml").to_str().unwrap().to_owned();
    assert_eq!(run(&["keygen", "--out", &keys]).0, 0);
    let root = dir.path().join("media");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::write(root.join("a.txt"), a_txt).unwrap();
    (dir, keys, root)
}

/// Sends SIGTERM to `child` and checks that it exits cleanly.
pub fn stop(mut child: Served) {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    assert!(child.0.wait().unwrap().success());
}

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
pub struct Stopped(pub std::process::Child);

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
