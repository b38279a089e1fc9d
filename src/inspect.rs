//! `mediagate inspect`: a link's claims, and why it is valid or not.

use std::path::Path;

use anyhow::{Result, anyhow, bail};
use mediagate::signer::revoke::LinkId;
use mediagate::signer::time::format_description::well_known::Rfc3339;
use mediagate::signer::time::{Duration, OffsetDateTime};
use mediagate::signer::{MediaPath, Method, RequestFacts, Verifier, transport};

use crate::keys::load_keys;

/// The token in what was pasted, and the request path when it says one:
/// a URL in the query or path form; what `sign --form cookie` prints (a
/// `Set-Cookie` line, or its value); a `Cookie` header; a query string;
/// or a bare token.
pub(crate) fn locate(input: &str) -> Result<(String, Option<String>)> {
    let input = input.trim();
    let header = |name: &str| {
        input
            .get(..name.len())
            .filter(|head| head.eq_ignore_ascii_case(name))
            .map(|_| input[name.len()..].trim())
    };
    let cookie_name = format!("{}=", transport::COOKIE_NAME);
    let query_name = format!("{}=", transport::QUERY_PARAM);
    if let Some(value) = header("set-cookie:") {
        return from_set_cookie(value);
    }
    if let Some(value) = header("cookie:") {
        let token = transport::token_from_cookie_header(value)
            .map_err(|e| anyhow!("{e}"))?
            .ok_or_else(|| anyhow!("no {} cookie in that header", transport::COOKIE_NAME))?;
        return Ok((token.to_owned(), None));
    }
    if input.starts_with(&cookie_name) && input.contains(';') {
        return from_set_cookie(input);
    }
    if let Some(query) = input
        .strip_prefix('?')
        .or(input.starts_with(&query_name).then_some(input))
    {
        let token = transport::token_from_query(query)
            .map_err(|e| anyhow!("{e}"))?
            .ok_or_else(|| anyhow!("no {} in that query", transport::QUERY_PARAM))?;
        return Ok((token.to_owned(), None));
    }
    if input.contains('/') {
        return split_url(input);
    }
    Ok((input.to_owned(), None))
}

/// The token of a `Set-Cookie` value (`mg_token=...; Path=...; ...`). Its
/// `Path` is the directory or file the browser sends it for, not a request,
/// so no path is returned.
fn from_set_cookie(value: &str) -> Result<(String, Option<String>)> {
    let pair = value.split(';').next().unwrap_or_default().trim();
    match pair.split_once('=') {
        Some((name, token)) if name == transport::COOKIE_NAME && !token.is_empty() => {
            Ok((token.to_owned(), None))
        }
        _ => bail!("that Set-Cookie does not set {}", transport::COOKIE_NAME),
    }
}

/// The token and the decoded request path of a URL.
fn split_url(url: &str) -> Result<(String, Option<String>)> {
    let after_scheme = url.find("://").map_or(url, |i| &url[i + 3..]);
    let Some(slash) = after_scheme.find('/') else {
        return Ok((url.to_owned(), None));
    };
    let path_and_query = &after_scheme[slash..];
    let (path, query) = path_and_query
        .split_once('?')
        .unwrap_or((path_and_query, ""));
    if let Some(t) = transport::token_from_query(query).map_err(|e| anyhow!("{e}"))? {
        return Ok((t.to_owned(), Some(path.to_owned())));
    }
    let marker = format!("/{}/", transport::PATH_MARKER);
    if let Some(i) = path.find(&marker) {
        if let Some((t, rest)) =
            transport::split_path_form(&path[i..]).map_err(|e| anyhow!("{e}"))?
        {
            return Ok((t.to_owned(), Some(format!("{}{rest}", &path[..i]))));
        }
    }
    bail!("no mg_token in that URL")
}

/// A link time as RFC 3339 (`2026-12-01T09:00:00Z`), the form `--not-before`
/// takes.
fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_else(|_| t.to_string())
}

/// How far `d` lies in the past (`5 min ago`) or, negative, in the future
/// (`in 2 h`), in the largest unit that keeps it readable.
fn ago(d: Duration) -> String {
    let s = d.whole_seconds().abs();
    let text = if s < 120 {
        format!("{s} s")
    } else if s < 7200 {
        format!("{} min", s / 60)
    } else if s < 172_800 {
        format!("{} h", s / 3600)
    } else {
        format!("{} days", s / 86400)
    };
    if d.is_negative() {
        format!("in {text}")
    } else {
        format!("{text} ago")
    }
}

/// Prints the claims of `url`'s link (a URL in any transport, or a bare
/// token) and, given keys, whether it is valid now for the URL's path.
/// `Ok(false)` for a link that is not.
/// What was given for a link: itself, or for `-` the first line of stdin
/// (which keeps a live link out of the process list and shell history).
pub(crate) fn link_input(url: &str) -> Result<String> {
    match url {
        "-" => read_url(std::io::stdin().lock()),
        url => Ok(url.to_owned()),
    }
}

/// Where `inspect` finds the revocation rules.
pub(crate) enum Rules {
    /// A file: this one, or the one beside the keys file.
    File(Option<std::path::PathBuf>),
    /// Redis at this URL, under this key.
    Redis(String, String),
}

pub(crate) fn inspect(
    url: &str,
    keys: Option<&Path>,
    rules: Rules,
    leeway: Duration,
) -> Result<bool> {
    let url = link_input(url)?;
    let (token, url_path) = locate(&url)?;
    let now = OffsetDateTime::now_utc();
    let claims = mediagate::signer::decode_unverified(&token)
        .map_err(|e| anyhow!("not a mediagate link: {e}"))?;
    say!("user:        {}", claims.subject())?;
    say!(
        "scope:       {}{}",
        claims.path(),
        if claims.path().ends_with('/') {
            " (prefix: everything below)"
        } else {
            ""
        }
    )?;
    let methods: Vec<&str> = claims.methods().iter().map(Method::as_str).collect();
    say!("methods:     {}", methods.join(", "))?;
    say!("key id:      {}", claims.key_id())?;
    if let Ok(id) = LinkId::of_token(&token) {
        say!("link id:     {id} (for `mediagate revoke --link`)")?;
    }
    // A link time, and how far from now it is.
    let moment = |t: OffsetDateTime| format!("{} ({})", rfc3339(t), ago(now - t));
    say!("issued:      {}", moment(claims.issued_at()))?;
    if let Some(nbf) = claims.not_before() {
        say!("not before:  {}", moment(nbf))?;
    }
    say!("expires:     {}", moment(claims.expires_at()))?;
    if let Some(net) = claims.client_net() {
        say!("client:      {net}")?;
    }
    if let Some(cd) = claims.content_disposition() {
        say!("disposition: {cd}")?;
    }
    if let Some(ct) = claims.content_type() {
        say!("type:        {ct}")?;
    }
    if let Some(generation) = claims.generation() {
        say!("generation:  {generation}")?;
    }
    if claims.methods().contains(Method::Put) {
        let up = claims.upload();
        let max = up
            .max_size
            .map_or("the server's limit".to_owned(), |n| format!("{n} bytes"));
        say!(
            "upload:      at most {max}; {}",
            match up.replace {
                true => "may replace an existing file",
                false => "creates a new file only",
            }
        )?;
        if let Some(d) = up.sha256 {
            let hex: String = d.iter().map(|b| format!("{b:02x}")).collect();
            say!("upload sha256: {hex}")?;
        }
    }
    let Some(keys) = keys else {
        say!("signature:   not checked (pass --keys to check it)")?;
        return Ok(true);
    };
    let verifier = Verifier::new(load_keys(Some(keys))?).leeway(leeway);
    if let Err(e) = verifier.authenticate(&token) {
        say!("verdict:     INVALID: {e}")?;
        return Ok(false);
    }
    say!("signature:   valid")?;
    // Check against the URL's own path when it has one, less the server's
    // mount point (which the link does not carry).
    let (mount, request_path) = match url_path.as_deref() {
        Some(raw) => {
            let decoded =
                MediaPath::from_uri_path(raw).map_err(|e| anyhow!("the URL's path: {e}"))?;
            let (mount, rest) = split_mount(decoded.as_str(), claims.path());
            (mount.to_owned(), rest.to_owned())
        }
        None if claims.path().ends_with('/') => (String::new(), format!("{}x", claims.path())),
        None => (String::new(), claims.path().to_owned()),
    };
    // As the request the link is for: a download, or an upload link's PUT.
    let method = claims.methods().iter().next().unwrap_or(Method::Get);
    let verdict = MediaPath::parse(&request_path)
        .map_err(|e| anyhow!("{e}"))
        .and_then(|p| Ok(verifier.verify(&token, &RequestFacts::new(method, &p), now)?));
    match verdict {
        Ok(grant) => {
            let rules = match rules {
                Rules::File(file) => crate::revoke::file_of(file.as_deref(), Some(keys))
                    .map(|file| {
                        anyhow::Ok((crate::revoke::load(&file)?, file.display().to_string()))
                    })
                    .transpose()?,
                Rules::Redis(url, key) => Some((
                    crate::redis_revocations::list(&url, &key)?,
                    format!("Redis at {}", crate::redis_revocations::shown(&url)),
                )),
            };
            if let Some((set, place)) = rules {
                if let Some(why) = set.check(grant.claims(), grant.link_id()) {
                    say!("verdict:     REVOKED: {why} ({place})")?;
                    return Ok(false);
                }
            }
            let below = if mount.is_empty() {
                String::new()
            } else {
                format!(" (below the mount {mount})")
            };
            // Accepted, but only thanks to the clock leeway: say so.
            let starts = claims
                .not_before()
                .map_or(claims.issued_at(), |nbf| nbf.max(claims.issued_at()));
            let within = |what: String| {
                format!(
                    " ({what}, accepted within the {} s leeway)",
                    leeway.whole_seconds()
                )
            };
            let leeway_note = if now >= claims.expires_at() {
                within(format!("expired {}", ago(now - claims.expires_at())))
            } else if now < starts {
                within(format!("starts {}", ago(now - starts)))
            } else {
                String::new()
            };
            if leeway_note.is_empty() {
                say!("verdict:     VALID now for GET {request_path}{below}")?;
            } else {
                say!("verdict:     VALID{leeway_note} for GET {request_path}{below}")?;
            }
            Ok(true)
        }
        Err(e) => {
            let why = match e.downcast_ref::<mediagate::signer::VerifyError>() {
                Some(mediagate::signer::VerifyError::Expired { expired_at }) => {
                    format!("expired {}", ago(now - *expired_at))
                }
                Some(mediagate::signer::VerifyError::NotYetValid { valid_from }) => {
                    format!("not valid yet: it starts {}", ago(now - *valid_from))
                }
                Some(mediagate::signer::VerifyError::ScopeMismatch) => {
                    format!(
                        "wrong path: the link covers {}, not {request_path}",
                        claims.path()
                    )
                }
                _ => e.to_string(),
            };
            say!("verdict:     INVALID: {why}")?;
            Ok(false)
        }
    }
}

/// The first line of `input`, trimmed: a URL or token piped in. Read up to
/// a bound, so that `inspect - < /dev/zero` is an error, not a process
/// that fills memory.
fn read_url(input: impl std::io::BufRead) -> Result<String> {
    use std::io::BufRead as _;
    const MAX: u64 = 64 * 1024;
    let mut line = String::new();
    input
        .take(MAX + 1)
        .read_line(&mut line)
        .map_err(|e| anyhow!("reading the URL from stdin: {e}"))?;
    if line.len() as u64 > MAX {
        bail!("the URL on stdin is longer than 64 KiB");
    }
    let url = line.trim();
    if url.is_empty() {
        bail!("no URL on stdin");
    }
    Ok(url.to_owned())
}

/// Splits the decoded path of a URL into the server's mount point and the
/// media path a link is checked against. The link does not carry the
/// mount, so it is guessed: the shortest one (a prefix ending before a
/// `/`) that leaves a path the scope covers; failing that, the one that
/// leaves a path starting with the scope's first segment (so that a wrong
/// file is named as the server would see it); failing that, none.
fn split_mount<'p>(path: &'p str, scope: &str) -> (&'p str, &'p str) {
    let scope = MediaPath::parse(scope).ok();
    let covered = |rest: &str| {
        let rest = MediaPath::parse(rest);
        scope
            .as_ref()
            .zip(rest.ok())
            .is_some_and(|(s, r)| s.covers(&r))
    };
    let first_segment = scope
        .as_ref()
        .and_then(|s| s.as_str().split('/').find(|seg| !seg.is_empty()));
    let starts_with_segment = |rest: &str| {
        first_segment.is_some_and(|seg| {
            rest.strip_prefix('/')
                .and_then(|r| r.strip_prefix(seg))
                .is_some_and(|after| after.is_empty() || after.starts_with('/'))
        })
    };
    let splits = || path.match_indices('/').map(|(i, _)| path.split_at(i));
    splits()
        .find(|(_, rest)| covered(rest))
        .or_else(|| splits().find(|(_, rest)| starts_with_segment(rest)))
        .unwrap_or(("", path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_url_is_read_from_the_first_line_of_input_up_to_a_bound() {
        let read = |input: &[u8]| read_url(input).map_err(|e| e.to_string());
        assert_eq!(
            read(b"  https://m/a?mg_token=x \nmore\n"),
            Ok("https://m/a?mg_token=x".into())
        );
        assert_eq!(read(b"tok"), Ok("tok".into()));
        assert_eq!(read(b""), Err("no URL on stdin".into()));
        assert_eq!(read(b"\n"), Err("no URL on stdin".into()));
        let long = vec![b'a'; 70_000];
        assert_eq!(
            read(&long),
            Err("the URL on stdin is longer than 64 KiB".into())
        );
        assert!(
            read(b"\xff\xfe\n")
                .unwrap_err()
                .contains("reading the URL from stdin")
        );
    }

    #[test]
    fn the_mount_is_what_precedes_the_scope() {
        for (path, scope, mount, rest) in [
            // No mount.
            ("/videos/a.mp4", "/videos/a.mp4", "", "/videos/a.mp4"),
            ("/videos/show/x.ts", "/", "", "/videos/show/x.ts"),
            // A mount before the scope.
            (
                "/media/videos/a.mp4",
                "/videos/a.mp4",
                "/media",
                "/videos/a.mp4",
            ),
            (
                "/media/videos/show/x.ts",
                "/videos/show/",
                "/media",
                "/videos/show/x.ts",
            ),
            // A mount that starts like the scope: whole segments count.
            (
                "/videos-cdn/videos/show/x.ts",
                "/videos/show/",
                "/videos-cdn",
                "/videos/show/x.ts",
            ),
            ("/media/v/v/x.mp4", "/v/x.mp4", "/media/v", "/v/x.mp4"),
            // Outside the scope: from the scope's first segment if present.
            (
                "/media/videos/b.mp4",
                "/videos/a.mp4",
                "/media",
                "/videos/b.mp4",
            ),
            (
                "/media/other/b.mp4",
                "/videos/a.mp4",
                "",
                "/media/other/b.mp4",
            ),
            (
                "/media/videos-x/b.mp4",
                "/videos/a.mp4",
                "",
                "/media/videos-x/b.mp4",
            ),
        ] {
            assert_eq!(split_mount(path, scope), (mount, rest), "{path} {scope}");
        }
    }
}
