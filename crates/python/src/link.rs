//! `mediagate.Link`: a signed link, rendered in each transport.

use mediagate_signer::SignedLink;
use mediagate_signer::revoke::LinkId;
use mediagate_signer::time::OffsetDateTime;
use pyo3::prelude::*;

use crate::signer::check_base;
use crate::{args, errors};

/// A signed link. Its `repr` leaves the token out: the token is the
/// credential.
#[pyclass(frozen, module = "mediagate._core")]
pub struct Link {
    link: SignedLink<'static>,
    base_url: Option<String>,
}

impl Link {
    pub(crate) fn new(link: SignedLink<'static>, base_url: Option<String>) -> Self {
        Link { link, base_url }
    }

    fn base<'a>(&'a self, base: Option<&'a str>) -> PyResult<&'a str> {
        if let Some(b) = base {
            check_base(b)?;
        }
        base.or(self.base_url.as_deref()).ok_or_else(|| {
            errors::argument(
                "missing_base_url",
                "no base URL: pass base=, or base_url= when making the Signer",
            )
        })
    }
}

#[pymethods]
impl Link {
    /// The token alone.
    #[getter]
    fn token(&self) -> &str {
        self.link.token()
    }

    /// The signed path (a directory ending in `/` for a prefix link).
    #[getter]
    fn path(&self) -> &str {
        self.link.path()
    }

    /// When the link expires (a timezone-aware UTC datetime).
    #[getter]
    fn expires_at<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        args::to_datetime(py, self.link.expires_at())
    }

    /// The link's id, for revoking this one link (`mediagate revoke --link`).
    #[getter]
    fn link_id(&self) -> PyResult<String> {
        LinkId::of_token(self.link.token())
            .map(|id| id.to_string())
            .map_err(errors::verify)
    }

    /// `base` + path + `?mg_token=...`.
    #[pyo3(signature = (base = None))]
    fn url(&self, base: Option<&str>) -> PyResult<String> {
        Ok(self.link.url(self.base(base)?))
    }

    /// The query-form URL of `file`, which must lie within a prefix link's
    /// directory (or be the exact path).
    #[pyo3(signature = (file, base = None))]
    fn url_for(&self, file: &str, base: Option<&str>) -> PyResult<String> {
        self.link
            .url_for(self.base(base)?, file)
            .map_err(errors::sign)
    }

    /// `base` + `/_mg/<token>` + path: relative URLs in a playlist (HLS,
    /// DASH) inherit the token.
    #[pyo3(signature = (base = None))]
    fn path_form(&self, base: Option<&str>) -> PyResult<String> {
        Ok(self.link.path_form(self.base(base)?))
    }

    /// The path-form URL of `file`, which must lie within the link's scope
    /// (a playlist's entry file below a prefix link's directory).
    #[pyo3(signature = (file, base = None))]
    fn path_form_for(&self, file: &str, base: Option<&str>) -> PyResult<String> {
        self.link
            .path_form_for(self.base(base)?, file)
            .map_err(errors::sign)
    }

    /// A `Set-Cookie` header value carrying the token for requests below
    /// `mount` + the signed path (`mount` is the server's mount point, such
    /// as `/media`), expiring with the link; `domain` shares it with
    /// sibling hosts (`example.com` for `media.example.com`).
    #[pyo3(signature = (mount, domain = None, now = None))]
    fn set_cookie(
        &self,
        mount: &str,
        domain: Option<&str>,
        now: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<String> {
        check_base(mount)?;
        let now = match now {
            Some(v) => args::instant("now", v)?,
            None => OffsetDateTime::now_utc(),
        };
        match domain {
            None => Ok(self.link.set_cookie(mount, now)),
            Some(d) => self
                .link
                .set_cookie_for_domain(mount, d, now)
                .map_err(errors::sign),
        }
    }

    fn __repr__(&self) -> String {
        format!(
            "<mediagate.Link path={:?} expires_at={}>",
            self.link.path(),
            self.link.expires_at().unix_timestamp()
        )
    }
}
