//! One structured access-log line per request, through `tracing` (target
//! `mediagate::access`): client address, method, path, user, status, bytes
//! sent, duration and the denial reason. Never the token, a query string
//! or a secret.

use std::fmt::Display;
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll, ready};
use std::time::Instant;

use bytes::Buf;
use http::{Request, Response};
use http_body::{Body, Frame, SizeHint};
use tracing::Level;

use crate::reject::Reject;

/// The log target of access lines.
pub const TARGET: &str = "mediagate::access";

/// Whether lines are wanted, for the log or for the metrics (which count
/// each request as its line ends): `false` when no subscriber listens at
/// INFO on [`TARGET`] and the metrics are off, and then nothing is built
/// for them.
pub(crate) fn enabled() -> bool {
    logging() || crate::metrics::on()
}

/// Whether a subscriber listens at INFO on [`TARGET`]: what only the log
/// needs (the path, the user) is kept only then.
pub(crate) fn logging() -> bool {
    tracing::enabled!(target: TARGET, Level::INFO)
}

/// When a request arrived, taken only while access logging is on.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Begun(Instant);

impl Begun {
    /// Now, if access logging is on.
    pub(crate) fn now() -> Option<Begun> {
        enabled().then(|| Begun(Instant::now()))
    }
}

/// What the service knows of a request that its line needs and its
/// response does not say: the client (the address IP-bound links are
/// checked against), the user a link was granted to, and a refusal's
/// reason. The service returns it with each response it wants logged
/// (the health check's are not), and adds it to the response's extensions
/// for [`AccessLog`] when called as a tower service.
#[derive(Debug, Clone, Default)]
pub(crate) struct Served {
    pub(crate) client: Option<IpAddr>,
    /// Kept only while access logging is on.
    pub(crate) user: Option<Box<str>>,
    pub(crate) reason: Option<&'static str>,
    /// The body bytes an upload received (`None`: no upload).
    pub(crate) received: Option<u64>,
}

impl Served {
    /// A granted request from `client` by `user` (kept only while access
    /// logging is on).
    pub(crate) fn granted(client: Option<IpAddr>, user: &str) -> Served {
        Served {
            client,
            user: logging().then(|| user.into()),
            reason: None,
            received: None,
        }
    }
}

/// Why a connection stopped sending, if it did: recorded by the bundled
/// server's connection I/O (the first cause counts), read by the lines of
/// the responses it cut short.
#[derive(Debug, Clone, Default)]
pub(crate) struct Report(Arc<OnceLock<Cut>>);

impl Report {
    /// Records why the connection stopped sending; the first cause counts.
    pub(crate) fn cut(&self, cut: Cut) {
        let _ = self.0.set(cut);
    }

    /// Why the connection stopped sending, if it did.
    pub(crate) fn why(&self) -> Option<Cut> {
        self.0.get().copied()
    }
}

/// One request's access-log line while its response is on its way,
/// written exactly once: by [`Line::end`] when the response has ended
/// (every byte handed on), or, dropped before that, as cut short with the
/// bytes counted so far and the cause its connection reported. Every line
/// this crate writes is written here.
#[derive(Debug)]
pub(crate) struct Line {
    pending: Option<Box<Pending>>,
    sent: u64,
    report: Option<Report>,
}

#[derive(Debug)]
struct Pending {
    /// `None` for a head refused before it was parsed (no duration).
    begun: Option<Begun>,
    client: Option<IpAddr>,
    /// `None`, with the path, for a head refused before it was parsed.
    method: Option<http::Method>,
    path: String,
    user: Option<Box<str>>,
    status: u16,
    reason: Option<&'static str>,
    received: Option<u64>,
}

impl Line {
    /// No line (access logging off, or a response not logged).
    pub(crate) const OFF: Line = Line {
        pending: None,
        sent: 0,
        report: None,
    };

    /// The line of a request [`begun`](Begun::now) with `method` and
    /// `path`, answered `status` as `served` says; [`Line::OFF`] when
    /// `begun` is `None`.
    pub(crate) fn new(
        begun: Option<Begun>,
        method: &http::Method,
        path: &str,
        status: u16,
        served: Served,
    ) -> Line {
        let Some(begun) = begun else {
            return Line::OFF;
        };
        Line::of(Pending {
            begun: Some(begun),
            client: served.client,
            method: Some(method.clone()),
            // Only the path (the query may hold a token), with a
            // path-form token cut out.
            path: if logging() {
                first_chars(&redact(path), 512).to_owned()
            } else {
                String::new()
            },
            user: served.user,
            status,
            reason: served.reason,
            received: served.received,
        })
    }

    /// The line of a request head refused before it was parsed, by the
    /// server's head guard or by hyper: nothing of it is known but its
    /// client.
    pub(crate) fn unparsed(client: Option<IpAddr>, reject: Reject) -> Line {
        if !enabled() {
            return Line::OFF;
        }
        Line::of(Pending {
            begun: None,
            client,
            method: None,
            path: String::new(),
            user: None,
            status: reject.status().as_u16(),
            reason: Some(reject.code()),
            received: None,
        })
    }

    /// The line of a request that hyper refused itself, before any service
    /// saw it, if `e` is such a refusal: a malformed head (hyper answers
    /// 400, reason `malformed_request`) or one over the size limit (431,
    /// `head_too_large`).
    pub(crate) fn refused_by_hyper(client: Option<IpAddr>, e: &hyper::Error) -> Line {
        if !e.is_parse() || e.is_parse_version_h2() {
            return Line::OFF;
        }
        // The head guard refuses long request lines (414) and large heads
        // before hyper sees them; what hyper refuses as too large is a head.
        let reject = if e.is_parse_too_large() {
            Reject::HeadTooLarge
        } else {
            Reject::MalformedRequest
        };
        Line::unparsed(client, reject)
    }

    fn of(pending: Pending) -> Line {
        Line {
            pending: Some(Box::new(pending)),
            sent: 0,
            report: None,
        }
    }

    /// This line, naming the cause `report` gives if it is cut short.
    pub(crate) fn reporting(mut self, report: &Report) -> Line {
        if self.pending.is_some() {
            self.report = Some(report.clone());
        }
        self
    }

    /// Counts `n` more bytes sent.
    pub(crate) fn count(&mut self, n: u64) {
        self.sent += n;
    }

    /// Sets the bytes sent to `n`.
    pub(crate) fn set_sent(&mut self, n: u64) {
        self.sent = n;
    }

    /// Writes the line of a response that ended, failed with `error` if
    /// given.
    pub(crate) fn end(mut self, error: Option<&dyn Display>) {
        if let Some(p) = self.pending.take() {
            write(&p, self.sent, error);
        }
    }
}

impl Drop for Line {
    /// Never ended: the response was cut short.
    fn drop(&mut self) {
        if let Some(p) = self.pending.take() {
            let why = self.report.as_ref().and_then(Report::why);
            write(&p, self.sent, Some(&why.unwrap_or(Cut::Unfinished)));
        }
    }
}

/// Writes one line: the only place that does.
fn write(p: &Pending, bytes: u64, error: Option<&dyn Display>) {
    let micros = p.begun.map_or(0, |b| b.0.elapsed().as_micros() as u64);
    crate::metrics::request(p.status, p.reason, bytes, micros);
    let method = p.method.as_ref().map_or("-", http::Method::as_str);
    let path = if p.method.is_some() { &p.path[..] } else { "-" };
    tracing::info!(
        target: TARGET,
        client = %Client(p.client),
        method = %method,
        path = %Escaped(path),
        user = p.user.as_deref().unwrap_or("-"),
        status = p.status,
        bytes,
        received = %Received(p.received),
        micros,
        reason = p.reason.unwrap_or("-"),
        error = %Error(error),
    );
}

/// An upload's bytes received, or `-`.
struct Received(Option<u64>);

impl Display for Received {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(n) => n.fmt(f),
            None => f.write_str("-"),
        }
    }
}

/// An error, or `-`.
struct Error<'a>(Option<&'a dyn Display>);

impl Display for Error<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(e) => e.fmt(f),
            None => f.write_str("-"),
        }
    }
}

pin_project_lite::pin_project! {
    /// A response body that writes its request's access-log line when it ends: after
    /// the frame that ends it (hyper drops a body that says it has ended
    /// without asking for more), when it fails, or, dropped before either, as
    /// cut short. Counts the data bytes it hands on.
    #[derive(Debug)]
    pub struct LoggedBody<B> {
        #[pin]
        inner: B,
        line: Option<Line>,
    }
}

impl<B: Body> LoggedBody<B> {
    /// `inner`, logged by `line`; a body with nothing to send is logged
    /// at once.
    pub(crate) fn new(inner: B, line: Line) -> Self {
        let line = if inner.is_end_stream() {
            line.end(None);
            None
        } else {
            Some(line)
        };
        LoggedBody { inner, line }
    }

    /// The body and its line (`None` once written), for a connection that
    /// sends the body another way and ends the line itself.
    pub(crate) fn into_parts(self) -> (B, Option<Line>) {
        (self.inner, self.line)
    }

    /// `inner` and the line [`into_parts`](Self::into_parts) took from it,
    /// as they were.
    pub(crate) fn rejoin(inner: B, line: Option<Line>) -> Self {
        LoggedBody { inner, line }
    }

    /// The body inside.
    pub(crate) fn get_mut(&mut self) -> &mut B {
        &mut self.inner
    }
}

impl<B> Body for LoggedBody<B>
where
    B: Body,
    B::Error: Display,
{
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        let mut this = self.project();
        let frame = ready!(this.inner.as_mut().poll_frame(cx));
        match &frame {
            Some(Ok(frame)) => {
                if let (Some(line), Some(data)) = (this.line.as_mut(), frame.data_ref()) {
                    line.count(data.remaining() as u64);
                }
                if this.inner.is_end_stream() {
                    if let Some(line) = this.line.take() {
                        line.end(None);
                    }
                }
            }
            Some(Err(e)) => {
                if let Some(line) = this.line.take() {
                    line.end(Some(e));
                }
            }
            None => {
                if let Some(line) = this.line.take() {
                    line.end(None);
                }
            }
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The access-log layer for a [`MediaGate`](crate::MediaGate) embedded in
/// another server (the bundled one logs with the same lines itself): one
/// line per request at INFO, target [`TARGET`], written when the response
/// ends. Responses the gate does not log (the health check) and any other
/// service's pass through unlogged.
#[derive(Debug, Clone, Copy, Default)]
pub struct AccessLogLayer;

impl<S> tower_layer::Layer<S> for AccessLogLayer {
    type Service = AccessLog<S>;

    fn layer(&self, inner: S) -> AccessLog<S> {
        AccessLog { inner }
    }
}

/// A service with access logging; see [`AccessLogLayer`].
#[derive(Debug, Clone)]
pub struct AccessLog<S> {
    inner: S,
}

impl<S> AccessLog<S> {
    /// `inner`, with access logging.
    pub fn new(inner: S) -> Self {
        AccessLog { inner }
    }
}

impl<S, B, ResB> tower_service::Service<Request<B>> for AccessLog<S>
where
    S: tower_service::Service<Request<B>, Response = Response<ResB>>,
    ResB: Body,
{
    type Response = Response<LoggedBody<ResB>>;
    type Error = S::Error;
    type Future = Logging<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let asked =
            Begun::now().map(|begun| (begun, req.method().clone(), req.uri().path().to_owned()));
        Logging {
            inner: self.inner.call(req),
            asked,
        }
    }
}

pin_project_lite::pin_project! {
    /// The response future of [`AccessLog`].
    #[derive(Debug)]
    pub struct Logging<F> {
        #[pin]
        inner: F,
        asked: Option<(Begun, http::Method, String)>,
    }
}

impl<F, ResB, E> Future for Logging<F>
where
    F: Future<Output = Result<Response<ResB>, E>>,
    ResB: Body,
{
    type Output = Result<Response<LoggedBody<ResB>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let mut res = ready!(this.inner.poll(cx))?;
        let served = res.extensions_mut().remove::<Served>();
        let line = match (this.asked.take(), served) {
            (Some((begun, method, path)), Some(served)) => {
                Line::new(Some(begun), &method, &path, res.status().as_u16(), served)
            }
            _ => Line::OFF,
        };
        Poll::Ready(Ok(res.map(|body| LoggedBody::new(body, line))))
    }
}

/// Why a response was cut short, as the `error` field of its line names it
/// (for a file read that failed, the line carries the error itself).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cut {
    /// The client stopped accepting bytes for the send timeout.
    SendTimeout,
    /// The client closed or reset the connection.
    ClientGone,
    /// The file got shorter than the response promised.
    FileShrank,
    /// The file was written to while being sent: what went out would mix
    /// two versions.
    FileChanged,
    /// Another error writing to the socket.
    WriteFailed,
    /// An HTTP/2 stream's window stayed shut for the window timeout.
    WindowShut,
    /// Ended without a cause the connection could see: a client that
    /// closed its side cleanly or cancelled an HTTP/2 stream, a server
    /// stopped past its drain deadline, or an embedding server's
    /// connection, which tells nothing.
    Unfinished,
}

/// The error that aborts a response whose file was written to while being
/// sent (inside an `io::Error`, which [`Cut::of`] tells by its type).
#[derive(Debug, thiserror::Error)]
#[error("file changed while being sent")]
pub(crate) struct FileChanged;

impl FileChanged {
    pub(crate) fn error() -> std::io::Error {
        std::io::Error::other(FileChanged)
    }
}

impl Cut {
    /// How a write error cuts a response short.
    pub(crate) fn of(e: &std::io::Error) -> Cut {
        if e.get_ref().is_some_and(|inner| inner.is::<FileChanged>()) {
            return Cut::FileChanged;
        }
        use std::io::ErrorKind;
        match e.kind() {
            ErrorKind::TimedOut => Cut::SendTimeout,
            ErrorKind::UnexpectedEof => Cut::FileShrank,
            ErrorKind::BrokenPipe | ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted => {
                Cut::ClientGone
            }
            _ => Cut::WriteFailed,
        }
    }
}

impl std::fmt::Display for Cut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Cut::SendTimeout => "send timeout",
            Cut::ClientGone => "client went away",
            Cut::FileShrank => "file shrank while being sent",
            Cut::FileChanged => "file changed while being sent",
            Cut::WriteFailed => "write failed",
            Cut::WindowShut => "window never opened",
            Cut::Unfinished => "stopped before the end",
        })
    }
}

/// A client address, or `-` when unknown.
struct Client(Option<IpAddr>);

impl std::fmt::Display for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(ip) => ip.fmt(f),
            None => f.write_str("-"),
        }
    }
}

/// A string with its control characters, quotes and backslashes escaped
/// as `str::escape_debug` escapes them, so that a log line stays one line
/// whatever the path holds; written whole when there is nothing to escape
/// (any path hyper accepts).
struct Escaped<'a>(&'a str);

impl std::fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let plain = |b: u8| matches!(b, 0x20..=0x7e) && !matches!(b, b'\\' | b'"' | b'\'');
        if self.0.bytes().all(plain) {
            f.write_str(self.0)
        } else {
            self.0.escape_debug().fmt(f)
        }
    }
}

/// `s` up to its `n`th character.
fn first_chars(s: &str, n: usize) -> &str {
    if s.len() <= n {
        return s;
    }
    s.char_indices().nth(n).map_or(s, |(at, _)| &s[..at])
}

/// The path with the segment after the path-form marker (`/_mg/<token>`)
/// replaced.
fn redact(path: &str) -> std::borrow::Cow<'_, str> {
    let marker = mediagate_signer::transport::PATH_MARKER;
    let segment = path
        .match_indices(marker)
        .find(|&(at, _)| path[..at].ends_with('/') && path[at + marker.len()..].starts_with('/'));
    match segment {
        None => path.into(),
        Some((at, _)) => {
            let start = at + marker.len() + 1;
            let end = path[start..].find('/').map_or(path.len(), |i| start + i);
            format!("{}<token>{}", &path[..start], &path[end..]).into()
        }
    }
}

/// Access-log lines captured in tests.
#[cfg(test)]
pub(crate) mod capture {
    use std::collections::BTreeMap;
    use std::sync::{Arc, Mutex, PoisonError};

    use tracing::field::{Field, Visit};
    use tracing::span::{Attributes, Id, Record};
    use tracing::{Event, Metadata, Subscriber};

    /// One line: its fields by name, as text.
    pub(crate) type Line = BTreeMap<String, String>;

    /// The access-log lines written on this thread while the returned
    /// guard lives (a tokio test's runtime polls on this thread).
    pub(crate) fn lines() -> (Arc<Mutex<Vec<Line>>>, tracing::subscriber::DefaultGuard) {
        let lines = Arc::new(Mutex::new(Vec::new()));
        let guard = tracing::subscriber::set_default(Capture(Arc::clone(&lines)));
        (lines, guard)
    }

    /// The lines captured so far.
    pub(crate) fn taken(lines: &Mutex<Vec<Line>>) -> Vec<Line> {
        std::mem::take(&mut *lines.lock().unwrap_or_else(PoisonError::into_inner))
    }

    struct Capture(Arc<Mutex<Vec<Line>>>);

    struct Fields(Line);

    impl Visit for Fields {
        fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
            self.0.insert(field.name().to_owned(), format!("{value:?}"));
        }
        fn record_str(&mut self, field: &Field, value: &str) {
            self.0.insert(field.name().to_owned(), value.to_owned());
        }
    }

    impl Subscriber for Capture {
        fn enabled(&self, metadata: &Metadata<'_>) -> bool {
            metadata.target() == super::TARGET
        }
        fn new_span(&self, _: &Attributes<'_>) -> Id {
            Id::from_u64(1)
        }
        fn record(&self, _: &Id, _: &Record<'_>) {}
        fn record_follows_from(&self, _: &Id, _: &Id) {}
        fn event(&self, event: &Event<'_>) {
            let mut fields = Fields(Line::new());
            event.record(&mut fields);
            let mut lines = self.0.lock().unwrap_or_else(PoisonError::into_inner);
            lines.push(fields.0);
        }
        fn enter(&self, _: &Id) {}
        fn exit(&self, _: &Id) {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_form_tokens_are_redacted() {
        assert_eq!(super::redact("/m/_mg/SECRET/a/b"), "/m/_mg/<token>/a/b");
        assert_eq!(super::redact("/m/_mg/SECRET"), "/m/_mg/<token>");
        assert_eq!(super::redact("/m/a"), "/m/a");
        assert_eq!(super::redact("/m/x_mg/a"), "/m/x_mg/a");
    }

    #[test]
    fn paths_are_escaped_as_escape_debug_does() {
        for path in [
            "/a/b.mp4",
            "/a b",
            "/a\nb",
            "/\"q\"",
            "/it's",
            "/back\\slash",
            "/ü\u{1b}[31m",
            "",
        ] {
            assert_eq!(
                super::Escaped(path).to_string(),
                path.escape_debug().to_string(),
                "{path:?}"
            );
        }
    }

    #[test]
    fn long_paths_are_cut_at_a_character() {
        assert_eq!(super::first_chars("/abc", 512), "/abc");
        assert_eq!(super::first_chars("/abc", 2), "/a");
        assert_eq!(super::first_chars("/äöü", 3), "/äö");
        let long = "é".repeat(600);
        assert_eq!(super::first_chars(&long, 512).chars().count(), 512);
    }

    /// A request for `target` through the access-log layer over a gate
    /// serving a 5000-byte file at `/f.bin` and a health check at `/up`;
    /// the response body is read whole.
    async fn through_layer(target: &str) -> (u16, usize) {
        use http_body_util::BodyExt as _;
        use tower::ServiceExt as _;
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(dir.path().join("f.bin"), vec![1u8; 5000]).expect("write");
        let key = mediagate_signer::Key::generate("k").expect("key");
        let keyring = mediagate_signer::Keyring::new(key);
        let gate = crate::MediaGate::builder(dir.path(), keyring.clone())
            .health_path(Some("/up"))
            .build()
            .expect("gate");
        let signer = mediagate_signer::Signer::new(keyring);
        let link = signer
            .link("u1", "/f.bin")
            .ttl(mediagate_signer::time::Duration::minutes(5))
            .sign()
            .expect("signed");
        let target = target.replace("LINK", &link.url(""));
        let req = Request::get(target)
            .body(http_body_util::Empty::<bytes::Bytes>::new())
            .expect("request");
        let Ok(res) = AccessLog::new(gate).oneshot(req).await;
        let status = res.status().as_u16();
        let body = res.into_body().collect().await.expect("body").to_bytes();
        (status, body.len())
    }

    #[tokio::test]
    async fn the_layer_writes_one_line_per_logged_request_when_it_ends() {
        let (lines, _guard) = capture::lines();
        assert_eq!(through_layer("LINK").await, (200, 5000));
        let logged = capture::taken(&lines);
        assert_eq!(logged.len(), 1, "{logged:?}");
        let line = &logged[0];
        assert_eq!(line["method"], "GET");
        assert_eq!(line["path"], "/f.bin");
        assert_eq!(line["user"], "u1");
        assert_eq!(line["status"], "200");
        assert_eq!(line["bytes"], "5000");
        assert_eq!(line["reason"], "-");
        assert_eq!(line["error"], "-");
        // A refusal: its reason, and the bytes of its body.
        assert_eq!(through_layer("/f.bin?mg_token=nope").await.0, 403);
        let logged = capture::taken(&lines);
        assert_eq!(logged.len(), 1, "{logged:?}");
        assert_eq!(logged[0]["reason"], "malformed_token");
        assert_eq!(logged[0]["bytes"], "16");
        // The health check is not logged.
        assert_eq!(through_layer("/up").await.0, 200);
        assert!(capture::taken(&lines).is_empty());
    }

    #[tokio::test]
    async fn a_logged_body_dropped_before_its_end_is_logged_as_cut_short() {
        use http_body_util::BodyExt as _;
        let (lines, _guard) = capture::lines();
        let served = Served {
            client: Some([127, 0, 0, 1].into()),
            ..Served::default()
        };
        let line = Line::new(Begun::now(), &http::Method::GET, "/a", 200, served);
        let (file, version) = crate::body::tests::file(6);
        let chunks = crate::body::MediaBody::file(file, None, version, 0, 6, 3);
        let mut body = LoggedBody::new(chunks, line);
        body.frame().await.expect("a frame").expect("ok");
        drop(body);
        let logged = capture::taken(&lines);
        assert_eq!(logged.len(), 1, "{logged:?}");
        assert_eq!(logged[0]["bytes"], "3");
        assert_eq!(logged[0]["client"], "127.0.0.1");
        assert_eq!(logged[0]["error"], "stopped before the end");
    }
}
