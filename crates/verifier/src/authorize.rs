//! Checking the link: the client address, then the signer crate's verifier.

use std::net::{IpAddr, SocketAddr};

use http::{HeaderMap, HeaderName};
use ipnet::IpNet;
use mediagate_signer::time::OffsetDateTime;
use mediagate_signer::{Grant, MediaPath, Method, RequestFacts, Verifier};

use crate::headers::forwarded;
use crate::reject::Reject;

/// Where the client address that IP-bound links are checked against comes
/// from.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum ClientIpSource {
    /// The TCP peer address (the default).
    #[default]
    Peer,
    /// The client's address from a header such as `X-Forwarded-For`,
    /// believed only when the peer is one of `trusted_proxies`; otherwise
    /// the peer address. The list is read from the right, past every entry
    /// that is a trusted proxy (a CDN edge in front of a load balancer), as
    /// nginx's `real_ip_recursive on`; entries may carry a port, and
    /// `Forwarded` elements (RFC 7239) are read by their `for`. When an
    /// entry it must read is not an address, the peer address is used (and
    /// matches no client-bound link).
    TrustedHeader {
        /// The header, for example `x-forwarded-for`.
        header: HeaderName,
        /// The proxies (CDN, load balancer) allowed to set it.
        trusted_proxies: Vec<IpNet>,
    },
}

/// The client's address according to `source`.
pub(crate) fn client_ip(
    source: &ClientIpSource,
    peer: Option<SocketAddr>,
    headers: &HeaderMap,
) -> Option<IpAddr> {
    let peer = peer.map(|p| p.ip().to_canonical());
    match source {
        ClientIpSource::Peer => peer,
        ClientIpSource::TrustedHeader {
            header,
            trusted_proxies,
        } => {
            let trusted =
                peer.is_some_and(|ip| trusted_proxies.iter().any(|net| net.contains(&ip)));
            if !trusted {
                return peer;
            }
            forwarded::client(headers, header, trusted_proxies).or(peer)
        }
    }
}

/// Verifies the request's candidate tokens in order (see `token`): the
/// first grant wins; if none grants, the first one's refusal is the answer.
pub(crate) fn authorize(
    verifier: &Verifier,
    tokens: &[&str],
    method: Method,
    path: &MediaPath<'_>,
    client_ip: Option<IpAddr>,
    now: OffsetDateTime,
) -> Result<Grant, Reject> {
    let mut facts = RequestFacts::new(method, path);
    if let Some(ip) = client_ip {
        facts = facts.client_ip(ip);
    }
    let mut refusal = None;
    for token in tokens {
        match verifier.verify(token, &facts, now) {
            Ok(grant) => return Ok(grant),
            Err(e) => {
                refusal.get_or_insert(Reject::Link(e.code()));
            }
        }
    }
    Err(refusal.unwrap_or(Reject::MissingToken))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn trusted_header_only_from_trusted_proxies() {
        let source = ClientIpSource::TrustedHeader {
            header: http::HeaderName::from_static("x-forwarded-for"),
            trusted_proxies: vec!["10.0.0.0/8".parse().unwrap()],
        };
        let mut headers = HeaderMap::new();
        headers.insert(
            "x-forwarded-for",
            HeaderValue::from_static("1.1.1.1, 203.0.113.9"),
        );
        let proxy: SocketAddr = "10.1.1.1:5000".parse().unwrap();
        let stranger: SocketAddr = "198.51.100.1:5000".parse().unwrap();
        assert_eq!(
            client_ip(&source, Some(proxy), &headers),
            Some("203.0.113.9".parse().unwrap())
        );
        assert_eq!(
            client_ip(&source, Some(stranger), &headers),
            Some("198.51.100.1".parse().unwrap())
        );
        assert_eq!(
            client_ip(&ClientIpSource::Peer, Some(proxy), &headers),
            Some("10.1.1.1".parse().unwrap())
        );
        let mapped: SocketAddr = "[::ffff:10.1.1.1]:1".parse().unwrap();
        assert_eq!(
            client_ip(&ClientIpSource::Peer, Some(mapped), &headers),
            Some("10.1.1.1".parse().unwrap())
        );
    }
}
