//! The client address: who sent the request, as far as attrsync can vouch for it.
//!
//! The TCP peer is the client unless it is one of `server.trusted_proxies`. Only then are the
//! forwarding headers read: `Forwarded` (RFC 7239, its `for=` parameters) if present, otherwise
//! `X-Forwarded-For`; both list the hops left to right, each proxy appending the address it
//! received from. Reading right to left and skipping trusted proxies, the first address that is
//! not a trusted proxy is the client: everything left of it was written by a party nobody
//! vouches for. A hop that does not parse (`unknown`, an obfuscated `_name`, garbage) ends the
//! walk at the last address vouched for. A header sent by an untrusted peer is never read, so
//! forging one changes nothing.
//!
//! The address goes into the request's span as `client_addr`. It is logged as it is: the
//! callers of these endpoints are Genesys, AWS and CTI servers, not people.

use std::net::IpAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderMap, HeaderName};
use axum::middleware::Next;
use axum::response::Response;
use ipnet::IpNet;

use crate::server::Connection;

/// The request's client address, set on every request that came over a connection (requests
/// built in-process, as in unit tests, have none).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr(pub IpAddr);

/// The client of a request from `peer` with `headers`, trusting `trusted` proxies.
pub fn client_addr(peer: IpAddr, headers: &HeaderMap, trusted: &[IpNet]) -> IpAddr {
    let peer = peer.to_canonical();
    let is_trusted = |ip: IpAddr| crate::config::contains(trusted, ip);
    if !is_trusted(peer) {
        return peer;
    }
    let mut client = peer;
    for hop in forwarding_hops(headers).iter().rev() {
        let Some(hop) = hop.map(|ip| ip.to_canonical()) else {
            return client;
        };
        client = hop;
        if !is_trusted(hop) {
            return hop;
        }
    }
    client
}

/// The hops of `Forwarded` if the request has one, else of `X-Forwarded-For`, left to right;
/// `None` for a hop that is not an address.
fn forwarding_hops(headers: &HeaderMap) -> Vec<Option<IpAddr>> {
    let values = |name| {
        headers
            .get_all(name)
            .iter()
            .map(|v| v.to_str().unwrap_or(","))
            .flat_map(|v| v.split(','))
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    let forwarded = values(header::FORWARDED);
    if !forwarded.is_empty() {
        // Each element is `;`-separated pairs; an element without `for=` names no hop address.
        return forwarded
            .iter()
            .map(|element| {
                element.split(';').find_map(|pair| {
                    let (name, value) = pair.split_once('=')?;
                    name.trim().eq_ignore_ascii_case("for").then(|| node(value))
                })?
            })
            .collect();
    }
    values(HeaderName::from_static("x-forwarded-for"))
        .iter()
        .map(|hop| node(hop))
        .collect()
}

/// An address as forwarding headers write it: `192.0.2.7`, `192.0.2.7:4711`, `2001:db8::1`,
/// `[2001:db8::1]:4711`, quoted or not.
fn node(text: &str) -> Option<IpAddr> {
    let text = text.trim().trim_matches('"').trim();
    if let Some(rest) = text.strip_prefix('[') {
        let (ip, _port) = rest.split_once(']')?;
        return ip.parse::<std::net::Ipv6Addr>().ok().map(IpAddr::V6);
    }
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Some(ip);
    }
    let (ip, port) = text.rsplit_once(':')?;
    port.parse::<u16>().ok()?;
    ip.parse::<std::net::Ipv4Addr>().ok().map(IpAddr::V4)
}

/// Middleware (outermost, before the trace span is made): puts [`ClientAddr`] on the request.
pub async fn resolve(
    State(trusted): State<Arc<[IpNet]>>,
    mut req: Request,
    next: Next,
) -> Response {
    let peer = req
        .extensions()
        .get::<ConnectInfo<Connection>>()
        .map(|ConnectInfo(c)| c.peer.ip());
    if let Some(peer) = peer {
        let client = client_addr(peer, req.headers(), &trusted);
        req.extensions_mut().insert(ClientAddr(client));
    }
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn nets(list: &[&str]) -> Vec<IpNet> {
        list.iter()
            .map(|n| crate::config::parse_cidr(n).unwrap())
            .collect()
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        map
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn a_forged_header_from_an_untrusted_peer_changes_nothing() {
        let forged = headers(&[
            ("x-forwarded-for", "192.0.2.7"),
            ("forwarded", "for=192.0.2.7"),
        ]);
        let client = client_addr(ip("198.51.100.9"), &forged, &nets(&["10.0.0.0/8"]));
        assert_eq!(client, ip("198.51.100.9"));
        assert_eq!(client_addr(ip("10.0.0.5"), &forged, &[]), ip("10.0.0.5"));
    }

    #[test]
    fn behind_a_trusted_proxy_the_last_address_it_appended_is_the_client() {
        let trusted = nets(&["10.0.0.0/8"]);
        let h = headers(&[("x-forwarded-for", "203.0.113.50, 192.0.2.7")]);
        assert_eq!(client_addr(ip("10.1.2.3"), &h, &trusted), ip("192.0.2.7"));
    }

    #[test]
    fn trusted_hops_are_skipped_right_to_left() {
        let trusted = nets(&["10.0.0.0/8", "2001:db8:ffff::/48"]);
        let h = headers(&[
            ("x-forwarded-for", "203.0.113.50, 192.0.2.7"),
            ("x-forwarded-for", "10.9.9.9, 2001:db8:ffff::1"),
        ]);
        assert_eq!(client_addr(ip("10.1.2.3"), &h, &trusted), ip("192.0.2.7"));
    }

    #[test]
    fn forwarded_wins_over_x_forwarded_for_and_its_node_forms_are_read() {
        let trusted = nets(&["10.0.0.0/8"]);
        let h = headers(&[
            ("x-forwarded-for", "198.51.100.1"),
            (
                "forwarded",
                "for=192.0.2.60;proto=http;by=203.0.113.43, For=\"[2001:db8:cafe::17]:4711\"",
            ),
        ]);
        assert_eq!(
            client_addr(ip("10.0.0.1"), &h, &trusted),
            ip("2001:db8:cafe::17")
        );
        let h = headers(&[("forwarded", "for=\"192.0.2.43:47011\"")]);
        assert_eq!(client_addr(ip("10.0.0.1"), &h, &trusted), ip("192.0.2.43"));
    }

    #[test]
    fn an_unreadable_hop_ends_the_walk_at_the_last_address_vouched_for() {
        let trusted = nets(&["10.0.0.0/8"]);
        for value in ["for=unknown", "for=_hidden", "proto=https"] {
            let h = headers(&[("forwarded", &format!("for=192.0.2.1, {value}"))]);
            assert_eq!(
                client_addr(ip("10.0.0.1"), &h, &trusted),
                ip("10.0.0.1"),
                "{value}"
            );
        }
        let h = headers(&[("x-forwarded-for", "192.0.2.1, garbage, 10.0.0.2")]);
        assert_eq!(client_addr(ip("10.0.0.1"), &h, &trusted), ip("10.0.0.2"));
    }

    #[test]
    fn when_every_hop_is_trusted_the_leftmost_is_the_client() {
        let trusted = nets(&["10.0.0.0/8"]);
        let h = headers(&[("x-forwarded-for", "10.0.0.9, 10.0.0.8")]);
        assert_eq!(client_addr(ip("10.0.0.1"), &h, &trusted), ip("10.0.0.9"));
        assert_eq!(
            client_addr(ip("10.0.0.1"), &HeaderMap::new(), &trusted),
            ip("10.0.0.1")
        );
    }

    #[test]
    fn ipv4_mapped_peers_and_hops_are_their_ipv4_addresses() {
        let trusted = nets(&["10.0.0.0/8"]);
        let h = headers(&[("x-forwarded-for", "::ffff:192.0.2.7")]);
        assert_eq!(
            client_addr(ip("::ffff:10.0.0.1"), &h, &trusted),
            ip("192.0.2.7")
        );
    }
}
