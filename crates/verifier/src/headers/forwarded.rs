//! The client address behind trusted proxies, from a header such as
//! `X-Forwarded-For` or RFC 7239's `Forwarded`: a comma-separated list to
//! which each proxy appends the address it received the request from.
//!
//! Only the entries that trusted proxies appended can be believed; anything
//! to their left may come from the client. So the list is read from the
//! right, past every entry that is itself a trusted proxy (a CDN's edge
//! node, then the load balancer behind it), and the first other entry is
//! the client, as nginx's `real_ip_recursive on` reads it. If every entry is
//! trusted, the leftmost is the client (a request from inside the proxy
//! network). An entry that is not an address ends the search without an
//! answer: the caller keeps the peer address, which no client-bound link
//! matches, rather than guess; so does a run of more trusted entries than
//! any real chain of proxies has (16), which only a padded header holds.

use std::net::{IpAddr, SocketAddr};

use http::HeaderMap;
use http::header::HeaderName;
use ipnet::IpNet;

/// The client address according to `header`'s lines in `headers`, read as
/// the module docs say; `None` when the header is absent or an entry that
/// had to be read is not an address.
pub(crate) fn client(
    headers: &HeaderMap,
    header: &HeaderName,
    trusted: &[IpNet],
) -> Option<IpAddr> {
    // Lines count in order, as one list (RFC 9110 §5.3): the last line's
    // last entry is the nearest hop.
    let mut entries = headers
        .get_all(header)
        .iter()
        .rev()
        .flat_map(|line| line.as_bytes().rsplit(|&b| b == b','));
    let mut leftmost = None;
    for entry in entries.by_ref().take(MAX_ENTRIES) {
        let entry = std::str::from_utf8(entry).ok()?.trim();
        if entry.is_empty() {
            // "a, , b": an empty element, which a list may carry.
            continue;
        }
        let ip = parse_entry(entry)?;
        if !trusted.iter().any(|net| net.contains(&ip)) {
            return Some(ip);
        }
        leftmost = Some(ip);
    }
    // Past MAX_ENTRIES trusted ones, the list is not a real chain of
    // proxies: no answer (rather than read on through a header a client
    // padded, at a cost per entry).
    if entries.next().is_some() {
        return None;
    }
    leftmost
}

/// The most entries read from the right: more trusted proxies than this in
/// a row is no real deployment.
const MAX_ENTRIES: usize = 16;

/// One entry: an address, as most proxies write it, or with a port
/// (`192.0.2.1:5000`, `[2001:db8::1]:5000`, as some load balancers do), or
/// an IPv6 address in brackets; or an element of RFC 7239's `Forwarded`
/// (`for=192.0.2.1;proto=https`, `for="[2001:db8::1]:5000"`), whose `for`
/// parameter is read the same way. IPv4-mapped IPv6 counts as IPv4.
fn parse_entry(entry: &str) -> Option<IpAddr> {
    let entry = if entry.contains('=') {
        let value = entry.split(';').find_map(|pair| {
            let (name, value) = pair.split_once('=')?;
            name.trim()
                .eq_ignore_ascii_case("for")
                .then_some(value.trim())
        })?;
        value
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .unwrap_or(value)
    } else {
        entry
    };
    let ip = entry
        .parse::<IpAddr>()
        .ok()
        .or_else(|| entry.parse::<SocketAddr>().ok().map(|s| s.ip()))
        .or_else(|| {
            entry
                .strip_prefix('[')?
                .strip_suffix(']')?
                .parse::<std::net::Ipv6Addr>()
                .ok()
                .map(IpAddr::V6)
        })?;
    Some(ip.to_canonical())
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;
    use proptest::prelude::*;

    fn xff() -> HeaderName {
        HeaderName::from_static("x-forwarded-for")
    }

    fn headers(lines: &[&str]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for l in lines {
            m.append(xff(), HeaderValue::from_str(l).unwrap());
        }
        m
    }

    fn trusted() -> Vec<IpNet> {
        vec![
            "10.0.0.0/8".parse().unwrap(),
            "2001:db8:cd::/48".parse().unwrap(),
        ]
    }

    fn from(lines: &[&str]) -> Option<IpAddr> {
        client(&headers(lines), &xff(), &trusted())
    }

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
    }

    #[test]
    fn the_rightmost_untrusted_entry_is_the_client() {
        // One proxy appended the client.
        assert_eq!(from(&["203.0.113.9"]), ip("203.0.113.9"));
        // A CDN edge appended the client; the load balancer behind it
        // appended the edge, which is trusted too.
        assert_eq!(from(&["203.0.113.9, 10.2.3.4"]), ip("203.0.113.9"));
        assert_eq!(
            from(&["203.0.113.9, 2001:db8:cd::7, 10.2.3.4"]),
            ip("203.0.113.9")
        );
        // Whatever the client sent itself, to the left, is never read.
        assert_eq!(
            from(&["1.1.1.1, 10.9.9.9, 203.0.113.9, 10.2.3.4"]),
            ip("203.0.113.9")
        );
        assert_eq!(from(&["not an ip, 203.0.113.9"]), ip("203.0.113.9"));
        // Several lines are one list, in order.
        assert_eq!(
            from(&["1.1.1.1, 203.0.113.9", "10.2.3.4"]),
            ip("203.0.113.9")
        );
        assert_eq!(from(&["203.0.113.9", "10.2.3.4,"]), ip("203.0.113.9"));
        // All trusted: the leftmost.
        assert_eq!(from(&["10.1.1.1, 10.2.2.2"]), ip("10.1.1.1"));
    }

    #[test]
    fn a_padded_list_is_read_only_so_far() {
        let hops = |n: usize| vec!["10.0.0.1"; n].join(", ");
        let within = format!("203.0.113.9, {}", hops(MAX_ENTRIES - 1));
        assert_eq!(from(&[within.as_str()]), ip("203.0.113.9"));
        let beyond = format!("203.0.113.9, {}", hops(MAX_ENTRIES));
        assert_eq!(from(&[beyond.as_str()]), None);
        // Untrusted entries to the left of the client never count.
        let forged = format!("{}, 203.0.113.9", vec!["198.51.100.1"; 500].join(", "));
        assert_eq!(from(&[forged.as_str()]), ip("203.0.113.9"));
    }

    #[test]
    fn entries_with_ports_brackets_or_mapped_addresses() {
        assert_eq!(from(&["203.0.113.9:4711"]), ip("203.0.113.9"));
        assert_eq!(from(&["[2001:db8::1]:4711"]), ip("2001:db8::1"));
        assert_eq!(from(&["[2001:db8::1]"]), ip("2001:db8::1"));
        assert_eq!(from(&["2001:db8::1"]), ip("2001:db8::1"));
        assert_eq!(from(&["::ffff:203.0.113.9"]), ip("203.0.113.9"));
        // A mapped form of a trusted proxy is trusted.
        assert_eq!(from(&["203.0.113.9, ::ffff:10.2.3.4"]), ip("203.0.113.9"));
    }

    #[test]
    fn rfc_7239_forwarded_elements() {
        let forwarded = HeaderName::from_static("forwarded");
        let mut m = HeaderMap::new();
        m.append(
            forwarded.clone(),
            HeaderValue::from_static(
                "for=198.51.100.1, for=\"[2001:db8::9]:4711\";proto=https, \
                 proto=https;For=10.2.3.4;by=10.0.0.1",
            ),
        );
        assert_eq!(client(&m, &forwarded, &trusted()), ip("2001:db8::9"));
        for opaque in [
            "for=unknown",
            "for=_hidden",
            "proto=https",
            "for=\"10.2.3.4",
        ] {
            let mut m = HeaderMap::new();
            m.append(forwarded.clone(), HeaderValue::from_str(opaque).unwrap());
            assert_eq!(client(&m, &forwarded, &trusted()), None, "{opaque}");
        }
    }

    #[test]
    fn no_answer_rather_than_a_guess() {
        assert_eq!(from(&[]), None);
        assert_eq!(from(&[""]), None);
        assert_eq!(from(&["unknown"]), None);
        assert_eq!(from(&["203.0.113.9, garbage"]), None);
        // Garbage where the client should be, behind a trusted hop.
        assert_eq!(from(&["garbage, 10.2.3.4"]), None);
        assert_eq!(from(&["203.0.113.9 , 10.2.3.4 x"]), None);
        let mut opaque = HeaderMap::new();
        opaque.append(xff(), HeaderValue::from_bytes(b"203.0.113.\xff").unwrap());
        assert_eq!(client(&opaque, &xff(), &trusted()), None);
    }

    proptest! {
        /// Entries a client writes before its request reaches the first
        /// trusted proxy never change the answer.
        #[test]
        fn a_client_cannot_choose_its_address(
            forged in proptest::collection::vec("[ -~]{0,20}", 0..5),
            client_octet in 1u8..=254,
            hops in proptest::collection::vec(0u8..=255, 0..4),
        ) {
            let client_ip = format!("198.51.100.{client_octet}");
            let mut entries: Vec<String> =
                forged.iter().map(|f| f.replace(',', " ")).collect();
            entries.push(client_ip.clone());
            entries.extend(hops.iter().map(|h| format!("10.0.{h}.1")));
            let line = entries.join(", ");
            let got = from(&[line.as_str()]);
            prop_assert_eq!(got, client_ip.parse().ok());
        }
    }
}
