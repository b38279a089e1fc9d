//! The type a file is served as: guessed from its name (with the types
//! adaptive-streaming players insist on), and whether a browser would
//! render it as a document that can run script.

use http::HeaderValue;

/// The content type guessed from the extension (cached per file).
pub(crate) fn guess(path: &str) -> HeaderValue {
    let guess = streaming_type(path)
        .or_else(|| mime_guess::from_path(path).first_raw())
        .unwrap_or("application/octet-stream");
    if guess.starts_with("text/") {
        HeaderValue::from_str(&format!("{guess}; charset=utf-8"))
            .unwrap_or(HeaderValue::from_static("application/octet-stream"))
    } else {
        HeaderValue::from_static(guess)
    }
}

/// Types of adaptive-streaming files that players insist on and that
/// generic tables get wrong (RFC 8216, ISO/IEC 23009-1).
fn streaming_type(path: &str) -> Option<&'static str> {
    let ext = path.rsplit_once('.')?.1;
    Some(match ext.to_ascii_lowercase().as_str() {
        "m3u8" => "application/vnd.apple.mpegurl",
        "mpd" => "application/dash+xml",
        "ts" => "video/mp2t",
        "m4s" => "video/iso.segment",
        _ => return None,
    })
}

/// Whether a browser would render a file of this type as a document that
/// can run script: HTML, and any XML (SVG, XHTML, feeds with stylesheets),
/// whatever the parameters or the letter case.
pub(crate) fn renders_active_content(content_type: &HeaderValue) -> bool {
    let essence = content_type
        .as_bytes()
        .split(|&b| b == b';')
        .next()
        .unwrap_or_default();
    let essence = essence.trim_ascii();
    let ends_with = |suffix: &[u8]| {
        essence.len() >= suffix.len()
            && essence[essence.len() - suffix.len()..].eq_ignore_ascii_case(suffix)
    };
    ends_with(b"html") || ends_with(b"xml")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streaming_types_win_over_generic_tables() {
        assert_eq!(guess("/a/b.M3U8"), "application/vnd.apple.mpegurl");
        assert_eq!(guess("/s.ts"), "video/mp2t");
        assert_eq!(guess("/n.txt"), "text/plain; charset=utf-8");
        assert_eq!(guess("/x"), "application/octet-stream");
    }

    #[test]
    fn documents_that_can_run_script_are_told_apart() {
        for active in [
            "text/html",
            "text/html; charset=utf-8",
            "TEXT/HTML",
            "application/xhtml+xml",
            "image/svg+xml",
            "text/xml",
            "application/xml ; charset=utf-8",
            "application/rss+xml",
        ] {
            let ct = HeaderValue::from_static(active);
            assert!(renders_active_content(&ct), "{active}");
        }
        for inert in [
            "text/plain; charset=utf-8",
            "image/png",
            "video/mp4",
            "application/pdf",
            "application/vnd.apple.mpegurl",
            "application/octet-stream",
            "text/plain; note=html",
            "",
        ] {
            let ct = HeaderValue::from_static(inert);
            assert!(!renders_active_content(&ct), "{inert}");
        }
    }
}
