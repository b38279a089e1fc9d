//! Pure parsing and evaluation of the request headers that shape a file
//! response: `Range` and the conditional headers. No I/O here.

pub(crate) mod conditional;
pub(crate) mod range;
