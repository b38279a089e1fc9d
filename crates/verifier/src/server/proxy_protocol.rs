//! The PROXY protocol: a header that a TCP load balancer (HAProxy, AWS
//! NLB, and most others that pass connections through without reading
//! HTTP) puts before a connection's first bytes to name the client it
//! accepted the connection from. Without it, every connection seems to come
//! from the balancer, and no link bound to a client address can work.
//!
//! Both versions are read: v1 (one text line) and v2 (binary), with
//! the `ppp` crate. The header is believed only from the balancers listed in
//! [`ServerConfig::proxy_protocol`](crate::ServerConfig::proxy_protocol):
//! from them it is required, and from anyone else it is never read (their
//! bytes go to the HTTP parser as they are, so a client that sends one
//! itself gets a 400, not the address it wrote).

use std::net::SocketAddr;

use bytes::{Buf, BytesMut};
use ppp::{HeaderResult, PartialResult, v1, v2};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

/// What the first bytes of a connection hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Parsed {
    /// The start of a header: more bytes are needed.
    Incomplete,
    /// No PROXY header, or a malformed one.
    Invalid,
    /// A header of `len` bytes. `client` is the source address it names;
    /// `None` for a connection the balancer opened itself (a v2 `LOCAL`
    /// health check) or an address family other than IP, where the peer
    /// address stands.
    Header {
        len: usize,
        client: Option<SocketAddr>,
    },
}

/// Reads a PROXY header at the start of `buf`.
pub(crate) fn parse(buf: &[u8]) -> Parsed {
    let result = HeaderResult::parse(buf);
    if result.is_incomplete() {
        return Parsed::Incomplete;
    }
    match result {
        HeaderResult::V1(Ok(header)) => {
            let client = match header.addresses {
                v1::Addresses::Tcp4(a) => Some((a.source_address, a.source_port).into()),
                v1::Addresses::Tcp6(a) => Some((a.source_address, a.source_port).into()),
                v1::Addresses::Unknown => None,
            };
            Parsed::Header {
                len: header.header.len(),
                client,
            }
        }
        HeaderResult::V2(Ok(header)) => {
            let client = match (header.command, &header.addresses) {
                (v2::Command::Proxy, v2::Addresses::IPv4(a)) => {
                    Some((a.source_address, a.source_port).into())
                }
                (v2::Command::Proxy, v2::Addresses::IPv6(a)) => {
                    Some((a.source_address, a.source_port).into())
                }
                _ => None,
            };
            Parsed::Header {
                len: header.len(),
                client,
            }
        }
        HeaderResult::V1(Err(_)) | HeaderResult::V2(Err(_)) => Parsed::Invalid,
    }
}

/// Reads the connection's PROXY header into `buf`, until `deadline` at the
/// latest, and returns the client address it names (see [`Parsed`]),
/// leaving in `buf` only the bytes that follow it. `None`: no valid header
/// within `max` bytes and the deadline, or the balancer left; the
/// connection is to be closed.
pub(crate) async fn read_header(
    stream: &mut TcpStream,
    buf: &mut BytesMut,
    deadline: tokio::time::Instant,
    max: usize,
) -> Option<Option<SocketAddr>> {
    loop {
        if !buf.is_empty() {
            match parse(buf) {
                Parsed::Header { len, client } => {
                    buf.advance(len);
                    return Some(client);
                }
                Parsed::Invalid => return None,
                Parsed::Incomplete if buf.len() >= max => return None,
                Parsed::Incomplete => {}
            }
        }
        let n = tokio::time::timeout_at(deadline, stream.read_buf(buf))
            .await
            .ok()?
            .ok()?;
        if n == 0 {
            return None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Any bytes get an answer, and a header never claims more bytes
        /// than were read.
        #[test]
        fn any_bytes_are_answered(
            bytes in proptest::collection::vec(any::<u8>(), 0..300),
            v2_start in any::<bool>(),
        ) {
            let input = if v2_start {
                [&b"\r\n\r\n\0\r\nQUIT\n"[..], &bytes].concat()
            } else {
                [&b"PROXY "[..], &bytes].concat()
            };
            if let Parsed::Header { len, .. } = parse(&input) {
                prop_assert!(len <= input.len());
            }
        }
    }

    fn v2(command: u8, family: u8, addresses: &[u8], tlvs: &[u8]) -> Vec<u8> {
        let mut h = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
        h.push(0x20 | command);
        h.push(family);
        let len = (addresses.len() + tlvs.len()) as u16;
        h.extend_from_slice(&len.to_be_bytes());
        h.extend_from_slice(addresses);
        h.extend_from_slice(tlvs);
        h
    }

    #[test]
    fn version_1_lines() {
        let line = b"PROXY TCP4 203.0.113.9 10.0.0.1 4711 80\r\n";
        let mut input = line.to_vec();
        input.extend_from_slice(b"GET / HTTP/1.1\r\n");
        assert_eq!(
            parse(&input),
            Parsed::Header {
                len: line.len(),
                client: Some("203.0.113.9:4711".parse().unwrap())
            }
        );
        let line = b"PROXY TCP6 2001:db8::9 2001:db8::1 4711 443\r\n";
        assert_eq!(
            parse(line),
            Parsed::Header {
                len: line.len(),
                client: Some("[2001:db8::9]:4711".parse().unwrap())
            }
        );
        assert_eq!(
            parse(b"PROXY UNKNOWN\r\nGET"),
            Parsed::Header {
                len: 15,
                client: None
            }
        );
        for partial in [&b"P"[..], b"PROXY", b"PROXY TCP4 203.0.113.9 10.0.0.1 4711"] {
            assert_eq!(parse(partial), Parsed::Incomplete, "{partial:?}");
        }
        for bad in [
            &b"GET / HTTP/1.1\r\n"[..],
            b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
            b"PROXY TCP4 203.0.113.9 10.0.0.1 99999 80\r\n",
            b"PROXY TCP4 2001:db8::9 10.0.0.1 4711 80\r\n",
            b"PROXY TCP4 203.0.113.9 10.0.0.1 4711 80\n",
            b"PROXY \xff\r\n",
        ] {
            assert_eq!(parse(bad), Parsed::Invalid, "{bad:?}");
        }
        // Longer than a v1 line may be (107 bytes) without its end.
        assert_eq!(
            parse(format!("PROXY TCP4 {}", "1".repeat(120)).as_bytes()),
            Parsed::Invalid
        );
    }

    #[test]
    fn version_2_headers() {
        // PROXY, TCP over IPv4: source, destination, ports; then a TLV.
        let addresses = [203, 0, 113, 9, 10, 0, 0, 1, 0x12, 0x67, 0, 80];
        let tlv = [0x04, 0x00, 0x01, 0x00];
        let mut input = v2(1, 0x11, &addresses, &tlv);
        let len = input.len();
        input.extend_from_slice(b"GET / HTTP/1.1\r\n");
        assert_eq!(
            parse(&input),
            Parsed::Header {
                len,
                client: Some("203.0.113.9:4711".parse().unwrap())
            }
        );
        let mut six = [0u8; 36];
        six[..16].copy_from_slice(
            &"2001:db8::9"
                .parse::<std::net::Ipv6Addr>()
                .unwrap()
                .octets(),
        );
        six[32..34].copy_from_slice(&4711u16.to_be_bytes());
        assert_eq!(
            parse(&v2(1, 0x21, &six, &[])),
            Parsed::Header {
                len: 16 + 36,
                client: Some("[2001:db8::9]:4711".parse().unwrap())
            }
        );
        // LOCAL: the balancer's own connection; the peer address stands.
        assert_eq!(
            parse(&v2(0, 0x00, &[], &[])),
            Parsed::Header {
                len: 16,
                client: None
            }
        );
        // Cut anywhere: more is needed.
        let whole = v2(1, 0x11, &addresses, &tlv);
        for cut in 1..whole.len() {
            assert_eq!(parse(&whole[..cut]), Parsed::Incomplete, "{cut}");
        }
        // Version 1 in the binary form's version bits, or a length shorter
        // than the family's addresses.
        let mut bad_version = whole.clone();
        bad_version[12] = 0x11;
        assert_eq!(parse(&bad_version), Parsed::Invalid);
        assert_eq!(parse(&v2(1, 0x11, &addresses[..8], &[])), Parsed::Invalid);
    }
}
