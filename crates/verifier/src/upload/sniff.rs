//! Whether an upload's first bytes are consistent with the content type
//! its link names: a JPEG must start as a JPEG does, and an HTML page is
//! not an image. Signatures come from the `infer` crate.

/// How many of the first bytes are looked at (or all, if fewer).
pub(crate) const SNIFF_LEN: usize = 8192;

/// Types a file of one format is rightly sent as, beyond the one `infer`
/// names.
const SAME_FORMAT: &[&[&str]] = &[
    &[
        "video/mp4",
        "audio/mp4",
        "application/mp4",
        "video/x-m4v",
        "audio/x-m4a",
        "audio/m4a",
    ],
    &["audio/x-wav", "audio/wav", "audio/wave", "audio/vnd.wave"],
    &["image/x-icon", "image/vnd.microsoft.icon"],
    &["audio/mpeg", "audio/mp3"],
    &["application/x-gzip", "application/gzip"],
    &["video/quicktime", "video/mp4"],
];

/// Whether `head` (the first [`SNIFF_LEN`] bytes of the upload, or all of
/// it) may be stored as `essence` (a lowercase `type/subtype`):
/// - a type whose signature `infer` knows: the bytes must bear it;
/// - any other type: the bytes must not be a format `infer` knows as
///   another type, nor an HTML document (unless the type is HTML or XML).
pub(crate) fn consistent(essence: &str, head: &[u8]) -> bool {
    let found = infer::get(head).map(|t| t.mime_type());
    if let Some(found) = found {
        return same_format(found, essence);
    }
    if infer::is_mime_supported(essence) {
        return false;
    }
    let markup = essence == "text/html"
        || essence == "application/xhtml+xml"
        || essence.ends_with("/xml")
        || essence.ends_with("+xml");
    markup || !looks_like_html(head)
}

fn same_format(found: &str, essence: &str) -> bool {
    found == essence
        || SAME_FORMAT
            .iter()
            .any(|group| group.contains(&found) && group.contains(&essence))
}

/// The start of an HTML document, as browsers sniff it (WHATWG MIME
/// Sniffing §7.1): after whitespace, one of the tags that make a browser
/// render HTML, in any case, followed by a space or `>`.
fn looks_like_html(head: &[u8]) -> bool {
    const TAGS: &[&[u8]] = &[
        b"<!doctype html",
        b"<html",
        b"<head",
        b"<script",
        b"<iframe",
        b"<h1",
        b"<div",
        b"<font",
        b"<table",
        b"<a",
        b"<style",
        b"<title",
        b"<b",
        b"<body",
        b"<br",
        b"<p",
        b"<!--",
        b"<svg",
        b"<?xml",
    ];
    let start = head
        .iter()
        .position(|b| !matches!(b, b' ' | b'\t' | b'\n' | b'\r' | b'\x0c'))
        .unwrap_or(head.len());
    // A UTF-8 byte-order mark first.
    let rest = head[start..]
        .strip_prefix(b"\xef\xbb\xbf")
        .unwrap_or(&head[start..]);
    TAGS.iter().any(|tag| {
        rest.len() > tag.len()
            && rest[..tag.len()].eq_ignore_ascii_case(tag)
            && (tag.ends_with(b"--")
                || matches!(rest[tag.len()], b' ' | b'>' | b'\t' | b'\n' | b'\r'))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const JPEG: &[u8] = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01";
    const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR";

    #[test]
    fn known_formats_must_bear_their_signature() {
        assert!(consistent("image/jpeg", JPEG));
        assert!(consistent("image/png", PNG));
        assert!(!consistent("image/jpeg", PNG));
        assert!(!consistent(
            "image/jpeg",
            b"<html><script>alert(1)</script>"
        ));
        assert!(!consistent("image/jpeg", b""));
        assert!(!consistent("application/pdf", b"hello"));
        assert!(consistent("application/pdf", b"%PDF-1.7\n"));
    }

    #[test]
    fn other_types_refuse_html_and_other_known_formats() {
        assert!(consistent("text/plain", b"just text"));
        assert!(consistent("text/csv", b"a,b\n1,2\n"));
        assert!(consistent("application/json", b"{\"a\":1}"));
        assert!(!consistent("text/plain", b"  <HTML><body>x"));
        assert!(!consistent("text/plain", b"\xef\xbb\xbf<!DOCTYPE html>"));
        assert!(!consistent("application/json", JPEG));
        assert!(consistent("text/html", b"<html>"));
        assert!(consistent("image/svg+xml", b"<svg xmlns='x'>"));
        // A '<' that starts no HTML tag.
        assert!(consistent("text/plain", b"<3 you"));
    }

    #[test]
    fn one_format_under_its_other_names() {
        let mp4 = b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom";
        assert!(consistent("video/mp4", mp4));
        assert!(consistent("audio/mp4", mp4));
    }
}
