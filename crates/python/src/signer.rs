//! `mediagate.Signer`: mints links with the active key of a keyring.

use std::path::PathBuf;

use mediagate_signer::LinkBuilder;
use mediagate_signer::time::Duration;
use pyo3::prelude::*;
use pyo3::pybacked::PyBackedStr;

use crate::link::Link;
use crate::{args, errors, keys};

/// The optional claims of a link, as Python passed them, checked and
/// converted when applied to a builder.
pub(crate) struct Claims<'py> {
    pub ttl: Option<Bound<'py, PyAny>>,
    pub expires_at: Option<Bound<'py, PyAny>>,
    pub not_before: Option<Bound<'py, PyAny>>,
    pub issued_at: Option<Bound<'py, PyAny>>,
    pub methods: Option<Bound<'py, PyAny>>,
    pub client_ip: Option<Bound<'py, PyAny>>,
    pub attachment: Option<PyBackedStr>,
    pub inline: Option<PyBackedStr>,
    pub content_type: Option<PyBackedStr>,
    pub generation: Option<u64>,
    pub max_size: Option<u64>,
    pub sha256: Option<Bound<'py, PyAny>>,
    pub replace: bool,
}

impl Claims<'_> {
    fn apply<'a>(&'a self, mut b: LinkBuilder<'a>) -> PyResult<LinkBuilder<'a>> {
        if let Some(v) = &self.ttl {
            b = b.ttl(args::duration("ttl", v)?);
        }
        if let Some(v) = &self.expires_at {
            b = b.expires_at(args::instant("expires_at", v)?);
        }
        if let Some(v) = &self.not_before {
            b = b.not_before(args::instant("not_before", v)?);
        }
        if let Some(v) = &self.issued_at {
            b = b.issued_at(args::instant("issued_at", v)?);
        }
        if let Some(v) = &self.methods {
            b = b.methods(args::methods(v)?);
        }
        if let Some(v) = &self.client_ip {
            b = b.client_net(args::net(v)?);
        }
        match (&self.attachment, &self.inline) {
            (Some(_), Some(_)) => {
                return Err(errors::argument(
                    "bad_disposition",
                    "a link is either an attachment or inline, not both",
                ));
            }
            (Some(name), None) => b = b.attachment(name),
            (None, Some(name)) => b = b.inline(name),
            (None, None) => {}
        }
        if let Some(v) = &self.content_type {
            b = b.content_type(v);
        }
        if let Some(g) = self.generation {
            b = b.generation(g);
        }
        if let Some(max) = self.max_size {
            b = b.max_size(max);
        }
        if let Some(v) = &self.sha256 {
            b = b.sha256(args::sha256(v)?);
        }
        Ok(b.replace(self.replace))
    }
}

/// Mints signed links. Immutable and safe to share between threads; make
/// one at start-up and keep it.
#[pyclass(frozen, module = "mediagate._core")]
pub struct Signer {
    inner: mediagate_signer::Signer,
    base_url: Option<String>,
}

impl Signer {
    fn make(
        keyring: mediagate_signer::Keyring,
        base_url: Option<String>,
        default_ttl: Option<&Bound<'_, PyAny>>,
        max_ttl: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        let mut inner = mediagate_signer::Signer::new(keyring);
        if let Some(v) = max_ttl {
            inner = inner.max_ttl(positive("max_ttl", v)?);
        }
        if let Some(v) = default_ttl {
            inner = inner.default_ttl(positive("default_ttl", v)?);
        }
        if let Some(base) = &base_url {
            check_base(base)?;
        }
        Ok(Signer { inner, base_url })
    }

    fn base<'a>(&'a self, base: Option<&'a str>) -> PyResult<&'a str> {
        base.or(self.base_url.as_deref()).ok_or_else(|| {
            errors::argument(
                "missing_base_url",
                "no base URL: pass base=, or base_url= when making the Signer",
            )
        })
    }
}

fn positive(name: &str, v: &Bound<'_, PyAny>) -> PyResult<Duration> {
    let d = args::duration(name, v)?;
    if d <= Duration::ZERO {
        return Err(errors::argument(
            "bad_duration",
            format!("{name} must be positive"),
        ));
    }
    Ok(d)
}

/// A base URL is a scheme and host, a path, or both, with no query or
/// fragment (the token's query is appended to it).
pub(crate) fn check_base(base: &str) -> PyResult<()> {
    if base.contains(['?', '#']) || base.bytes().any(|b| b.is_ascii_control() || b == b' ') {
        return Err(errors::argument(
            "bad_base_url",
            "base_url holds a query, a fragment, a space or a control character",
        ));
    }
    Ok(())
}

#[pymethods]
impl Signer {
    /// A signer with the keys of a TOML keys file (as `mediagate keygen`
    /// writes it).
    #[staticmethod]
    #[pyo3(signature = (path, *, base_url = None, default_ttl = None, max_ttl = None, group_readable = false))]
    fn from_keys_file(
        py: Python<'_>,
        path: PathBuf,
        base_url: Option<String>,
        default_ttl: Option<&Bound<'_, PyAny>>,
        max_ttl: Option<&Bound<'_, PyAny>>,
        group_readable: bool,
    ) -> PyResult<Self> {
        let ring = keys::from_file(py, path, group_readable)?;
        Signer::make(ring, base_url, default_ttl, max_ttl)
    }

    /// A signer with the keys of environment variable `var`
    /// (`id:secret[,id:secret...]`).
    #[staticmethod]
    #[pyo3(signature = (var = "MEDIAGATE_KEYS", *, base_url = None, default_ttl = None, max_ttl = None))]
    fn from_env(
        var: &str,
        base_url: Option<String>,
        default_ttl: Option<&Bound<'_, PyAny>>,
        max_ttl: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        Signer::make(keys::from_env(var)?, base_url, default_ttl, max_ttl)
    }

    /// A signer with the keys of a keys file's text.
    #[staticmethod]
    #[pyo3(signature = (text, *, base_url = None, default_ttl = None, max_ttl = None))]
    fn from_toml(
        text: &str,
        base_url: Option<String>,
        default_ttl: Option<&Bound<'_, PyAny>>,
        max_ttl: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        Signer::make(keys::from_toml(text)?, base_url, default_ttl, max_ttl)
    }

    /// The id of the key links are signed with.
    #[getter]
    fn key_id(&self) -> &str {
        self.inner.keyring().active().id()
    }

    /// The base URL links are rendered under when none is passed.
    #[getter]
    fn base_url(&self) -> Option<&str> {
        self.base_url.as_deref()
    }

    /// A link for `user` to exactly the file `path`.
    #[pyo3(signature = (user, path, *, ttl = None, expires_at = None, not_before = None,
        issued_at = None, methods = None, client_ip = None, attachment = None, inline = None,
        content_type = None, generation = None, max_size = None, sha256 = None, replace = false))]
    #[allow(clippy::too_many_arguments)]
    fn link<'py>(
        &self,
        user: PyBackedStr,
        path: PyBackedStr,
        ttl: Option<Bound<'py, PyAny>>,
        expires_at: Option<Bound<'py, PyAny>>,
        not_before: Option<Bound<'py, PyAny>>,
        issued_at: Option<Bound<'py, PyAny>>,
        methods: Option<Bound<'py, PyAny>>,
        client_ip: Option<Bound<'py, PyAny>>,
        attachment: Option<PyBackedStr>,
        inline: Option<PyBackedStr>,
        content_type: Option<PyBackedStr>,
        generation: Option<u64>,
        max_size: Option<u64>,
        sha256: Option<Bound<'py, PyAny>>,
        replace: bool,
    ) -> PyResult<Link> {
        let claims = Claims {
            ttl,
            expires_at,
            not_before,
            issued_at,
            methods,
            client_ip,
            attachment,
            inline,
            content_type,
            generation,
            max_size,
            sha256,
            replace,
        };
        self.sign(&user, &path, false, &claims)
    }

    /// An upload link for `user`: `PUT` of exactly the file `path`,
    /// creating it unless `replace`, within `max_size` bytes, of
    /// `content_type` (whose signature its first bytes must bear), with the
    /// SHA-256 `sha256` (32 bytes, or 64 hex characters).
    #[pyo3(signature = (user, path, *, ttl = None, expires_at = None, not_before = None,
        issued_at = None, methods = None, client_ip = None, content_type = None,
        generation = None, max_size = None, sha256 = None, replace = false))]
    #[allow(clippy::too_many_arguments)]
    fn upload<'py>(
        &self,
        user: PyBackedStr,
        path: PyBackedStr,
        ttl: Option<Bound<'py, PyAny>>,
        expires_at: Option<Bound<'py, PyAny>>,
        not_before: Option<Bound<'py, PyAny>>,
        issued_at: Option<Bound<'py, PyAny>>,
        methods: Option<Bound<'py, PyAny>>,
        client_ip: Option<Bound<'py, PyAny>>,
        content_type: Option<PyBackedStr>,
        generation: Option<u64>,
        max_size: Option<u64>,
        sha256: Option<Bound<'py, PyAny>>,
        replace: bool,
    ) -> PyResult<Link> {
        let claims = Claims {
            ttl,
            expires_at,
            not_before,
            issued_at,
            methods,
            client_ip,
            attachment: None,
            inline: None,
            content_type,
            generation,
            max_size,
            sha256,
            replace,
        };
        let builder = self.inner.upload(&user, &path);
        let link = claims.apply(builder)?.sign().map_err(errors::sign)?;
        Ok(Link::new(link.into_owned(), self.base_url.clone()))
    }

    /// A link for `user` to every file below the directory `dir` (which
    /// ends in `/`).
    #[pyo3(signature = (user, dir, *, ttl = None, expires_at = None, not_before = None,
        issued_at = None, methods = None, client_ip = None, attachment = None, inline = None,
        content_type = None, generation = None, max_size = None, sha256 = None, replace = false))]
    #[allow(clippy::too_many_arguments)]
    fn prefix<'py>(
        &self,
        user: PyBackedStr,
        dir: PyBackedStr,
        ttl: Option<Bound<'py, PyAny>>,
        expires_at: Option<Bound<'py, PyAny>>,
        not_before: Option<Bound<'py, PyAny>>,
        issued_at: Option<Bound<'py, PyAny>>,
        methods: Option<Bound<'py, PyAny>>,
        client_ip: Option<Bound<'py, PyAny>>,
        attachment: Option<PyBackedStr>,
        inline: Option<PyBackedStr>,
        content_type: Option<PyBackedStr>,
        generation: Option<u64>,
        max_size: Option<u64>,
        sha256: Option<Bound<'py, PyAny>>,
        replace: bool,
    ) -> PyResult<Link> {
        let claims = Claims {
            ttl,
            expires_at,
            not_before,
            issued_at,
            methods,
            client_ip,
            attachment,
            inline,
            content_type,
            generation,
            max_size,
            sha256,
            replace,
        };
        self.sign(&user, &dir, true, &claims)
    }

    /// The query-form URL of a link for `user` to the file `path`, in one
    /// call: `base` + path + `?mg_token=...`.
    #[pyo3(signature = (user, path, base = None, *, ttl = None, expires_at = None,
        not_before = None, issued_at = None, methods = None, client_ip = None, attachment = None,
        inline = None, content_type = None, generation = None))]
    #[allow(clippy::too_many_arguments)]
    fn url<'py>(
        &self,
        user: PyBackedStr,
        path: PyBackedStr,
        base: Option<PyBackedStr>,
        ttl: Option<Bound<'py, PyAny>>,
        expires_at: Option<Bound<'py, PyAny>>,
        not_before: Option<Bound<'py, PyAny>>,
        issued_at: Option<Bound<'py, PyAny>>,
        methods: Option<Bound<'py, PyAny>>,
        client_ip: Option<Bound<'py, PyAny>>,
        attachment: Option<PyBackedStr>,
        inline: Option<PyBackedStr>,
        content_type: Option<PyBackedStr>,
        generation: Option<u64>,
    ) -> PyResult<String> {
        let claims = Claims {
            ttl,
            expires_at,
            not_before,
            issued_at,
            methods,
            client_ip,
            attachment,
            inline,
            content_type,
            generation,
            max_size: None,
            sha256: None,
            replace: false,
        };
        if let Some(b) = &base {
            check_base(b)?;
        }
        let base = self.base(base.as_deref())?;
        claims
            .apply(self.inner.link(&user, &path))?
            .url(base)
            .map_err(errors::sign)
    }

    fn __repr__(&self) -> String {
        format!("<mediagate.Signer key_id={:?}>", self.key_id())
    }
}

impl Signer {
    fn sign(&self, user: &str, path: &str, prefix: bool, claims: &Claims<'_>) -> PyResult<Link> {
        let builder = if prefix {
            self.inner.prefix(user, path)
        } else {
            self.inner.link(user, path)
        };
        let link = claims.apply(builder)?.sign().map_err(errors::sign)?;
        Ok(Link::new(link.into_owned(), self.base_url.clone()))
    }
}
