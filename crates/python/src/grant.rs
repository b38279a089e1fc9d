//! `mediagate.Grant`: the authenticated claims of a link.

use mediagate_signer::revoke::LinkId;
use mediagate_signer::{Claims, DispositionType, Scope, UploadError};
use pyo3::prelude::*;
use pyo3::types::PyTuple;

use crate::{args, errors};

/// The claims of a link whose signature checked out (from
/// `Verifier.verify`, `check_request` or `inspect`).
#[pyclass(frozen, module = "mediagate._core")]
pub struct Grant {
    claims: Claims,
    link_id: LinkId,
}

impl Grant {
    pub(crate) fn new(claims: Claims, link_id: LinkId) -> Self {
        Grant { claims, link_id }
    }
}

#[pymethods]
impl Grant {
    /// The user the link was minted for.
    #[getter]
    fn user(&self) -> &str {
        self.claims.subject()
    }

    /// The signed path: the file, or the directory of a prefix link.
    #[getter]
    fn path(&self) -> &str {
        self.claims.path()
    }

    /// `"exact"` or `"prefix"`.
    #[getter]
    fn scope(&self) -> &'static str {
        match self.claims.scope() {
            Scope::Exact(_) => "exact",
            Scope::Prefix(_) => "prefix",
        }
    }

    /// The methods granted, such as `("GET", "HEAD")`.
    #[getter]
    fn methods<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        let names: Vec<&str> = self.claims.methods().iter().map(|m| m.as_str()).collect();
        PyTuple::new(py, names)
    }

    /// When the link was signed (UTC datetime).
    #[getter]
    fn issued_at<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        args::to_datetime(py, self.claims.issued_at())
    }

    /// When the link expires (UTC datetime).
    #[getter]
    fn expires_at<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        args::to_datetime(py, self.claims.expires_at())
    }

    /// When the link becomes valid, if later than its signing.
    #[getter]
    fn not_before<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyAny>>> {
        self.claims
            .not_before()
            .map(|t| args::to_datetime(py, t))
            .transpose()
    }

    /// The client network the link is bound to (`"203.0.113.7/32"`), if any.
    #[getter]
    fn client_net(&self) -> Option<String> {
        self.claims.client_net().map(|n| n.to_string())
    }

    /// `"attachment"`, `"inline"`, or `None`.
    #[getter]
    fn disposition(&self) -> Option<&'static str> {
        self.claims.disposition_type().map(|d| match d {
            DispositionType::Attachment => "attachment",
            DispositionType::Inline => "inline",
        })
    }

    /// The download filename the link names, if any.
    #[getter]
    fn filename(&self) -> Option<&str> {
        self.claims.filename()
    }

    /// The `Content-Disposition` header value a server sends, if any.
    #[getter]
    fn content_disposition(&self) -> Option<String> {
        self.claims.content_disposition()
    }

    /// The content type the link sets, if any.
    #[getter]
    fn content_type(&self) -> Option<&str> {
        self.claims.content_type()
    }

    /// The user's link generation (for revoking a user's links), if any.
    #[getter]
    fn generation(&self) -> Option<u64> {
        self.claims.generation()
    }

    /// The most bytes an upload may have, if the link says.
    #[getter]
    fn max_size(&self) -> Option<u64> {
        self.claims.upload().max_size
    }

    /// The SHA-256 (hex) an upload's bytes must have, if the link says.
    #[getter]
    fn sha256(&self) -> Option<String> {
        self.claims
            .upload()
            .sha256
            .map(|d| d.iter().map(|b| format!("{b:02x}")).collect())
    }

    /// Whether an upload may replace an existing file.
    #[getter]
    fn replace(&self) -> bool {
        self.claims.upload().replace
    }

    /// Checks an upload against the link's upload claims, as the server
    /// does: the request's `content_type` (`None`: none sent) and, when
    /// known, its `length` and the `sha256` of its bytes (32 bytes or 64
    /// hex characters). Raises `VerifyError` with the server's code and
    /// status: `content_type` (415), `too_large` (413), `digest_mismatch`
    /// (400).
    #[pyo3(signature = (*, content_type = None, length = None, sha256 = None))]
    fn check_upload(
        &self,
        content_type: Option<&str>,
        length: Option<u64>,
        sha256: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let refused = |e: UploadError| {
            let status = match e {
                UploadError::TooLarge => 413,
                UploadError::ContentType => 415,
                _ => 400,
            };
            errors::refusal(e.code(), status, &e.to_string())
        };
        self.claims
            .admits_content_type(content_type)
            .map_err(refused)?;
        if let Some(n) = length {
            self.claims.admits_length(n).map_err(refused)?;
        }
        if let Some(d) = sha256 {
            let got = args::sha256(d)?;
            if self
                .claims
                .upload()
                .sha256
                .is_some_and(|signed| signed != got)
            {
                return Err(refused(UploadError::DigestMismatch));
            }
        }
        Ok(())
    }

    /// The id of the key that signed the link.
    #[getter]
    fn key_id(&self) -> &str {
        self.claims.key_id()
    }

    /// The link's id, for revoking this one link.
    #[getter]
    fn link_id(&self) -> String {
        self.link_id.to_string()
    }

    fn __repr__(&self) -> String {
        format!(
            "<mediagate.Grant user={:?} path={:?} scope={}>",
            self.user(),
            self.path(),
            self.scope()
        )
    }
}
