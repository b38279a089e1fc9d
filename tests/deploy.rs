//! The deployment recipes in `deploy/`, checked as the tools that run
//! them check them.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

mod support;
use support::{Nginx, Stopped, keys_and_media};

const UNIT: &str = include_str!("../deploy/systemd/mediagate.service");
const NGINX_SITE: &str = include_str!("../deploy/nginx/media.conf");
const BEHIND_NGINX: &str = include_str!("../deploy/nginx/mediagate.toml");
const AT_THE_EDGE: &str = include_str!("../deploy/edge/mediagate.toml");

/// `deploy/systemd/mediagate.service` passes `systemd-analyze verify`
/// without a warning (unknown keys, bad values and sandboxing settings
/// systemd does not know are warnings there, not errors), with its binary
/// and config put where this build has them; and the command it starts
/// accepts its arguments.
#[test]
fn the_systemd_unit_verifies_and_its_command_runs() {
    let dir = tempfile::tempdir().unwrap();
    let bin = env!("CARGO_BIN_EXE_mediagate");
    // The config the unit names, made for this run: keys, media, a port.
    let keys = dir.path().join("keys.toml");
    let status = Command::new(bin)
        .args(["keygen", "--out", keys.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(status.status.success());
    let media = dir.path().join("media");
    std::fs::create_dir_all(&media).unwrap();
    let config = dir.path().join("mediagate.toml");
    std::fs::write(
        &config,
        format!(
            "keys = \"{}\"\nroot = \"{}\"\nlisten = \"127.0.0.1:0\"\n",
            keys.display(),
            media.display()
        ),
    )
    .unwrap();
    let unit = UNIT
        .replace("/usr/local/bin/mediagate", bin)
        .replace("/etc/mediagate/mediagate.toml", config.to_str().unwrap());
    let path = dir.path().join("mediagate.service");
    std::fs::write(&path, &unit).unwrap();
    let verified = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .expect("systemd-analyze (Debian's systemd package; .ci/run installs it)");
    let said = String::from_utf8_lossy(&verified.stderr);
    assert!(verified.status.success(), "{said}");
    assert!(said.trim().is_empty(), "systemd-analyze warns: {said}");
    // ExecStart, checked: its arguments are the command's.
    let exec = unit
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .unwrap();
    let mut words = exec.split_whitespace();
    let checked = Command::new(words.next().unwrap())
        .args(words)
        .arg("--check")
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&checked.stdout);
    assert!(
        checked.status.success(),
        "{}",
        String::from_utf8_lossy(&checked.stderr)
    );
    assert!(out.starts_with("configuration ok"), "{out}");
    // ExecReload sends the signal the server reloads on.
    assert!(unit.contains("ExecReload=/bin/kill -HUP $MAINPID"));
}

/// `text` with `from` replaced by `to`, which must be in it (so that a
/// test that starts a recipe notices when the recipe changes).
fn swap(text: &str, from: &str, to: &str) -> String {
    assert!(text.contains(from), "the recipe no longer says {from:?}");
    text.replace(from, to)
}

/// A test CA and a certificate it signed for media.example.com and
/// 127.0.0.1, made by `openssl` in `dir`: the CA's, the site's and its
/// key's paths.
fn test_certificates(dir: &Path) -> (String, String, String) {
    let path = |name: &str| dir.join(name).to_str().unwrap().to_owned();
    let openssl = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .output()
            .expect("openssl");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let (ca, ca_key) = (path("ca.pem"), path("ca.key"));
    let (site, key, csr, ext) = (
        path("site.pem"),
        path("site.key"),
        path("site.csr"),
        path("ext"),
    );
    openssl(
        &[
            &["req", "-x509"],
            &ec[..],
            &["-keyout", &ca_key, "-out", &ca, "-days", "2"],
            &["-subj", "/CN=mediagate test CA"],
        ]
        .concat(),
    );
    openssl(
        &[
            &["req"],
            &ec[..],
            &[
                "-keyout",
                &key,
                "-out",
                &csr,
                "-subj",
                "/CN=media.example.com",
            ],
        ]
        .concat(),
    );
    std::fs::write(&ext, "subjectAltName=DNS:media.example.com,IP:127.0.0.1\n").unwrap();
    openssl(&[
        "x509",
        "-req",
        "-in",
        &csr,
        "-CA",
        &ca,
        "-CAkey",
        &ca_key,
        "-CAcreateserial",
        "-out",
        &site,
        "-days",
        "2",
        "-extfile",
        &ext,
    ]);
    (ca, site, key)
}

/// `mediagate serve --config config`, started; the server and the address
/// it logs first.
fn serve_recipe(config: &Path) -> (Stopped, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_mediagate"))
        .args(["serve", "--config", config.to_str().unwrap()])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let server = Stopped(child);
    let mut lines = BufReader::new(stderr).lines();
    let addr = loop {
        let line = lines.next().expect("mediagate exited early").unwrap();
        if let Some(rest) = line.split("addr=").nth(1) {
            break rest.split_whitespace().next().unwrap().to_owned();
        }
    };
    std::thread::spawn(move || lines.for_each(drop));
    (server, addr)
}

/// `curl -i --http2` of `url`, trusting `ca`, with a `--resolve` entry
/// and `extra` options; curl's exit code and output.
fn fetch(ca: &str, resolve: &str, url: &str, extra: &[&str]) -> (Option<i32>, String) {
    let out = Command::new("curl")
        .args(["-sS", "-i", "--http2", "--cacert", ca, "--resolve", resolve])
        .args(extra)
        .arg(url)
        .output()
        .expect("curl");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// `deploy/nginx/media.conf` and the `mediagate.toml` beside it, started
/// as written (their certificate, port and paths swapped for this run's):
/// HTTPS and HTTP/2 at nginx, the files from mediagate, and IP-bound links
/// checked against the client's address nginx passes, which a client
/// cannot forge.
#[test]
fn the_nginx_recipe_terminates_tls_and_passes_the_client_address() {
    let bin = env!("CARGO_BIN_EXE_mediagate");
    let (dir, keys, media) = keys_and_media("through nginx\n");
    let keys = keys.as_str();
    let config = dir.path().join("mediagate.toml");
    let toml = swap(BEHIND_NGINX, "/etc/mediagate/keys.toml", keys);
    let toml = swap(&toml, "/srv/media", media.to_str().unwrap());
    std::fs::write(&config, swap(&toml, "127.0.0.1:8080", "127.0.0.1:0")).unwrap();
    let (server, addr) = serve_recipe(&config);
    let (ca, site, key) = test_certificates(dir.path());
    let nginx = Nginx::start_http(|port| {
        let conf = swap(
            NGINX_SITE,
            "listen 443 ssl",
            &format!("listen 127.0.0.1:{port} ssl"),
        );
        let conf = swap(&conf, "/etc/ssl/certs/media.example.com.pem", &site);
        let conf = swap(&conf, "/etc/ssl/private/media.example.com.key", &key);
        swap(&conf, "http://127.0.0.1:8080", &format!("http://{addr}"))
    });
    let origin = format!("https://media.example.com:{}", nginx.port);
    let resolve = format!("media.example.com:{}:127.0.0.1", nginx.port);
    let sign = |extra: &[&str]| {
        let out = Command::new(bin)
            .args([
                "sign", "--keys", keys, "--user", "7", "--path", "/a.txt", "--ttl", "10m",
            ])
            .args(["--base-url", &format!("{origin}/media")])
            .args(extra)
            .output()
            .unwrap();
        assert!(out.status.success());
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    };
    let curl = |url: &str, extra: &[&str]| fetch(&ca, &resolve, url, extra);
    let (_, res) = curl(&sign(&[]), &[]);
    assert!(res.starts_with("HTTP/2 200"), "{res}");
    assert!(res.ends_with("\r\n\r\nthrough nginx\n"), "{res}");
    // Bound to the client's address: served; bound to another: refused,
    // even when the client claims that address itself.
    let (_, res) = curl(&sign(&["--ip", "127.0.0.1"]), &[]);
    assert!(res.starts_with("HTTP/2 200"), "{res}");
    let elsewhere = sign(&["--ip", "203.0.113.9"]);
    let (_, res) = curl(&elsewhere, &["-H", "X-Forwarded-For: 203.0.113.9"]);
    assert!(res.starts_with("HTTP/2 403"), "{res}");
    assert!(res.contains("mediagate-reason: ip"), "{res}");
    // A client that does not trust the test CA does not get through.
    let out = Command::new("curl")
        .args(["-sS", "--resolve", &resolve, &sign(&[])])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(60), "certificate problem expected");
    drop(nginx);
    drop(server);
}

/// `deploy/edge/mediagate.toml`, started as written (its certificate,
/// port and paths swapped for this run's): HTTPS and HTTP/2 from
/// mediagate itself, IP-bound links checked against the peer's own
/// address, and the certificate read again on SIGHUP.
#[test]
fn the_edge_recipe_serves_https_itself() {
    let bin = env!("CARGO_BIN_EXE_mediagate");
    let (dir, keys, media) = keys_and_media("from the edge\n");
    let keys = keys.as_str();
    let (ca, site, key) = test_certificates(dir.path());
    let toml = swap(AT_THE_EDGE, "/etc/mediagate/keys.toml", keys);
    let toml = swap(&toml, "/srv/media", media.to_str().unwrap());
    let toml = swap(&toml, "/etc/mediagate/tls/media.example.com.pem", &site);
    let toml = swap(&toml, "/etc/mediagate/tls/media.example.com.key", &key);
    let config = dir.path().join("mediagate.toml");
    std::fs::write(&config, swap(&toml, "0.0.0.0:443", "127.0.0.1:0")).unwrap();
    let (server, addr) = serve_recipe(&config);
    let port = addr.rsplit(':').next().unwrap();
    let resolve = format!("media.example.com:{port}:127.0.0.1");
    let sign = |extra: &[&str]| {
        let out = Command::new(bin)
            .args(["sign", "--keys", keys, "--user", "7", "--path", "/a.txt"])
            .args([
                "--base-url",
                &format!("https://media.example.com:{port}/media"),
            ])
            .args(extra)
            .output()
            .unwrap();
        assert!(out.status.success());
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    };
    let (_, res) = fetch(&ca, &resolve, &sign(&[]), &[]);
    assert!(res.starts_with("HTTP/2 200"), "{res}");
    assert!(res.ends_with("\r\n\r\nfrom the edge\n"), "{res}");
    // The peer is the client: bound to it, served; to another, refused,
    // whatever the client says of itself.
    let (_, res) = fetch(&ca, &resolve, &sign(&["--ip", "127.0.0.1"]), &[]);
    assert!(res.starts_with("HTTP/2 200"), "{res}");
    let elsewhere = sign(&["--ip", "203.0.113.9"]);
    let (_, res) = fetch(
        &ca,
        &resolve,
        &elsewhere,
        &["-H", "X-Forwarded-For: 203.0.113.9"],
    );
    assert!(res.starts_with("HTTP/2 403"), "{res}");
    assert!(res.contains("mediagate-reason: ip"), "{res}");
    // The reload the recipe promises: still served after SIGHUP.
    let hup = Command::new("kill")
        .args(["-HUP", &server.0.id().to_string()])
        .status();
    assert!(hup.unwrap().success());
    std::thread::sleep(std::time::Duration::from_millis(300));
    let (_, res) = fetch(&ca, &resolve, &sign(&[]), &[]);
    assert!(res.starts_with("HTTP/2 200"), "{res}");
    drop(server);
}
