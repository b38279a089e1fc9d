//! The `mediagate._core` extension module: the Rust signer and link check
//! behind the `mediagate` Python package, so that Python mints and checks
//! links with the one implementation of the format and the path rules.
//!
//! The Python surface is documented in `python/mediagate/_core.pyi`; this
//! crate only converts arguments, calls `mediagate-signer`, and turns its
//! errors into the package's exceptions (`mediagate.LinkError` and its
//! subclasses, each with the Rust error's reason code).
//!
//! ```python
//! from mediagate import Signer
//! signer = Signer.from_keys_file("keys.toml")
//! url = signer.url("42", "/videos/a.mp4", "https://media.example.com/media", ttl="10m")
//! ```

use pyo3::prelude::*;

mod args;
mod errors;
mod grant;
mod keys;
mod link;
mod request;
mod signer;
mod verifier;

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<signer::Signer>()?;
    m.add_class::<link::Link>()?;
    m.add_class::<verifier::Verifier>()?;
    m.add_class::<grant::Grant>()?;
    m.add_function(wrap_pyfunction!(keys::generate_keys, m)?)?;
    m.add_function(wrap_pyfunction!(request::canonical_path, m)?)?;
    m.add("FORMAT_VERSION", mediagate_signer::limits::VERSION)?;
    m.add("QUERY_PARAM", mediagate_signer::transport::QUERY_PARAM)?;
    m.add("COOKIE_NAME", mediagate_signer::transport::COOKIE_NAME)?;
    Ok(())
}
