//! Path canonicalization: whatever decodes is canonical (no dot or empty
//! segments, no backslash or control character) and survives a round trip
//! through the URL encoding the signer renders.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mediagate_signer::MediaPath;

fuzz_target!(|data: &[u8]| {
    let Ok(raw) = std::str::from_utf8(data) else { return };
    if let Ok(p) = MediaPath::from_uri_path(raw) {
        let s = p.as_str();
        assert!(s.starts_with('/'));
        let body = &s[1..];
        let segments: Vec<&str> = body.split('/').collect();
        for (i, seg) in segments.iter().enumerate() {
            assert!(*seg != "." && *seg != "..");
            assert!(!seg.is_empty() || i == segments.len() - 1);
        }
        assert!(!s.contains('\\') && !s.chars().any(char::is_control));
        assert!(MediaPath::parse(s).is_ok());
        let encoded = mediagate_signer::encode_path(s);
        assert_eq!(MediaPath::from_uri_path(&encoded).expect("round trip").as_str(), s);
    }
    if let Ok(p) = MediaPath::parse(raw) {
        assert_eq!(MediaPath::from_uri_path(&mediagate_signer::encode_path(p.as_str())).ok(), Some(p));
    }
});
