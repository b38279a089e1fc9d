//! Logging to stderr without ever making a request wait on it.

use anyhow::{Context, Result, bail};
use tracing_appender::non_blocking::WorkerGuard;

use crate::log_line::LineFormat;

/// Logs to stderr, filtered by `MEDIAGATE_LOG` (default `info`), as text
/// or, with `MEDIAGATE_LOG_FORMAT=json`, as one JSON object per line (what
/// log shippers read: every access-log field is a key).
///
/// Lines are written by a thread of their own, in batches, so that a
/// request never waits on stderr: a log reader that falls behind (a full
/// pipe, a stalled shipper) would otherwise stop every request once the
/// pipe's buffer filled. Lines it cannot take are counted and dropped
/// rather than queued without bound (see [`LOG_QUEUE_LINES`]); a warning
/// says how many. Keep the returned guard until exit: dropping it writes
/// what is queued.
pub(crate) fn init_logging() -> Result<WorkerGuard> {
    let filter = log_filter(std::env::var("MEDIAGATE_LOG").ok().as_deref())?;
    let format = std::env::var("MEDIAGATE_LOG_FORMAT").unwrap_or_default();
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(true)
        .buffered_lines_limit(LOG_QUEUE_LINES)
        .thread_name("mediagate-log")
        // Flushed whenever the queue runs empty: one write per batch.
        .finish(std::io::BufWriter::new(std::io::stderr()));
    let dropped = writer.error_counter();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_target(true);
    match format.as_str() {
        // On a terminal, tracing-subscriber's own format, in colour.
        "" | "text" if ansi => builder.with_ansi(true).init(),
        "" | "text" => builder.event_format(LineFormat::Text).init(),
        "json" => builder
            .fmt_fields(tracing_subscriber::fmt::format::JsonFields::new())
            .event_format(LineFormat::Json)
            .init(),
        other => bail!("MEDIAGATE_LOG_FORMAT: {other:?} is not text or json"),
    }
    std::thread::Builder::new()
        .name("mediagate-log-watch".into())
        .spawn(move || report_dropped_lines(&dropped))
        .context("starting the log watch thread")?;
    Ok(guard)
}

/// The filter `MEDIAGATE_LOG` asks for (`info` when unset): comma-separated
/// levels (`warn`) and `target=level` directives, as `RUST_LOG` takes them.
/// A bare word that is not a level is refused: the filter would read it as
/// the name of a target and log nothing else at all, errors included
/// (`warning`, the most common slip, would silence the server).
fn log_filter(spec: Option<&str>) -> Result<tracing_subscriber::EnvFilter> {
    const LEVELS: [&str; 6] = ["trace", "debug", "info", "warn", "error", "off"];
    let Some(spec) = spec else {
        return Ok(tracing_subscriber::EnvFilter::new("info"));
    };
    for directive in spec.split(',').map(str::trim) {
        let bare = !directive.contains(['=', '[']);
        if bare
            && !directive.is_empty()
            && !LEVELS.iter().any(|l| directive.eq_ignore_ascii_case(l))
        {
            bail!(
                "MEDIAGATE_LOG: {directive:?} is not a level (trace, debug, info, warn, error, \
                 off) nor a target=level directive"
            );
        }
    }
    tracing_subscriber::EnvFilter::try_new(spec)
        .map_err(|e| anyhow::anyhow!("MEDIAGATE_LOG: {spec:?} is not a log filter: {e}"))
}

/// Log lines queued for stderr at most (about 200 bytes each): what absorbs
/// a burst, or a log reader's pause, without dropping a line.
const LOG_QUEUE_LINES: usize = 32 * 1024;

/// Every ten seconds, warns of log lines dropped since the last warning.
fn report_dropped_lines(dropped: &tracing_appender::non_blocking::ErrorCounter) {
    let mut reported = 0;
    loop {
        std::thread::sleep(std::time::Duration::from_secs(10));
        let now = dropped.dropped_lines();
        if now > reported {
            tracing::warn!(
                dropped = now - reported,
                "log lines dropped: stderr is not keeping up"
            );
            reported = now;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::log_filter;

    #[test]
    fn log_filters_are_levels_or_directives() {
        for good in [
            None,
            Some("warn"),
            Some("WARN"),
            Some("off"),
            Some("info,hyper=debug"),
            Some("mediagate::access=off"),
            Some(""),
        ] {
            assert!(log_filter(good).is_ok(), "{good:?}");
        }
        for (bad, needle) in [
            ("warning", "\"warning\" is not a level"),
            ("info,verbose", "\"verbose\" is not a level"),
            ("mediagate=loud", "is not a log filter"),
        ] {
            let e = log_filter(Some(bad)).unwrap_err().to_string();
            assert!(
                e.starts_with("MEDIAGATE_LOG: ") && e.contains(needle),
                "{bad}: {e}"
            );
        }
    }
}
