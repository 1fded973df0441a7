//! The network edge's settings: `[server.tls]` (native TLS and client certificates) and the
//! address lists (`server.trusted_proxies`, `auth.<group>.allow_from`), parsed at load so a bad
//! CIDR stops start-up naming its key.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use ipnet::IpNet;
use serde::{Deserialize, Deserializer, Serialize};

/// `[server.tls]`: HTTPS on `server.port` when `cert_path` is set, plain HTTP otherwise.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct TlsSettings {
    /// PEM certificate chain, leaf first (e.g. Let's Encrypt's `fullchain.pem`).
    pub cert_path: PathBuf,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1) matching the leaf.
    pub key_path: PathBuf,
    /// PEM CA certificates that client certificates are verified against; empty = none asked.
    pub client_ca_path: PathBuf,
    /// How often the certificate and key files are checked for a change; 0 = read once.
    pub reload_interval_secs: u64,
}

impl TlsSettings {
    /// Whether attrsync terminates TLS itself.
    pub fn enabled(&self) -> bool {
        !self.cert_path.as_os_str().is_empty()
    }

    /// Whether clients are asked for a certificate (and verified when they present one).
    pub fn client_certificates(&self) -> bool {
        !self.client_ca_path.as_os_str().is_empty()
    }

    /// `None` when the files are read once, at start.
    pub fn reload_interval(&self) -> Option<Duration> {
        (self.reload_interval_secs > 0).then(|| Duration::from_secs(self.reload_interval_secs))
    }
}

/// One entry of an address list: a CIDR (`10.0.0.0/8`, `2001:db8::/32`) or a single address
/// (`192.0.2.7`, `::1`, taken as /32 or /128).
pub fn parse_cidr(text: &str) -> Result<IpNet, String> {
    let text = text.trim();
    if text.contains('/') {
        // `trunc` so that `10.1.2.3/8` means the network it names, not a host route.
        text.parse::<IpNet>()
            .map(|net| net.trunc())
            .map_err(|_| format!("`{text}` is not a CIDR (e.g. 192.0.2.0/24 or 2001:db8::/32)"))
    } else {
        text.parse::<IpAddr>()
            .map(|ip| IpNet::from(ip.to_canonical()))
            .map_err(|_| format!("`{text}` is not an IP address or a CIDR"))
    }
}

/// Deserializes an address list; blank entries (an empty environment variable) are skipped.
pub(super) fn cidr_list<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Vec<IpNet>, D::Error> {
    let entries = Vec::<String>::deserialize(deserializer)?;
    entries
        .iter()
        .filter(|e| !e.trim().is_empty())
        .map(|e| parse_cidr(e).map_err(serde::de::Error::custom))
        .collect()
}

/// Whether `ip` is in any of `nets`; an IPv4-mapped IPv6 address (`::ffff:192.0.2.7`, what a
/// dual-stack socket reports for an IPv4 peer) counts as its IPv4 address.
pub fn contains(nets: &[IpNet], ip: IpAddr) -> bool {
    let ip = ip.to_canonical();
    nets.iter().any(|net| net.contains(&ip))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_single_address_is_a_host_network_and_a_cidr_names_its_network() {
        assert_eq!(parse_cidr("192.0.2.7").unwrap().to_string(), "192.0.2.7/32");
        assert_eq!(parse_cidr(" ::1 ").unwrap().to_string(), "::1/128");
        assert_eq!(parse_cidr("10.1.2.3/8").unwrap().to_string(), "10.0.0.0/8");
        assert_eq!(
            parse_cidr("2001:db8::1/32").unwrap().to_string(),
            "2001:db8::/32"
        );
    }

    #[test]
    fn anything_else_is_refused_with_the_offending_text() {
        for bad in ["10.0.0.0/33", "example.com", "10.0.0", "::1/129", ""] {
            let err = parse_cidr(bad).unwrap_err();
            assert!(err.contains(bad.trim()), "{err}");
        }
    }

    #[test]
    fn an_ipv4_mapped_ipv6_address_matches_its_ipv4_network() {
        let nets = [parse_cidr("192.0.2.0/24").unwrap()];
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        assert!(contains(&nets, mapped));
        assert!(!contains(&nets, "192.0.3.1".parse().unwrap()));
        let v6 = [parse_cidr("2001:db8::/32").unwrap()];
        assert!(contains(&v6, "2001:db8::42".parse().unwrap()));
        assert!(!contains(&v6, "192.0.2.7".parse().unwrap()));
    }
}
