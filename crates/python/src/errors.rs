//! The package's exceptions, raised from Rust: the classes live in
//! `mediagate/_errors.py` (so that they are plain Python classes users can
//! subclass and pickle); each carries the Rust error's reason code.

use mediagate_signer::keys::LoadKeysError;
use mediagate_signer::{KeyError, SignError, VerifyError};
use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyType;

/// Which exception class to raise.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Class {
    /// `LinkError`: a bad argument value (a duration, a time, an address).
    Link,
    /// `SignError`: a link that cannot be signed.
    Sign,
    /// `VerifyError`: a link that does not grant a request.
    Verify,
    /// `KeysError`: keys that cannot be loaded.
    Keys,
}

impl Class {
    fn name(self) -> &'static str {
        match self {
            Class::Link => "LinkError",
            Class::Sign => "SignError",
            Class::Verify => "VerifyError",
            Class::Keys => "KeysError",
        }
    }
}

static ERRORS: PyOnceLock<Py<PyModule>> = PyOnceLock::new();

/// A `mediagate` exception of `class` with `code` (and, for a refusal, the
/// HTTP status a server answers it with).
pub(crate) fn error(class: Class, code: &str, message: String, status: Option<u16>) -> PyErr {
    Python::attach(|py| {
        let module = match ERRORS.get_or_try_init(py, || {
            PyModule::import(py, "mediagate._errors").map(Bound::unbind)
        }) {
            Ok(m) => m.bind(py),
            Err(e) => return e,
        };
        let class = match module
            .getattr(class.name())
            .and_then(|c| c.cast_into::<PyType>().map_err(PyErr::from))
        {
            Ok(c) => c,
            Err(_) => {
                return PyRuntimeError::new_err(
                    "mediagate._errors is incomplete: reinstall mediagate",
                );
            }
        };
        match class.call1((message, code, status)) {
            Ok(instance) => PyErr::from_value(instance),
            Err(e) => e,
        }
    })
}

/// A bad argument value.
pub(crate) fn argument(code: &str, message: impl Into<String>) -> PyErr {
    error(Class::Link, code, message.into(), None)
}

pub(crate) fn sign(e: SignError) -> PyErr {
    let message = match &e {
        // The Rust message names the Rust call.
        SignError::PrefixNotAsked => "the path ends in '/', which would grant every file \
            below it: ask for a prefix link explicitly (Signer.prefix)"
            .to_owned(),
        other => other.to_string(),
    };
    error(Class::Sign, e.code(), message, None)
}

/// A refusal: 403, as the server answers a link that does not grant.
pub(crate) fn verify(e: VerifyError) -> PyErr {
    error(Class::Verify, e.code(), e.to_string(), Some(403))
}

/// A refusal before any link is checked, with its own status.
pub(crate) fn refusal(code: &str, status: u16, message: &str) -> PyErr {
    error(Class::Verify, code, message.to_owned(), Some(status))
}

pub(crate) fn keys(e: KeyError) -> PyErr {
    error(Class::Keys, e.code(), e.to_string(), None)
}

pub(crate) fn load_keys(e: LoadKeysError) -> PyErr {
    error(Class::Keys, e.code(), e.to_string(), None)
}
