//! Who may register a message server: networks allowed on the msg_server
//! port, and proof of a shared key.
//!
//! TeamTalk's login_server believed any `IMMsgServInfo` on its msg_server
//! port, so anyone who could reach that port could register a "message
//! server" and have every client sent to it. Here:
//!
//! 1. **Networks.** A connection to the msg_server port is accepted only from
//!    an address in `MsgServerAllow` (a `;`-separated CIDR list, default
//!    loopback only: `127.0.0.0/8;::1/128`). Others are closed at accept,
//!    with a log line naming the address.
//! 2. **Shared key.** When `MsgServerKey` is set (login_server) and
//!    `LoginServerKey` is set to the same value (msg_server), a link must
//!    prove the key before its registration is believed:
//!
//!    ```text
//!    login_server -> msg_server   SID_INTERNAL/0x0801 IMLinkChallenge { nonce: 32 random bytes }
//!    msg_server -> login_server   SID_INTERNAL/0x0802 IMLinkProof { mac: HMAC-SHA256(key, LABEL || nonce) }
//!    msg_server -> login_server   IMMsgServInfo (registration), then IMUserCntUpdate as before
//!    ```
//!
//!    login_server sends a fresh challenge on every accepted link (with or
//!    without a key, so a msg_server with a key never waits for one in
//!    vain). With a key configured, a registration or count update before a
//!    valid proof, a wrong proof, or a second proof closes the link with a
//!    logged reason; a link that proves nothing is closed by the
//!    registration deadline (`MsgServerTimeoutMs`). The nonce is fresh per
//!    connection, so a recorded proof is worthless on another connection,
//!    and [`LABEL`] keeps the MAC from being useful for anything else.
//!
//! A msg_server with `LoginServerKey` set waits for the challenge and sends
//! its registration right after its proof; without a key it registers at
//! once, as TeamTalk's did (and a login_server with a key closes it).
//! TeamTalk's own msg_server logs and ignores the challenge, an unknown
//! command to it, so it still registers with a login_server without a key.
//!
//! The key travels nowhere; the link itself is not encrypted (TeamTalk's
//! links were plain TCP): keep the msg_server port on a private network.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// A shared key (`MsgServerKey` / `LoginServerKey`). Its `Debug` does not
/// show it, so settings can be logged.
#[derive(Clone, PartialEq, Eq)]
pub struct SharedKey(Vec<u8>);

impl SharedKey {
    /// The key from a configuration value; `None` when empty (no key).
    pub fn from_config(value: Option<&str>) -> Option<SharedKey> {
        value
            .filter(|k| !k.is_empty())
            .map(|k| SharedKey(k.as_bytes().to_vec()))
    }

    /// The proof for `nonce` under this key (see [`proof`]).
    pub fn proof(&self, nonce: &[u8]) -> Vec<u8> {
        proof(&self.0, nonce)
    }

    /// Whether `mac` proves this key for `nonce` (see [`verify`]).
    pub fn verify(&self, nonce: &[u8], mac: &[u8]) -> bool {
        verify(&self.0, nonce, mac)
    }
}

impl fmt::Debug for SharedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SharedKey(<redacted>)")
    }
}

/// Bytes of a challenge nonce.
pub const NONCE_LEN: usize = 32;

/// Prefixed to the nonce before MACing, so the MAC means "this is a
/// msg_server link" and nothing else.
pub const LABEL: &[u8] = b"netlib teamtalk msg_server link v1\0";

/// A network in CIDR notation (`10.0.0.0/8`, `::1/128`; a bare address is a
/// single host).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

impl FromStr for Cidr {
    type Err = String;

    fn from_str(s: &str) -> Result<Cidr, String> {
        let s = s.trim();
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = addr
            .parse()
            .map_err(|e| format!("{s:?} is not an address/prefix ({e})"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("{s:?}: prefix must be 0..={max}"))?,
        };
        Ok(Cidr { addr, prefix })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl Cidr {
    /// Whether `ip` is in this network. An IPv4-mapped IPv6 address
    /// (`::ffff:a.b.c.d`, as a dual-stack listener reports IPv4 peers)
    /// counts as its IPv4 address.
    ///
    /// ```
    /// use servers::login::link_auth::Cidr;
    /// let net: Cidr = "10.1.0.0/16".parse().unwrap();
    /// assert!(net.contains("10.1.2.3".parse().unwrap()));
    /// assert!(!net.contains("10.2.0.1".parse().unwrap()));
    /// assert!(net.contains("::ffff:10.1.9.9".parse().unwrap()));
    /// ```
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

/// Parses a `;`-separated CIDR list (`MsgServerAllow`); an empty list is an
/// error (it would refuse every msg_server).
pub fn parse_cidrs(s: &str) -> Result<Vec<Cidr>, String> {
    let nets = s
        .split(';')
        .filter(|p| !p.trim().is_empty())
        .map(Cidr::from_str)
        .collect::<Result<Vec<_>, _>>()?;
    if nets.is_empty() {
        return Err("empty network list".into());
    }
    Ok(nets)
}

/// A fresh random nonce from the operating system.
pub fn nonce() -> Result<[u8; NONCE_LEN], String> {
    let mut n = [0u8; NONCE_LEN];
    getrandom::fill(&mut n).map_err(|e| format!("no randomness: {e}"))?;
    Ok(n)
}

fn mac(key: &[u8], nonce: &[u8]) -> Hmac<Sha256> {
    // HMAC takes keys of any length; new_from_slice cannot fail for it.
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC accepts any key length");
    m.update(LABEL);
    m.update(nonce);
    m
}

/// The proof a msg_server sends for `nonce`: HMAC-SHA256(key, LABEL || nonce).
pub fn proof(key: &[u8], nonce: &[u8]) -> Vec<u8> {
    mac(key, nonce).finalize().into_bytes().to_vec()
}

/// Whether `proof` is right for `nonce` under `key` (compared in constant
/// time).
pub fn verify(key: &[u8], nonce: &[u8], proof: &[u8]) -> bool {
    mac(key, nonce).verify_slice(proof).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidr_lists_parse_and_match() {
        let nets = parse_cidrs("127.0.0.0/8; ::1/128;192.168.7.9").unwrap();
        let ok = |a: &str| nets.iter().any(|n| n.contains(a.parse().unwrap()));
        assert!(ok("127.3.4.5"));
        assert!(ok("::1"));
        assert!(ok("192.168.7.9"));
        assert!(ok("::ffff:127.0.0.1"));
        assert!(!ok("192.168.7.10"));
        assert!(!ok("10.0.0.1"));
        assert!(!ok("::2"));
        let all: Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains("8.8.8.8".parse().unwrap()));
        assert!(parse_cidrs("").is_err());
        assert!(parse_cidrs("10.0.0.0/33").is_err());
        assert!(parse_cidrs("example.com/8").is_err());
        assert_eq!(nets[0].to_string(), "127.0.0.0/8");
    }

    #[test]
    fn proofs_verify_only_with_the_key_and_nonce() {
        let n1 = nonce().unwrap();
        let n2 = nonce().unwrap();
        assert_ne!(n1, n2);
        let p = proof(b"key", &n1);
        assert_eq!(p.len(), 32);
        assert!(verify(b"key", &n1, &p));
        assert!(!verify(b"other", &n1, &p));
        assert!(!verify(b"key", &n2, &p));
        assert!(!verify(b"key", &n1, &p[..31]));
        let key = SharedKey::from_config(Some("key")).unwrap();
        assert!(key.verify(&n1, &key.proof(&n1)));
        assert_eq!(format!("{key:?}"), "SharedKey(<redacted>)");
        assert!(SharedKey::from_config(Some("")).is_none());
    }
}
