//! Minting links: [`Signer`], its per-link [`LinkBuilder`], and the
//! [`SignedLink`] that renders the token in each transport.

use std::borrow::Cow;
use std::net::IpAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use ipnet::IpNet;
use time::{Duration, OffsetDateTime};

use crate::key::Keyring;
use crate::limits::{self, ClaimError, MAX_TIME};
use crate::path::{self, MediaPath, PathError};
use crate::transport::{self, Token};
use crate::upload::UploadLimits;
use crate::values::{DispositionType, Method, Methods};
use crate::wire::{self, PayloadBuf, RawClaims};

/// The longest lifetime a [`Signer`] or [`Verifier`](crate::Verifier)
/// accepts unless configured otherwise: 7 days.
pub const DEFAULT_MAX_TTL: Duration = Duration::days(7);

/// Why a link could not be signed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SignError {
    /// The path is not canonical (see [`MediaPath`]).
    #[error("invalid path: {0}")]
    Path(#[from] PathError),
    /// No expiry was given and the signer has no default TTL.
    #[error("a link needs an expiry (ttl or expires_at)")]
    MissingExpiry,
    /// A claim value is refused.
    #[error(transparent)]
    Claim(#[from] ClaimError),
    /// The link would expire at or before the moment it is signed.
    #[error("the link's lifetime must be positive")]
    NonPositiveLifetime,
    /// The lifetime exceeds the signer's maximum.
    #[error("the link's lifetime {lifetime} exceeds the maximum {max}")]
    LifetimeTooLong {
        /// The requested lifetime.
        lifetime: Duration,
        /// The signer's maximum.
        max: Duration,
    },
    /// The not-before time is not earlier than the expiry.
    #[error("not-before must be earlier than the expiry")]
    NotBeforeAfterExpiry,
    /// A time is before 1970 or after 9999.
    #[error("time is outside 1970..=9999")]
    TimeOutOfRange,
    /// No method was granted.
    #[error("a link must grant at least one method")]
    NoMethods,
    /// The file asked for is outside a prefix link's scope.
    #[error("path is outside the link's scope")]
    OutsideScope,
    /// The path starts with `/_mg/`, which a verifier reads as the path-form
    /// transport's marker: a query or cookie link to it could not work.
    #[error("paths below /_mg/ are reserved for path-form links")]
    ReservedPath,
    /// [`Signer::link`] was given a path ending in `/`, which would grant
    /// every file below it: a prefix grant is only made by
    /// [`Signer::prefix`], so that an app building a path from input (an
    /// empty file name) never grants a directory by accident.
    #[error(
        "the path ends in '/', which would grant every file below it: \
         ask for a prefix link explicitly (Signer::prefix, or --prefix)"
    )]
    PrefixNotAsked,
    /// [`Signer::prefix`] was given a path that does not end in `/`.
    #[error("a prefix link's path must end in '/' (a directory)")]
    PrefixWithoutSlash,
    /// A cookie domain that is not a host name.
    #[error("a cookie domain must be a host name such as example.com")]
    BadDomain,
    /// Upload limits (a maximum size, a digest, replace) on a link that
    /// does not grant `PUT`.
    #[error("upload limits need a link that grants PUT")]
    UploadWithoutPut,
    /// `replace` on a prefix link, which may only create new files.
    #[error("a prefix upload link creates new files only: replace needs a link to one file")]
    ReplaceBelowPrefix,
}

impl SignError {
    /// A short, stable name for the error, as the test vectors' `unsignable`
    /// cases write it (`prefix_not_asked`, `prefix_without_slash`,
    /// `reserved_path`, `bad_path`, ...).
    pub fn code(&self) -> &'static str {
        match self {
            SignError::Path(_) => "bad_path",
            SignError::MissingExpiry => "missing_expiry",
            SignError::Claim(_) => "bad_claim",
            SignError::NonPositiveLifetime => "non_positive_lifetime",
            SignError::LifetimeTooLong { .. } => "lifetime_too_long",
            SignError::NotBeforeAfterExpiry => "not_before_after_expiry",
            SignError::TimeOutOfRange => "time_out_of_range",
            SignError::NoMethods => "no_methods",
            SignError::OutsideScope => "outside_scope",
            SignError::ReservedPath => "reserved_path",
            SignError::PrefixNotAsked => "prefix_not_asked",
            SignError::PrefixWithoutSlash => "prefix_without_slash",
            SignError::BadDomain => "bad_domain",
            SignError::UploadWithoutPut => "upload_without_put",
            SignError::ReplaceBelowPrefix => "replace_below_prefix",
        }
    }
}

/// Mints signed links with the active key of a [`Keyring`].
///
/// Defaults: maximum lifetime [`DEFAULT_MAX_TTL`], no default TTL (each link
/// must say when it expires).
#[derive(Debug, Clone)]
pub struct Signer {
    keyring: Keyring,
    max_ttl: Duration,
    default_ttl: Option<Duration>,
}

impl Signer {
    /// A signer that signs with `keyring`'s active key.
    pub fn new(keyring: Keyring) -> Self {
        Signer {
            keyring,
            max_ttl: DEFAULT_MAX_TTL,
            default_ttl: None,
        }
    }

    /// Refuses to sign links that live longer than `max` (default 7 days).
    /// Keep it no larger than the verifiers' `max_ttl`.
    pub fn max_ttl(mut self, max: Duration) -> Self {
        self.max_ttl = max;
        self
    }

    /// The lifetime of links that set neither `ttl` nor `expires_at`
    /// (default: none, and such links are refused).
    pub fn default_ttl(mut self, ttl: Duration) -> Self {
        self.default_ttl = Some(ttl);
        self
    }

    /// The keyring.
    pub fn keyring(&self) -> &Keyring {
        &self.keyring
    }

    /// Starts a link for `user` to exactly one file. `user` is 1 to 128
    /// printable ASCII characters without spaces (`!` to `~`), else
    /// [`ClaimError::Subject`] when signing: use the user's primary key
    /// (`"42"`), or a hex digest of a longer identifier such as an email;
    /// it is signed, not secret. `path` is decoded (not URL-encoded); one
    /// ending in `/` is refused when signing ([`SignError::PrefixNotAsked`]):
    /// a directory needs [`prefix`](Self::prefix).
    pub fn link<'a>(&'a self, user: &'a str, path: &'a str) -> LinkBuilder<'a> {
        self.builder(user, path, false)
    }

    /// Starts a link for `user` (as in [`link`](Self::link)) to every file
    /// below the directory `dir`, which must end in `/` (`/videos/show-1/`;
    /// else [`SignError::PrefixWithoutSlash`]).
    /// Scopes match whole segments: `/videos/` never covers `/videos-2/a`.
    pub fn prefix<'a>(&'a self, user: &'a str, dir: &'a str) -> LinkBuilder<'a> {
        self.builder(user, dir, true)
    }

    /// Starts an upload link for `user` (as in [`link`](Self::link)): `PUT`
    /// of the one file `path`, creating it (unless
    /// [`replace`](LinkBuilder::replace) is asked), with the limits set on
    /// the builder ([`max_size`](LinkBuilder::max_size),
    /// [`content_type`](LinkBuilder::content_type),
    /// [`sha256`](LinkBuilder::sha256)). For new files below a directory,
    /// use [`prefix`](Self::prefix) with `.methods(Methods::PUT)`.
    pub fn upload<'a>(&'a self, user: &'a str, path: &'a str) -> LinkBuilder<'a> {
        self.builder(user, path, false).methods(Methods::PUT)
    }

    fn builder<'a>(&'a self, user: &'a str, path: &'a str, prefix: bool) -> LinkBuilder<'a> {
        LinkBuilder {
            signer: self,
            path,
            prefix,
            subject: user,
            ttl: None,
            expires_at: None,
            not_before: None,
            issued_at: None,
            methods: Methods::READ,
            client_net: None,
            disposition: None,
            content_type: None,
            generation: None,
            upload: UploadLimits::default(),
        }
    }
}

/// The claims of one link, set one by one; [`sign`](Self::sign) checks them
/// and mints the token. Defaults: methods GET and HEAD, issued now, no
/// not-before, no IP binding, no overrides, no generation.
#[derive(Debug, Clone)]
#[must_use = "a link builder does nothing until .sign() is called"]
pub struct LinkBuilder<'a> {
    signer: &'a Signer,
    path: &'a str,
    /// Made by [`Signer::prefix`].
    prefix: bool,
    subject: &'a str,
    ttl: Option<Duration>,
    expires_at: Option<OffsetDateTime>,
    not_before: Option<OffsetDateTime>,
    issued_at: Option<OffsetDateTime>,
    methods: Methods,
    client_net: Option<IpNet>,
    disposition: Option<(DispositionType, &'a str)>,
    content_type: Option<&'a str>,
    generation: Option<u64>,
    upload: UploadLimits,
}

impl<'a> LinkBuilder<'a> {
    /// How long the link lives from when it is signed.
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = Some(ttl);
        self.expires_at = None;
        self
    }

    /// When the link stops working (instead of [`ttl`](Self::ttl)).
    pub fn expires_at(mut self, at: OffsetDateTime) -> Self {
        self.expires_at = Some(at);
        self.ttl = None;
        self
    }

    /// When the link starts working (default: when it is signed).
    pub fn not_before(mut self, at: OffsetDateTime) -> Self {
        self.not_before = Some(at);
        self
    }

    /// The signing time (default: the system clock). For tests and test
    /// vectors.
    pub fn issued_at(mut self, at: OffsetDateTime) -> Self {
        self.issued_at = Some(at);
        self
    }

    /// The methods the link grants (default GET and HEAD).
    pub fn methods(mut self, methods: Methods) -> Self {
        self.methods = methods;
        self
    }

    /// Binds the link to one client address.
    pub fn client_ip(mut self, ip: IpAddr) -> Self {
        let ip = ip.to_canonical();
        let prefix = if ip.is_ipv4() { 32 } else { 128 };
        self.client_net = IpNet::new(ip, prefix).ok();
        self
    }

    /// Binds the link to a client network; host bits are cleared.
    pub fn client_net(mut self, net: IpNet) -> Self {
        self.client_net = Some(net.trunc());
        self
    }

    /// Asks the verifier to send `Content-Disposition: attachment` with this
    /// download filename.
    pub fn attachment(mut self, filename: &'a str) -> Self {
        self.disposition = Some((DispositionType::Attachment, filename));
        self
    }

    /// Asks the verifier to send `Content-Disposition: inline`, with a
    /// filename for "save as" (may be empty for none).
    pub fn inline(mut self, filename: &'a str) -> Self {
        self.disposition = Some((DispositionType::Inline, filename));
        self
    }

    /// Asks the verifier to send this `Content-Type` instead of the one
    /// guessed from the extension; on an upload link, the type the upload
    /// must be sent with (and whose signature its first bytes must bear).
    pub fn content_type(mut self, content_type: &'a str) -> Self {
        self.content_type = Some(content_type);
        self
    }

    /// Carries a revocation generation (a per-user epoch) in the link, for
    /// a verifier that checks it (the bundled server does not yet).
    pub fn generation(mut self, generation: u64) -> Self {
        self.generation = Some(generation);
        self
    }

    /// Upload links: the most bytes the upload may have (default: the
    /// verifier's own limit only).
    pub fn max_size(mut self, bytes: u64) -> Self {
        self.upload.max_size = Some(bytes);
        self
    }

    /// Upload links: the SHA-256 of the exact bytes to be uploaded (default:
    /// any bytes).
    pub fn sha256(mut self, digest: [u8; 32]) -> Self {
        self.upload.sha256 = Some(digest);
        self
    }

    /// Upload links: whether an existing file may be replaced (default
    /// `false`: the upload may only create the file). Not on a prefix link.
    pub fn replace(mut self, replace: bool) -> Self {
        self.upload.replace = replace;
        self
    }

    /// Checks the claims and signs. Allocates only the token string.
    pub fn sign(self) -> Result<SignedLink<'a>, SignError> {
        self.seal(|sealed| SignedLink {
            token: transport::render_token(Token::Signed(sealed.bytes)),
            path: Cow::Borrowed(sealed.path),
            expires: sealed.expires,
        })
    }

    /// Signs and renders the token in one step; allocates only the token.
    pub fn token(self) -> Result<String, SignError> {
        self.seal(|sealed| transport::render_token(Token::Signed(sealed.bytes)))
    }

    /// Signs and renders the query-form URL (see [`SignedLink::url`]) in one
    /// step; allocates only the URL. What a template calls per link.
    pub fn url(self, base: &str) -> Result<String, SignError> {
        self.seal(|sealed| transport::render_url(base, sealed.path, Token::Signed(sealed.bytes)))
    }

    /// Signs and renders the path-form URL (see [`SignedLink::path_form`])
    /// in one step; allocates only the URL.
    pub fn path_form(self, base: &str) -> Result<String, SignError> {
        self.seal(|sealed| {
            transport::render_path_form(base, sealed.path, Token::Signed(sealed.bytes))
        })
    }

    /// Checks the claims, signs them in a stack buffer (a heap one for
    /// unusually long links) and hands the signed bytes to `render`.
    fn seal<R>(self, render: impl FnOnce(Sealed<'_, 'a>) -> R) -> Result<R, SignError> {
        let path = MediaPath::parse(self.path)?;
        if path::is_reserved(self.path) {
            return Err(SignError::ReservedPath);
        }
        match (self.prefix, path.is_dir()) {
            (false, true) => return Err(SignError::PrefixNotAsked),
            (true, false) => return Err(SignError::PrefixWithoutSlash),
            _ => {}
        }
        let subject = self.subject;
        limits::check_subject(subject)?;
        if self.methods.bits() == 0 {
            return Err(SignError::NoMethods);
        }
        let upload = (!self.upload.is_empty()).then_some(self.upload);
        if upload.is_some() && !self.methods.contains(Method::Put) {
            return Err(SignError::UploadWithoutPut);
        }
        if self.upload.replace && self.prefix {
            return Err(SignError::ReplaceBelowPrefix);
        }
        // Whole seconds plus nanoseconds since 1970: exact, and much cheaper
        // than calendar arithmetic.
        let (now_s, now_ns) = match self.issued_at {
            Some(at) => (at.unix_timestamp(), i64::from(at.nanosecond())),
            None => system_now()?,
        };
        let lifetime = match (self.expires_at, self.ttl.or(self.signer.default_ttl)) {
            // Both within the calendar's years, so neither part overflows.
            (Some(at), _) => Duration::new(
                at.unix_timestamp() - now_s,
                (i64::from(at.nanosecond()) - now_ns) as i32,
            ),
            (None, Some(ttl)) => ttl,
            (None, None) => return Err(SignError::MissingExpiry),
        };
        if lifetime <= Duration::ZERO {
            return Err(SignError::NonPositiveLifetime);
        }
        if lifetime > self.signer.max_ttl {
            return Err(SignError::LifetimeTooLong {
                lifetime,
                max: self.signer.max_ttl,
            });
        }
        // expires = floor(now + lifetime), in whole seconds.
        let nanos = now_ns + i64::from(lifetime.subsec_nanoseconds());
        let expires_s = now_s
            .checked_add(lifetime.whole_seconds())
            .and_then(|s| s.checked_add(nanos.div_euclid(NANOS)))
            .ok_or(SignError::TimeOutOfRange)?;
        let issued_at = unix_seconds(now_s)?;
        let expires = unix_seconds(expires_s)?;
        if expires <= issued_at {
            return Err(SignError::NonPositiveLifetime);
        }
        let not_before = self.not_before.map(unix).transpose()?;
        if not_before.is_some_and(|nbf| nbf >= expires) {
            return Err(SignError::NotBeforeAfterExpiry);
        }
        if let Some((_, name)) = self.disposition {
            if !name.is_empty() {
                limits::check_filename(name)?;
            }
        }
        if let Some(ct) = self.content_type {
            limits::check_content_type(ct)?;
        }
        let key = self.signer.keyring.active();
        let claims = RawClaims {
            key_id: key.id(),
            methods: self.methods,
            issued_at,
            expires,
            not_before,
            subject,
            path: path.as_str(),
            client_net: self.client_net,
            disposition: self.disposition,
            content_type: self.content_type,
            generation: self.generation,
            upload,
        };
        let needed = wire::payload_len(&claims) + limits::TAG_LEN;
        let mut stack = [0u8; wire::STACK_BUF_LEN];
        let mut heap = Vec::new();
        let bytes = if needed <= stack.len() {
            &mut stack[..needed]
        } else {
            heap.resize(needed, 0);
            &mut heap[..]
        };
        let mut buf = PayloadBuf::new(bytes);
        wire::encode_payload(&claims, &mut buf);
        let tag = key.link_tag(buf.as_slice());
        buf.extend_from_slice(&tag);
        Ok(render(Sealed {
            bytes: buf.as_slice(),
            path: self.path,
            expires,
        }))
    }
}

/// A link's signed bytes (payload and tag), before any rendering.
struct Sealed<'b, 'a> {
    bytes: &'b [u8],
    path: &'a str,
    expires: u64,
}

const NANOS: i64 = 1_000_000_000;

/// The system clock as whole seconds and nanoseconds since 1970, read
/// without building an `OffsetDateTime`, whose calendar fields cost as much
/// again as the read itself (BENCHMARKS.md, "Design measurements"): this
/// runs for every link that does not set its signing time.
fn system_now() -> Result<(i64, i64), SignError> {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_err(|_| SignError::TimeOutOfRange)?;
    let secs = i64::try_from(since.as_secs()).map_err(|_| SignError::TimeOutOfRange)?;
    Ok((secs, i64::from(since.subsec_nanos())))
}

/// Unix seconds of `t`, within the range the format allows.
fn unix(t: OffsetDateTime) -> Result<u64, SignError> {
    unix_seconds(t.unix_timestamp())
}

/// Unix seconds within the format's range (1970..=9999).
fn unix_seconds(s: i64) -> Result<u64, SignError> {
    u64::try_from(s)
        .ok()
        .filter(|&s| s <= MAX_TIME)
        .ok_or(SignError::TimeOutOfRange)
}

/// A signed link: the token, and the ways to hand it to a client.
///
/// Every rendering takes `base`, the URL where the verifier's mount point is
/// (`https://media.example.com/media`, or an absolute path such as
/// `/media`), and appends the URL-encoded path. `base` is used as given, so
/// it must hold no query and no fragment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedLink<'a> {
    token: String,
    path: Cow<'a, str>,
    expires: u64,
}

impl SignedLink<'_> {
    /// The token alone.
    pub fn token(&self) -> &str {
        &self.token
    }

    /// The token alone, without copying.
    pub fn into_token(self) -> String {
        self.token
    }

    /// The signed path (decoded).
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The link with its own copy of the path, free of the builder's
    /// borrows (to keep, or to hand to another language's runtime).
    pub fn into_owned(self) -> SignedLink<'static> {
        SignedLink {
            token: self.token,
            path: Cow::Owned(self.path.into_owned()),
            expires: self.expires,
        }
    }

    /// When the link expires.
    pub fn expires_at(&self) -> OffsetDateTime {
        crate::claims::to_datetime(self.expires)
    }

    /// The query string that carries the token: `mg_token=<token>`.
    pub fn query(&self) -> String {
        transport::render_query(Token::Encoded(&self.token))
    }

    /// `base` + path + `?mg_token=<token>`.
    pub fn url(&self, base: &str) -> String {
        transport::render_url(base, &self.path, Token::Encoded(&self.token))
    }

    /// The query-form URL of `file`, which must lie within a prefix link's
    /// scope (or be the exact path).
    pub fn url_for(&self, base: &str, file: &str) -> Result<String, SignError> {
        self.check_within(file)?;
        Ok(transport::render_url(
            base,
            file,
            Token::Encoded(&self.token),
        ))
    }

    /// `base` + `/_mg/<token>` + path: the token as a leading path segment,
    /// so that relative URLs inside a playlist (HLS, DASH) inherit it.
    pub fn path_form(&self, base: &str) -> String {
        transport::render_path_form(base, &self.path, Token::Encoded(&self.token))
    }

    /// The path-form URL of `file`, which must lie within the link's scope.
    pub fn path_form_for(&self, base: &str, file: &str) -> Result<String, SignError> {
        self.check_within(file)?;
        Ok(transport::render_path_form(
            base,
            file,
            Token::Encoded(&self.token),
        ))
    }

    /// A `Set-Cookie` value that carries the token for requests below
    /// `mount` + the signed path, expiring with the link:
    /// `mg_token=<token>; Path=/media/videos/; Max-Age=600; Secure; HttpOnly; SameSite=Lax`.
    /// `now` computes `Max-Age`.
    pub fn set_cookie(&self, mount: &str, now: OffsetDateTime) -> String {
        let max_age = (self.expires as i64 - now.unix_timestamp()).max(0);
        transport::render_set_cookie(
            mount,
            &self.path,
            None,
            max_age,
            Token::Encoded(&self.token),
        )
    }

    /// [`set_cookie`](Self::set_cookie) with `Domain=<domain>`, so that an
    /// app on `app.example.com` can hand the cookie to a media server on
    /// `media.example.com` by naming their shared parent `example.com`
    /// (the browser then sends it to every host below that domain). The
    /// domain is a host name (letters, digits, `-`, `.`; a leading `.` is
    /// dropped, as browsers do); anything else is
    /// [`SignError::BadDomain`].
    pub fn set_cookie_for_domain(
        &self,
        mount: &str,
        domain: &str,
        now: OffsetDateTime,
    ) -> Result<String, SignError> {
        let domain = domain.strip_prefix('.').unwrap_or(domain);
        let label_ok = |l: &str| {
            (1..=63).contains(&l.len())
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        };
        if domain.len() > 253 || !domain.split('.').all(label_ok) {
            return Err(SignError::BadDomain);
        }
        let max_age = (self.expires as i64 - now.unix_timestamp()).max(0);
        Ok(transport::render_set_cookie(
            mount,
            &self.path,
            Some(domain),
            max_age,
            Token::Encoded(&self.token),
        ))
    }

    fn check_within(&self, file: &str) -> Result<(), SignError> {
        let file = MediaPath::parse(file)?;
        if path::scope_covers(self.path.as_bytes(), file.as_str().as_bytes()) {
            Ok(())
        } else {
            Err(SignError::OutsideScope)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::Key;

    fn signer() -> Signer {
        Signer::new(Keyring::new(Key::new("k1", &[7u8; 32]).unwrap()))
    }

    fn t0() -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap()
    }

    #[test]
    fn an_owned_link_renders_as_the_borrowed_one() {
        let s = signer();
        let (owned, url, entry) = {
            let path = String::from("/videos/show 1/");
            let link = s
                .prefix("42", &path)
                .ttl(Duration::minutes(5))
                .sign()
                .unwrap();
            let url = link.url("/m");
            let entry = link.path_form_for("/m", "/videos/show 1/a.ts").unwrap();
            (link.into_owned(), url, entry)
        };
        assert_eq!(owned.url("/m"), url);
        assert_eq!(owned.path(), "/videos/show 1/");
        assert_eq!(
            owned.path_form_for("/m", "/videos/show 1/a.ts").unwrap(),
            entry
        );
    }

    #[test]
    fn refuses_bad_claims() {
        let s = signer();
        let base = |p| s.link("42", p).issued_at(t0()).ttl(Duration::minutes(5));
        assert_eq!(
            base("/a/../b").sign().err(),
            Some(SignError::Path(PathError::DotSegment))
        );
        assert_eq!(
            s.link("", "/a")
                .issued_at(t0())
                .ttl(Duration::minutes(1))
                .sign()
                .err(),
            Some(SignError::Claim(ClaimError::Subject))
        );
        assert_eq!(
            s.link("42", "/a").sign().err(),
            Some(SignError::MissingExpiry)
        );
        assert_eq!(
            s.link("a b", "/a")
                .issued_at(t0())
                .ttl(Duration::minutes(5))
                .sign()
                .err(),
            Some(SignError::Claim(ClaimError::Subject))
        );
        assert_eq!(
            base("/a").ttl(Duration::ZERO).sign().err(),
            Some(SignError::NonPositiveLifetime)
        );
        assert_eq!(
            base("/a").ttl(Duration::seconds(-5)).sign().err(),
            Some(SignError::NonPositiveLifetime)
        );
        assert!(matches!(
            base("/a").ttl(Duration::days(8)).sign(),
            Err(SignError::LifetimeTooLong { .. })
        ));
        assert_eq!(
            base("/a")
                .not_before(t0() + Duration::hours(1))
                .sign()
                .err(),
            Some(SignError::NotBeforeAfterExpiry)
        );
        assert_eq!(
            base("/a").attachment("a/b").sign().err(),
            Some(SignError::Claim(ClaimError::Filename))
        );
        assert_eq!(
            base("/a").content_type("text/html\r\n").sign().err(),
            Some(SignError::Claim(ClaimError::ContentType))
        );
        assert_eq!(
            base("/a")
                .issued_at(OffsetDateTime::from_unix_timestamp(-10).unwrap())
                .sign()
                .err(),
            Some(SignError::TimeOutOfRange)
        );
        // Below the path-form marker: reserved. The name itself, or a name
        // that only starts like it, is an ordinary path.
        for reserved in ["/_mg/", "/_mg/a", "/_mg/t/videos/"] {
            assert_eq!(
                base(reserved).sign().err(),
                Some(SignError::ReservedPath),
                "{reserved}"
            );
        }
        for ordinary in ["/_mg", "/_mgx/a", "/a/_mg/b", "/_MG/a"] {
            assert!(base(ordinary).sign().is_ok(), "{ordinary}");
        }
    }

    #[test]
    fn a_directory_is_granted_only_when_asked_for() {
        let s = signer();
        let exact = |p| s.link("1", p).issued_at(t0()).ttl(Duration::minutes(1));
        let prefix = |p| s.prefix("1", p).issued_at(t0()).ttl(Duration::minutes(1));
        // "/files/" + an empty name: refused, with a message that says how
        // to ask for a directory.
        for dir in ["/", "/files/", "/a/b/"] {
            let err = exact(dir).sign().err();
            assert_eq!(err, Some(SignError::PrefixNotAsked), "{dir}");
            assert!(err.is_some_and(|e| e.to_string().contains("Signer::prefix")));
            assert!(exact(dir).url("/m").is_err() && exact(dir).token().is_err());
            let link = prefix(dir).sign().unwrap();
            let claims = crate::decode_unverified(link.token()).unwrap();
            assert_eq!(claims.path(), dir);
        }
        for file in ["/a", "/files/a.pdf"] {
            assert_eq!(
                prefix(file).sign().err(),
                Some(SignError::PrefixWithoutSlash),
                "{file}"
            );
            assert!(exact(file).sign().is_ok());
        }
    }

    #[test]
    fn renders_every_transport() {
        let s = signer();
        let link = s
            .prefix("42", "/videos/show/")
            .issued_at(t0())
            .ttl(Duration::minutes(10))
            .sign()
            .unwrap();
        let token = link.token().to_owned();
        assert_eq!(link.query(), format!("mg_token={token}"));
        assert_eq!(
            link.url("https://cdn.example/media/"),
            format!("https://cdn.example/media/videos/show/?mg_token={token}")
        );
        assert_eq!(
            link.path_form("https://cdn.example/media"),
            format!("https://cdn.example/media/_mg/{token}/videos/show/")
        );
        assert_eq!(
            link.url_for("/m", "/videos/show/seg 1.ts").unwrap(),
            format!("/m/videos/show/seg%201.ts?mg_token={token}")
        );
        assert_eq!(
            link.path_form_for("/m", "/videos/other.ts").err(),
            Some(SignError::OutsideScope)
        );
        assert_eq!(
            link.set_cookie("/media", t0() + Duration::minutes(1)),
            format!(
                "mg_token={token}; Path=/media/videos/show/; Max-Age=540; Secure; HttpOnly; SameSite=Lax"
            )
        );
        assert_eq!(link.expires_at(), t0() + Duration::minutes(10));
        for domain in ["example.com", ".example.com"] {
            assert_eq!(
                link.set_cookie_for_domain("/media", domain, t0() + Duration::minutes(1))
                    .unwrap(),
                format!(
                    "mg_token={token}; Path=/media/videos/show/; Domain=example.com; Max-Age=540; Secure; HttpOnly; SameSite=Lax"
                )
            );
        }
        for bad in [
            "",
            "exa mple.com",
            "a;b",
            "x..y",
            "-a.com",
            "a.com\r\nX: y",
            "é.com",
        ] {
            assert_eq!(
                link.set_cookie_for_domain("/m", bad, t0()).err(),
                Some(SignError::BadDomain),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn system_clock_times_links_without_a_signing_time() {
        let s = signer();
        let before = OffsetDateTime::now_utc().unix_timestamp();
        let link = s.link("1", "/a").ttl(Duration::minutes(10)).sign().unwrap();
        let after = OffsetDateTime::now_utc().unix_timestamp();
        let claims = crate::decode_unverified(link.token()).unwrap();
        let issued = claims.issued_at().unix_timestamp();
        assert!(
            (before..=after).contains(&issued),
            "{before} <= {issued} <= {after}"
        );
        assert_eq!(claims.expires_at().unix_timestamp(), issued + 600);
    }

    #[test]
    fn expiry_times_count_from_the_exact_signing_time() {
        let s = signer();
        let now = t0() + Duration::milliseconds(700);
        let sign = |at: OffsetDateTime| s.link("1", "/a").issued_at(now).expires_at(at).sign();
        // 9.5 s after a signing time of t0 + 0.7 s: the expiry is whole
        // seconds, rounded down.
        let link = sign(t0() + Duration::milliseconds(10_200)).unwrap();
        assert_eq!(link.expires_at(), t0() + Duration::seconds(10));
        // Later within the signing second, or earlier: no lifetime left.
        for at in [
            now + Duration::milliseconds(200),
            now,
            now - Duration::seconds(5),
        ] {
            assert_eq!(sign(at).err(), Some(SignError::NonPositiveLifetime), "{at}");
        }
        // A lifetime measured from the exact time, not the whole second.
        let s = s.max_ttl(Duration::seconds(10));
        let at = now + Duration::milliseconds(10_100);
        assert!(matches!(
            s.link("1", "/a").issued_at(now).expires_at(at).sign(),
            Err(SignError::LifetimeTooLong { lifetime, .. }) if lifetime == Duration::milliseconds(10_100)
        ));
    }

    #[test]
    fn default_ttl_applies() {
        let s = signer().default_ttl(Duration::minutes(3));
        let link = s.link("1", "/a").issued_at(t0()).sign().unwrap();
        assert_eq!(link.expires_at(), t0() + Duration::minutes(3));
    }
}
