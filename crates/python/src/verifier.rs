//! `mediagate.Verifier`: checks links against requests, for apps that
//! check links themselves (and the Django development view).

use std::net::IpAddr;
use std::path::PathBuf;

use mediagate_signer::time::{Duration, OffsetDateTime};
use mediagate_signer::{MediaPath, Method, RequestFacts, VerifyError};
use pyo3::prelude::*;

use crate::grant::Grant;
use crate::{args, errors, keys, request};

/// Checks links with every key of a keyring (the active one and those kept
/// for verifying). Immutable and safe to share between threads.
#[pyclass(frozen, module = "mediagate._core")]
pub struct Verifier {
    inner: mediagate_signer::Verifier,
}

impl Verifier {
    fn make(
        keyring: mediagate_signer::Keyring,
        leeway: Option<&Bound<'_, PyAny>>,
        max_ttl: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        let mut inner = mediagate_signer::Verifier::new(keyring);
        if let Some(v) = leeway {
            let d = args::duration("leeway", v)?;
            if d < Duration::ZERO {
                return Err(errors::argument(
                    "bad_duration",
                    "leeway must not be negative",
                ));
            }
            inner = inner.leeway(d);
        }
        if let Some(v) = max_ttl {
            let d = args::duration("max_ttl", v)?;
            if d <= Duration::ZERO {
                return Err(errors::argument("bad_duration", "max_ttl must be positive"));
            }
            inner = inner.max_ttl(d);
        }
        Ok(Verifier { inner })
    }

    fn check(
        &self,
        tokens: &[&str],
        method: Method,
        path: &MediaPath<'_>,
        client_ip: Option<IpAddr>,
        now: OffsetDateTime,
    ) -> Result<Grant, VerifyError> {
        let mut facts = RequestFacts::new(method, path);
        if let Some(ip) = client_ip {
            facts = facts.client_ip(ip);
        }
        let mut first = None;
        for token in tokens {
            match self.inner.verify(token, &facts, now) {
                Ok(g) => {
                    let id = g.link_id();
                    return Ok(Grant::new(g.into_claims(), id));
                }
                Err(e) => {
                    first.get_or_insert(e);
                }
            }
        }
        Err(first.unwrap_or(VerifyError::BadSignature))
    }
}

fn now_or(now: Option<&Bound<'_, PyAny>>) -> PyResult<OffsetDateTime> {
    match now {
        Some(v) => args::instant("now", v),
        None => Ok(OffsetDateTime::now_utc()),
    }
}

fn client(ip: Option<&Bound<'_, PyAny>>) -> PyResult<Option<IpAddr>> {
    ip.map(args::ip).transpose()
}

#[pymethods]
impl Verifier {
    /// A verifier with the keys of a TOML keys file.
    #[staticmethod]
    #[pyo3(signature = (path, *, leeway = None, max_ttl = None, group_readable = false))]
    fn from_keys_file(
        py: Python<'_>,
        path: PathBuf,
        leeway: Option<&Bound<'_, PyAny>>,
        max_ttl: Option<&Bound<'_, PyAny>>,
        group_readable: bool,
    ) -> PyResult<Self> {
        Verifier::make(keys::from_file(py, path, group_readable)?, leeway, max_ttl)
    }

    /// A verifier with the keys of environment variable `var`.
    #[staticmethod]
    #[pyo3(signature = (var = "MEDIAGATE_KEYS", *, leeway = None, max_ttl = None))]
    fn from_env(
        var: &str,
        leeway: Option<&Bound<'_, PyAny>>,
        max_ttl: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        Verifier::make(keys::from_env(var)?, leeway, max_ttl)
    }

    /// A verifier with the keys of a keys file's text.
    #[staticmethod]
    #[pyo3(signature = (text, *, leeway = None, max_ttl = None))]
    fn from_toml(
        text: &str,
        leeway: Option<&Bound<'_, PyAny>>,
        max_ttl: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        Verifier::make(keys::from_toml(text)?, leeway, max_ttl)
    }

    /// Checks `token` for a `method` request of the file `path` (decoded,
    /// canonical) from `client_ip` at `now` (default: the clock); the grant,
    /// or a `VerifyError` with the reason code.
    #[pyo3(signature = (token, path, *, method = "GET", client_ip = None, now = None))]
    fn verify(
        &self,
        token: &str,
        path: &str,
        method: &str,
        client_ip: Option<&Bound<'_, PyAny>>,
        now: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Grant> {
        let path = MediaPath::parse(path)
            .ok()
            .filter(|p| !p.is_reserved())
            .ok_or_else(|| errors::refusal("bad_path", 400, "the path is not canonical"))?;
        let method = args::method(method)?;
        self.check(&[token], method, &path, client(client_ip)?, now_or(now)?)
            .map_err(errors::verify)
    }

    /// Checks a request as `mediagate serve` does: `path` is the raw
    /// (percent-encoded) URL path below the mount, `query` the raw query
    /// string, `cookie` the `Cookie` header. Returns the grant and the
    /// decoded path of the file asked for. Revocations are the server's:
    /// they are not checked here.
    #[pyo3(signature = (method, path, *, query = None, cookie = None, client_ip = None, now = None))]
    fn check_request(
        &self,
        method: &str,
        path: &str,
        query: Option<&str>,
        cookie: Option<&str>,
        client_ip: Option<&Bound<'_, PyAny>>,
        now: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<(Grant, String)> {
        let method = args::method(method)?;
        let located = request::locate(path, query, cookie)?;
        let file = request::canonical(located.path)?;
        let grant = self
            .check(
                located.tokens(),
                method,
                &file,
                client(client_ip)?,
                now_or(now)?,
            )
            .map_err(errors::verify)?;
        Ok((grant, file.as_str().to_owned()))
    }

    /// The claims of `token` once its signature checks out, without
    /// comparing them to a request or the clock (to explain a link).
    fn inspect(&self, token: &str) -> PyResult<Grant> {
        let claims = self.inner.authenticate(token).map_err(errors::verify)?;
        let id = mediagate_signer::revoke::LinkId::of_token(token).map_err(errors::verify)?;
        Ok(Grant::new(claims, id))
    }

    fn __repr__(&self) -> String {
        format!(
            "<mediagate.Verifier keys={}>",
            self.inner.keyring().keys().count()
        )
    }
}
