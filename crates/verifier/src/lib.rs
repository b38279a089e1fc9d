#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod access_log;
mod authorize;
mod body;
mod config;
mod cors;
mod files;
mod headers;
mod keys;
pub mod metrics;
mod reject;
mod response;
mod revocation;
mod server;
mod service;
mod target;
mod token;
mod upload;

pub use access_log::{AccessLog, AccessLogLayer, LoggedBody, Logging, TARGET as ACCESS_LOG_TARGET};
pub use authorize::ClientIpSource;
pub use body::MediaBody;
pub use config::{Builder, ConfigError, DEFAULT_CHUNK_SIZE};
pub use cors::{Cors, InvalidOrigin};
pub use files::cache::CacheLimits;
pub use files::fs::RootError;
pub use keys::KeyringHandle;
pub use response::CachePolicy;
pub use revocation::{Revocation, RevocationCheck, RevocationsHandle};
pub use server::{
    Listening, NoCertificate, ServerConfig, Tls, TlsBuilder, TlsError, WithCertificate, Workers,
    serve, serve_all, serve_metrics,
};
pub use server::{fit_open_files, memory_sized_max_connections};
pub use service::{MediaGate, PeerAddr, ResponseFuture};
pub use token::Transports;
pub use upload::Uploads;

/// The signer crate, re-exported.
pub use mediagate_signer as signer;
