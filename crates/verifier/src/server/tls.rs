//! TLS for a listener: certificates read from PEM files and checked at
//! start ([`Tls`], built with [`Tls::builder`]), the one chosen by SNI for
//! each handshake, ALPN `h2` and `http/1.1`, TLS 1.2 and 1.3 only, and the
//! files read again on [`Tls::reload`] (connections already open keep
//! their session).
//!
//! With TLS, file bodies are read and encrypted in user space: the
//! `sendfile` lane is for plain HTTP/1 only (see BENCHMARKS.md, "TLS").

use std::fmt;
use std::io;
use std::marker::PhantomData;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use arc_swap::ArcSwap;
use bytes::{Buf, Bytes};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// The largest certificate or key file read, 1 MiB: anything larger is no
/// PEM file (and `/dev/zero` is an error, not a process filling memory).
const MAX_PEM_FILE: u64 = 1 << 20;

/// TLS settings for a listener (see the module docs). Cloning shares
/// them: a [`reload`](Self::reload) applies to every clone.
#[derive(Clone)]
pub struct Tls {
    pairs: Arc<[Pair]>,
    http2: bool,
    current: Arc<ArcSwap<rustls::ServerConfig>>,
}

/// A certificate chain file and its key's file.
#[derive(Debug, Clone)]
struct Pair {
    chain: PathBuf,
    key: PathBuf,
}

/// Why certificates could not be put in force. No message quotes the
/// files' contents.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// A file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// A file is larger than any certificate chain or key.
    #[error("{}: larger than 1 MiB, not a PEM file", path.display())]
    TooLarge {
        /// The file.
        path: PathBuf,
    },
    /// A certificate file holds no PEM certificate, or one that does not parse.
    #[error("{}: {reason}", path.display())]
    Certificate {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A key file holds no private key rustls can sign with.
    #[error("{}: {reason}", path.display())]
    Key {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The key is not the one the certificate was issued for.
    #[error("{} is not the key of the certificate in {}", key.display(), chain.display())]
    KeyMismatch {
        /// The certificate chain's file.
        chain: PathBuf,
        /// The key's file.
        key: PathBuf,
    },
    /// The certificate has expired, or is not valid yet.
    #[error("{}: the certificate is valid from {not_before} to {not_after}, not now", path.display())]
    OutOfDate {
        /// The certificate chain's file.
        path: PathBuf,
        /// Its validity's start (UTC).
        not_before: String,
        /// Its validity's end (UTC).
        not_after: String,
    },
    /// rustls refused the settings.
    #[error("TLS settings refused: {0}")]
    Rustls(#[from] rustls::Error),
}

impl TlsError {
    /// A short code for the error, stable across versions.
    pub fn code(&self) -> &'static str {
        match self {
            TlsError::Read { .. } => "unreadable",
            TlsError::TooLarge { .. } => "too_large",
            TlsError::Certificate { .. } => "bad_certificate",
            TlsError::Key { .. } => "bad_key",
            TlsError::KeyMismatch { .. } => "key_mismatch",
            TlsError::OutOfDate { .. } => "out_of_date",
            TlsError::Rustls(_) => "rustls",
        }
    }
}

/// [`TlsBuilder`] state: no certificate yet (it cannot build).
#[derive(Debug)]
pub struct NoCertificate;
/// [`TlsBuilder`] state: at least one certificate (it can build).
#[derive(Debug)]
pub struct WithCertificate;

/// Builds a [`Tls`]: certificates first, then [`build`](Self::build).
#[derive(Debug)]
pub struct TlsBuilder<State> {
    pairs: Vec<Pair>,
    http2: bool,
    state: PhantomData<State>,
}

impl Tls {
    /// A builder with no certificate and HTTP/2 offered.
    pub fn builder() -> TlsBuilder<NoCertificate> {
        TlsBuilder {
            pairs: Vec::new(),
            http2: true,
            state: PhantomData,
        }
    }

    /// Reads the certificate and key files again and puts them in force
    /// for new connections; on an error the ones in force stay.
    pub fn reload(&self) -> Result<(), TlsError> {
        self.current.store(Arc::new(load(&self.pairs, self.http2)?));
        Ok(())
    }

    /// What each new connection's handshake uses.
    pub(crate) fn acceptor(&self) -> tokio_rustls::TlsAcceptor {
        tokio_rustls::TlsAcceptor::from(self.current.load_full())
    }

    /// How many certificates are in force.
    pub fn certificates(&self) -> usize {
        self.pairs.len()
    }
}

impl fmt::Debug for Tls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tls")
            .field("certificates", &self.pairs)
            .field("http2", &self.http2)
            .finish_non_exhaustive()
    }
}

impl<S> TlsBuilder<S> {
    /// Adds a certificate: `chain`, a PEM file with the certificate first
    /// and the intermediates after it, and `key`, a PEM file with its
    /// private key (PKCS#8, PKCS#1 or SEC1). The first one added is served
    /// to clients that name no host (no SNI) or one no certificate covers.
    pub fn certificate(
        mut self,
        chain: impl Into<PathBuf>,
        key: impl Into<PathBuf>,
    ) -> TlsBuilder<WithCertificate> {
        self.pairs.push(Pair {
            chain: chain.into(),
            key: key.into(),
        });
        TlsBuilder {
            pairs: self.pairs,
            http2: self.http2,
            state: PhantomData,
        }
    }

    /// Whether HTTP/2 is offered in ALPN (default true); HTTP/1.1 always is.
    pub fn http2(mut self, offered: bool) -> Self {
        self.http2 = offered;
        self
    }
}

impl TlsBuilder<WithCertificate> {
    /// Reads and checks every certificate (it parses, it is valid now, the
    /// key is its own).
    pub fn build(self) -> Result<Tls, TlsError> {
        let config = load(&self.pairs, self.http2)?;
        Ok(Tls {
            pairs: self.pairs.into(),
            http2: self.http2,
            current: Arc::new(ArcSwap::from_pointee(config)),
        })
    }
}

/// The rustls settings for `pairs`, read from their files.
fn load(pairs: &[Pair], http2: bool) -> Result<rustls::ServerConfig, TlsError> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let sites = pairs
        .iter()
        .map(|pair| load_pair(pair, &provider))
        .collect::<Result<Vec<_>, _>>()?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(BySni { sites }));
    config.alpn_protocols = if http2 {
        vec![b"h2".to_vec(), b"http/1.1".to_vec()]
    } else {
        vec![b"http/1.1".to_vec()]
    };
    Ok(config)
}

fn load_pair(pair: &Pair, provider: &CryptoProvider) -> Result<Arc<CertifiedKey>, TlsError> {
    let text = read_pem(&pair.chain)?;
    let bad = |reason| TlsError::Certificate {
        path: pair.chain.clone(),
        reason,
    };
    let chain = CertificateDer::pem_slice_iter(&text)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| bad("not a PEM certificate chain"))?;
    let leaf = chain.first().ok_or(bad("no PEM certificate in it"))?;
    check_validity(&pair.chain, leaf)?;
    let text = read_pem(&pair.key)?;
    let key = PrivateKeyDer::from_pem_slice(&text).map_err(|_| TlsError::Key {
        path: pair.key.clone(),
        reason: "no PEM private key in it (PKCS#8, PKCS#1 or SEC1)",
    })?;
    let key = provider
        .key_provider
        .load_private_key(key)
        .map_err(|_| TlsError::Key {
            path: pair.key.clone(),
            reason: "a private key of a kind TLS cannot sign with here (RSA, ECDSA P-256 or P-384, Ed25519 can)",
        })?;
    let certified = CertifiedKey::new(chain, key);
    match certified.keys_match() {
        Ok(()) => Ok(Arc::new(certified)),
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch)) => {
            Err(TlsError::KeyMismatch {
                chain: pair.chain.clone(),
                key: pair.key.clone(),
            })
        }
        Err(_) => Err(bad("the certificate does not parse")),
    }
}

/// A PEM file's text, kept from memory once read (it may hold a key).
fn read_pem(path: &Path) -> Result<zeroize::Zeroizing<Vec<u8>>, TlsError> {
    use std::io::Read as _;
    let read = |source| TlsError::Read {
        path: path.to_owned(),
        source,
    };
    let mut text = zeroize::Zeroizing::new(Vec::new());
    std::fs::File::open(path)
        .map_err(read)?
        .take(MAX_PEM_FILE + 1)
        .read_to_end(&mut text)
        .map_err(read)?;
    if text.len() as u64 > MAX_PEM_FILE {
        return Err(TlsError::TooLarge {
            path: path.to_owned(),
        });
    }
    Ok(text)
}

/// Refuses a certificate that is not valid now: every client would refuse
/// it, so the server says so once, at start or reload.
fn check_validity(path: &Path, leaf: &CertificateDer<'_>) -> Result<(), TlsError> {
    let (_, cert) =
        x509_parser::parse_x509_certificate(leaf).map_err(|_| TlsError::Certificate {
            path: path.to_owned(),
            reason: "the certificate does not parse",
        })?;
    let validity = cert.validity();
    if validity.is_valid() {
        return Ok(());
    }
    Err(TlsError::OutOfDate {
        path: path.to_owned(),
        not_before: validity.not_before.to_string(),
        not_after: validity.not_after.to_string(),
    })
}

/// Chooses each handshake's certificate: the first one valid for the name
/// the client asks for (SNI), as a client would check it (subject
/// alternative names, wildcards), else the first one.
#[derive(Debug)]
struct BySni {
    sites: Vec<Arc<CertifiedKey>>,
}

impl ResolvesServerCert for BySni {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let chosen = hello.server_name().and_then(|name| {
            let name = ServerName::try_from(name).ok()?;
            self.sites.iter().find(|site| {
                site.end_entity_cert()
                    .ok()
                    .and_then(|der| webpki::EndEntityCert::try_from(der).ok())
                    .is_some_and(|cert| cert.verify_is_valid_for_subject_name(&name).is_ok())
            })
        });
        chosen.or_else(|| self.sites.first()).cloned()
    }
}

/// A TCP connection whose first bytes were read already (after a PROXY
/// header): reads return them first, then the socket's.
#[derive(Debug)]
pub(crate) struct Prefixed {
    read: Bytes,
    pub(crate) tcp: TcpStream,
}

impl Prefixed {
    pub(crate) fn new(read: Bytes, tcp: TcpStream) -> Self {
        Prefixed { read, tcp }
    }

    /// Whether bytes read before the handshake are still to be read.
    pub(crate) fn has_unread(&self) -> bool {
        !self.read.is_empty()
    }
}

impl AsyncRead for Prefixed {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.read.is_empty() {
            return Pin::new(&mut self.tcp).poll_read(cx, buf);
        }
        let n = self.read.len().min(buf.remaining());
        buf.put_slice(&self.read[..n]);
        self.read.advance(n);
        if self.read.is_empty() {
            // The buffer they were read into goes now, not with the
            // connection.
            self.read = Bytes::new();
        }
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for Prefixed {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.tcp).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.tcp).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// Writes a self-signed certificate for `name` and its key to
    /// `{file}.pem` and `{file}.key` in `dir`.
    fn site(dir: &Path, file: &str, name: &str) {
        let key = rcgen::KeyPair::generate().unwrap();
        let params = rcgen::CertificateParams::new(vec![name.to_owned()]).unwrap();
        let cert = params.self_signed(&key).unwrap();
        std::fs::write(dir.join(format!("{file}.pem")), cert.pem()).unwrap();
        std::fs::write(dir.join(format!("{file}.key")), key.serialize_pem()).unwrap();
    }

    fn build(dir: &Path, chain: &str, key: &str) -> Result<Tls, TlsError> {
        Tls::builder()
            .certificate(dir.join(chain), dir.join(key))
            .build()
    }

    #[test]
    fn each_bad_file_has_its_code_and_no_content_in_its_message() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        site(d, "a", "a.test");
        site(d, "b", "b.test");
        std::fs::write(d.join("text"), "SECRET-LOOKING TEXT").unwrap();
        let big = std::fs::File::create(d.join("big")).unwrap();
        big.set_len(MAX_PEM_FILE + 1).unwrap();
        for (chain, key, code) in [
            ("missing", "a.key", "unreadable"),
            ("big", "a.key", "too_large"),
            ("text", "a.key", "bad_certificate"),
            ("a.pem", "text", "bad_key"),
            ("a.pem", "a.pem", "bad_key"),
            ("a.pem", "b.key", "key_mismatch"),
        ] {
            let err = build(d, chain, key).unwrap_err();
            assert_eq!(err.code(), code, "{chain} {key}: {err}");
            assert!(!err.to_string().contains("SECRET"), "{err}");
            assert!(!err.to_string().contains('\n'), "{err}");
        }
        assert!(build(d, "a.pem", "a.key").is_ok());
    }

    #[test]
    fn a_failed_reload_keeps_the_certificates_in_force() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        site(d, "a", "a.test");
        let tls = build(d, "a.pem", "a.key").unwrap();
        let before = tls.current.load_full();
        std::fs::write(d.join("a.key"), "gone").unwrap();
        assert_eq!(tls.reload().unwrap_err().code(), "bad_key");
        assert!(Arc::ptr_eq(&before, &tls.current.load_full()));
        // Repaired: the next reload puts the new files in force, for
        // every clone.
        let clone = tls.clone();
        site(d, "a", "a.test");
        tls.reload().unwrap();
        assert!(!Arc::ptr_eq(&before, &clone.current.load_full()));
        // Debug names the files, never what they hold.
        let shown = format!("{tls:?}");
        assert!(
            shown.contains("a.key") && !shown.contains("PRIVATE"),
            "{shown}"
        );
    }

    #[test]
    fn alpn_offers_h2_only_when_asked() {
        let dir = tempfile::tempdir().unwrap();
        site(dir.path(), "a", "a.test");
        let with = build(dir.path(), "a.pem", "a.key").unwrap();
        let without = Tls::builder()
            .http2(false)
            .certificate(dir.path().join("a.pem"), dir.path().join("a.key"))
            .build()
            .unwrap();
        assert_eq!(
            with.current.load().alpn_protocols,
            [b"h2".to_vec(), b"http/1.1".to_vec()]
        );
        assert_eq!(
            without.current.load().alpn_protocols,
            [b"http/1.1".to_vec()]
        );
    }
}
