//! Pure parsing and evaluation of request headers: `Host`, which every
//! request must get right, and `Range` and the conditional headers, which
//! shape a file response. No I/O here.

pub(crate) mod conditional;
pub(crate) mod host;
pub(crate) mod range;
