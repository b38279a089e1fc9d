//! How a log event becomes one line of text or JSON, written straight into
//! the line buffer.
//!
//! The access log writes a line per request, and `tracing-subscriber`'s
//! own formats made up a large part of what that cost the server (see
//! BENCHMARKS.md): every field goes through `Debug` formatting and colour
//! wrappers that do nothing, and every line formats its timestamp from
//! scratch. [`LineFormat`] writes the
//! same lines (the same fields, names, order and quoting) with a
//! timestamp whose date and time of day are formatted once per second, and
//! strings copied as they are unless they hold a character to escape.
//!
//! Each event is one line whatever its fields hold: control characters
//! (C0, DEL, C1) are escaped in text as `\n` or `\u{1b}`, in JSON as `\n`
//! or `\u001b`, so that neither a log reader nor a terminal can be fooled
//! by a value (a path, an error message) into seeing another line.

use std::cell::RefCell;
use std::fmt::{self, Write as _};
use std::time::{SystemTime, UNIX_EPOCH};

use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::{FormatEvent, FormatFields, Writer};
use tracing_subscriber::fmt::{FmtContext, FormattedFields};
use tracing_subscriber::registry::{LookupSpan, SpanRef};

/// The format of the bundled server's log lines (see the module docs).
#[derive(Debug, Clone, Copy)]
pub(crate) enum LineFormat {
    /// `2026-11-27T16:05:26.004429Z  INFO target: message name=value ...`,
    /// strings quoted, as `tracing-subscriber`'s default format without
    /// colours.
    Text,
    /// `{"timestamp":"...","level":"INFO","message":"...","name":value,
    /// ...,"target":"..."}`, as `tracing-subscriber`'s JSON format with
    /// the event's fields flattened. For the spans' fields to be JSON, the
    /// subscriber must store them with its `JsonFields`.
    Json,
}

impl<S, N> FormatEvent<S, N> for LineFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut w: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let meta = event.metadata();
        let now = SystemTime::now();
        match self {
            LineFormat::Text => {
                write_timestamp(&mut w, now)?;
                write!(w, " {:>5} ", meta.level().as_str())?;
                // Spans, outermost first, as the default format shows them.
                if let Some(scope) = ctx.event_scope() {
                    for span in scope.from_root() {
                        w.write_str(span.name())?;
                        let ext = span.extensions();
                        if let Some(fields) = ext.get::<FormattedFields<N>>() {
                            if !fields.is_empty() {
                                w.write_char('{')?;
                                Escaped::text(&mut w).write_str(fields)?;
                                w.write_char('}')?;
                            }
                        }
                        w.write_char(':')?;
                    }
                    w.write_char(' ')?;
                }
                w.write_str(meta.target())?;
                w.write_str(": ")?;
                Fields::write(&mut w, *self, event)?;
            }
            LineFormat::Json => {
                w.write_str("{\"timestamp\":\"")?;
                write_timestamp(&mut w, now)?;
                w.write_str("\",\"level\":\"")?;
                w.write_str(meta.level().as_str())?;
                w.write_char('"')?;
                Fields::write(&mut w, *self, event)?;
                w.write_str(",\"target\":")?;
                json_string(&mut w, meta.target())?;
                // The innermost span and all of them, outermost first, each
                // its fields (stored as a JSON object, see `init_logging`)
                // and its name.
                if let Some(scope) = ctx.event_scope() {
                    let spans: Vec<_> = scope.from_root().collect();
                    let span = |w: &mut Writer<'_>, span: &SpanRef<'_, S>| {
                        w.write_char('{')?;
                        let ext = span.extensions();
                        let fields = ext.get::<FormattedFields<N>>().map(|f| f.as_str());
                        let inner = fields
                            .and_then(|f| f.strip_prefix('{')?.strip_suffix('}'))
                            .filter(|inner| !inner.is_empty());
                        if let Some(inner) = inner {
                            w.write_str(inner)?;
                            w.write_char(',')?;
                        }
                        w.write_str("\"name\":")?;
                        json_string(w, span.name())?;
                        w.write_char('}')
                    };
                    if let Some(innermost) = spans.last() {
                        w.write_str(",\"span\":")?;
                        span(&mut w, innermost)?;
                    }
                    w.write_str(",\"spans\":[")?;
                    for (i, s) in spans.iter().enumerate() {
                        if i > 0 {
                            w.write_char(',')?;
                        }
                        span(&mut w, s)?;
                    }
                    w.write_char(']')?;
                }
                w.write_char('}')?;
            }
        }
        w.write_char('\n')
    }
}

/// An event's fields, written in `format`: in text, the message bare and
/// the others ` name=value`, strings quoted; in JSON, `,"name":value`,
/// numbers and booleans bare, everything else a string.
struct Fields<'a, 'w> {
    w: &'a mut Writer<'w>,
    format: LineFormat,
    first: bool,
    result: fmt::Result,
}

impl Fields<'_, '_> {
    /// Writes the fields of `event` in `format`.
    fn write(w: &mut Writer<'_>, format: LineFormat, event: &Event<'_>) -> fmt::Result {
        let mut fields = Fields {
            w,
            format,
            first: true,
            result: Ok(()),
        };
        event.record(&mut fields);
        fields.result
    }

    /// Writes one field: the separator and name its format puts before it,
    /// then the value.
    fn field(&mut self, field: &Field, value: impl FnOnce(&mut Writer<'_>) -> fmt::Result) {
        if self.result.is_err() {
            return;
        }
        let first = std::mem::take(&mut self.first);
        let name = field.name();
        let name = name.strip_prefix("r#").unwrap_or(name);
        let w = &mut *self.w;
        self.result = (|| {
            match self.format {
                LineFormat::Text => {
                    if !first {
                        w.write_char(' ')?;
                    }
                    if name != "message" {
                        w.write_str(name)?;
                        w.write_char('=')?;
                    }
                }
                LineFormat::Json => {
                    w.write_char(',')?;
                    json_string(w, name)?;
                    w.write_char(':')?;
                }
            }
            value(w)
        })();
    }

    /// A value written by `Display` or `Debug`: escaped in text, a string
    /// in JSON.
    fn formatted(&mut self, field: &Field, value: fmt::Arguments<'_>) {
        let format = self.format;
        self.field(field, |w| match format {
            LineFormat::Text => Escaped::text(w).write_fmt(value),
            LineFormat::Json => {
                w.write_char('"')?;
                Escaped::json(w).write_fmt(value)?;
                w.write_char('"')
            }
        });
    }
}

impl Visit for Fields<'_, '_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        let message = field.name() == "message";
        let format = self.format;
        self.field(field, |w| match format {
            LineFormat::Text if message => Escaped::text(w).write_str(value),
            LineFormat::Text => quoted(w, value),
            LineFormat::Json => json_string(w, value),
        });
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.field(field, |w| write!(w, "{value}"));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.field(field, |w| write!(w, "{value}"));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.field(field, |w| w.write_str(if value { "true" } else { "false" }));
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        let format = self.format;
        self.field(field, |w| match format {
            // JSON has no NaN or infinity: null, as tracing-subscriber writes.
            LineFormat::Json if !value.is_finite() => w.write_str("null"),
            _ => write!(w, "{value:?}"),
        });
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.formatted(field, format_args!("{value}"));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.formatted(field, format_args!("{value:?}"));
    }
}

/// `s` in double quotes, as `Debug` quotes a string: `"` and `\` escaped,
/// control characters too.
fn quoted(w: &mut Writer<'_>, s: &str) -> fmt::Result {
    w.write_char('"')?;
    Escaped {
        w,
        json: false,
        quotes: true,
    }
    .write_str(s)?;
    w.write_char('"')
}

/// `s` as a JSON string.
fn json_string(w: &mut Writer<'_>, s: &str) -> fmt::Result {
    w.write_char('"')?;
    Escaped::json(w).write_str(s)?;
    w.write_char('"')
}

/// A writer that escapes what it is given: control characters and the
/// Unicode line and paragraph separators always (in text as Rust writes
/// them, `\n`, `\u{1b}`; in JSON as `\n`, `\u001b`), and `"` and `\` in
/// JSON or when `quotes` is set.
struct Escaped<'a, 'w> {
    w: &'a mut Writer<'w>,
    json: bool,
    quotes: bool,
}

impl<'a, 'w> Escaped<'a, 'w> {
    fn text(w: &'a mut Writer<'w>) -> Self {
        Escaped {
            w,
            json: false,
            quotes: false,
        }
    }

    fn json(w: &'a mut Writer<'w>) -> Self {
        Escaped {
            w,
            json: true,
            quotes: true,
        }
    }
}

impl fmt::Write for Escaped<'_, '_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        // Most strings need nothing: copied whole. (0xc2 starts every C1
        // control character in UTF-8 and 0xe2 the line and paragraph
        // separators, and some printable characters, which the careful
        // path below then copies.)
        let plain = |b: u8| b >= 0x20 && !matches!(b, 0x7f | 0xc2 | 0xe2 | b'"' | b'\\');
        if s.bytes().all(plain) {
            return self.w.write_str(s);
        }
        let mut rest = s;
        while let Some(at) = rest.find(|c: char| {
            c.is_control()
                || matches!(c, '\u{2028}' | '\u{2029}')
                || (self.quotes && (c == '"' || c == '\\'))
        }) {
            self.w.write_str(&rest[..at])?;
            let c = rest[at..].chars().next().unwrap_or_default();
            match (self.json, c) {
                (_, '"' | '\\') => {
                    self.w.write_char('\\')?;
                    self.w.write_char(c)?;
                }
                (_, '\n') => self.w.write_str("\\n")?,
                (_, '\r') => self.w.write_str("\\r")?,
                (_, '\t') => self.w.write_str("\\t")?,
                (true, c) => write!(self.w, "\\u{:04x}", u32::from(c))?,
                (false, c) => write!(self.w, "{}", c.escape_debug())?,
            }
            rest = &rest[at + c.len_utf8()..];
        }
        self.w.write_str(rest)
    }
}

/// The date and time of day of the current second, formatted once per
/// second per thread: `2026-11-27T16:05:26`.
struct SecondCache {
    second: u64,
    text: String,
}

thread_local! {
    static SECOND: RefCell<SecondCache> = const {
        RefCell::new(SecondCache { second: u64::MAX, text: String::new() })
    };
}

/// `now` in RFC 3339, UTC, to the microsecond: `2026-11-27T16:05:26.004429Z`.
fn write_timestamp(w: &mut Writer<'_>, now: SystemTime) -> fmt::Result {
    let since = now.duration_since(UNIX_EPOCH).unwrap_or_default();
    let second = since.as_secs();
    SECOND.with(|cache| {
        let mut cache = cache.borrow_mut();
        if cache.second != second {
            cache.text.clear();
            let at = i64::try_from(second)
                .ok()
                .and_then(|s| time::OffsetDateTime::from_unix_timestamp(s).ok())
                .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
            write!(
                cache.text,
                "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
                at.year(),
                u8::from(at.month()),
                at.day(),
                at.hour(),
                at.minute(),
                at.second()
            )?;
            cache.second = second;
        }
        w.write_str(&cache.text)
    })?;
    write!(w, ".{:06}Z", since.subsec_micros())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    use proptest::prelude::*;
    use tracing_subscriber::fmt::MakeWriter;

    /// Collects what a subscriber writes.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Captured {
        type Writer = Captured;
        fn make_writer(&'a self) -> Captured {
            self.clone()
        }
    }

    impl Captured {
        fn text(&self) -> String {
            String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
        }
    }

    /// The lines `emit` logs, through `tracing-subscriber`'s own format
    /// (`ours` false) or through [`LineFormat`].
    fn lines(format: LineFormat, ours: bool, emit: impl Fn()) -> String {
        let out = Captured::default();
        let builder = tracing_subscriber::fmt()
            .with_writer(out.clone())
            .with_ansi(false)
            .with_max_level(tracing::Level::TRACE);
        match (format, ours) {
            (LineFormat::Text, true) => {
                tracing::subscriber::with_default(builder.event_format(format).finish(), &emit)
            }
            (LineFormat::Json, true) => tracing::subscriber::with_default(
                builder
                    .fmt_fields(tracing_subscriber::fmt::format::JsonFields::new())
                    .event_format(format)
                    .finish(),
                &emit,
            ),
            (LineFormat::Text, false) => tracing::subscriber::with_default(builder.finish(), &emit),
            (LineFormat::Json, false) => tracing::subscriber::with_default(
                builder.json().flatten_event(true).finish(),
                &emit,
            ),
        }
        out.text()
    }

    /// Events of every kind of field the server logs.
    fn events() {
        let ip: std::net::IpAddr = "2001:db8::1".parse().unwrap();
        tracing::info!(
            target: "mediagate::access",
            client = %ip,
            method = %"GET",
            path = %"/videos/a b.mp4".escape_debug(),
            user = "user-42",
            status = 206u16,
            bytes = 1024u64,
            micros = 17u64,
            reason = "-",
            error = "-",
        );
        tracing::warn!(
            dropped = 5u64,
            "log lines dropped: stderr is not keeping up"
        );
        tracing::info!(addr = %"127.0.0.1:8080", root = %"/srv/media", "serving");
        tracing::error!(error = %"No such file or directory (os error 2)", "keys not reloaded");
        tracing::debug!(negative = -3i64, yes = true, ratio = 0.5f64, list = ?[1, 2], "odd ones");
        tracing::info!("no fields");
        let span = tracing::info_span!("conn", peer = "server");
        let _inside = span.enter();
        tracing::debug!(frame = 3u64, "in a span");
    }

    /// A line without its timestamp (text: the first word; JSON: the key).
    fn untimed(line: &str) -> String {
        match line.strip_prefix("{\"timestamp\":\"") {
            Some(rest) => rest.split_once('"').map(|(_, r)| r.to_owned()).unwrap(),
            None => line.split_once(' ').map(|(_, r)| r.to_owned()).unwrap(),
        }
    }

    #[test]
    fn lines_are_those_of_tracing_subscriber() {
        for format in [LineFormat::Text, LineFormat::Json] {
            let theirs = lines(format, false, events);
            let ours = lines(format, true, events);
            assert_eq!(ours.lines().count(), 7, "{ours}");
            for (a, b) in ours.lines().zip(theirs.lines()) {
                assert_eq!(untimed(a), untimed(b), "{format:?}");
            }
        }
        let text = lines(LineFormat::Text, true, events);
        assert!(
            text.contains(
                " INFO mediagate::access: client=2001:db8::1 method=GET path=/videos/a b.mp4 \
             user=\"user-42\" status=206 bytes=1024 micros=17 reason=\"-\" error=\"-\"\n"
            ),
            "{text}"
        );
    }

    #[test]
    fn timestamps_are_rfc3339_utc_to_the_microsecond() {
        let text = lines(LineFormat::Text, true, || tracing::info!("x"));
        let stamp = text.split(' ').next().unwrap();
        let parsed =
            time::OffsetDateTime::parse(stamp, &time::format_description::well_known::Rfc3339)
                .unwrap();
        let age = time::OffsetDateTime::now_utc() - parsed;
        assert!(
            age >= time::Duration::ZERO && age < time::Duration::seconds(5),
            "{stamp}"
        );
        assert_eq!(stamp.len(), "2026-11-27T16:05:26.004429Z".len(), "{stamp}");
        // Each second's text is made afresh; within one, reused.
        let mut w = String::new();
        for (secs, micros, want) in [
            (1_796_115_600, 5, "2026-12-01T09:00:00.000005Z"),
            (1_796_115_600, 999_999, "2026-12-01T09:00:00.999999Z"),
            (1_796_115_601, 0, "2026-12-01T09:00:01.000000Z"),
            (0, 0, "1970-01-01T00:00:00.000000Z"),
        ] {
            w.clear();
            let at = UNIX_EPOCH + std::time::Duration::new(secs, micros * 1000);
            write_timestamp(&mut Writer::new(&mut w), at).unwrap();
            assert_eq!(w, want);
        }
    }

    proptest! {
        /// Whatever a field holds, an event is one line, and the JSON one
        /// gives the value back.
        #[test]
        fn any_value_stays_on_its_line(value in any::<String>()) {
            let emit = || {
                tracing::info!(
                    plain = value.as_str(),
                    shown = %value,
                    debugged = ?value,
                    "{value}"
                );
            };
            let text = lines(LineFormat::Text, true, emit);
            prop_assert_eq!(text.lines().count(), 1, "{}", text);
            prop_assert!(!text.trim_end_matches('\n').contains(|c: char| c.is_control()));
            let json = lines(LineFormat::Json, true, emit);
            prop_assert_eq!(json.lines().count(), 1, "{}", json);
            let parsed: serde_json::Value = serde_json::from_str(&json).unwrap();
            prop_assert_eq!(parsed["plain"].as_str(), Some(value.as_str()));
            prop_assert_eq!(parsed["shown"].as_str(), Some(value.as_str()));
            prop_assert_eq!(parsed["message"].as_str(), Some(value.as_str()));
            let debugged = format!("{value:?}");
            prop_assert_eq!(parsed["debugged"].as_str(), Some(debugged.as_str()));
        }
    }
}
