//! SOCKS4 and SOCKS4a requests, parsed without I/O.
//!
//! ```text
//! +----+----+----+----+----+----+----+----+----+----+....+----+
//! | VN | CD | DSTPORT |      DSTIP        | USERID       |NULL|   then, for 4a with
//! +----+----+----+----+----+----+----+----+----+----+....+----+   DSTIP 0.0.0.x (x != 0):
//!   4    1    big-endian                                          HOSTNAME ... NULL
//! ```
//!
//! Only CONNECT (CD 1) is supported. A request longer than [`MAX_REQUEST`]
//! bytes is refused, so a client cannot make the proxy buffer an endless
//! user id.
//!
//! ```
//! use examples::socks::{parse, Target};
//! let req = [4, 1, 0, 80, 127, 0, 0, 1, b'u', 0];
//! let (len, target) = parse(&req).unwrap().unwrap();
//! assert_eq!(len, 10);
//! assert_eq!(target, Target::Addr("127.0.0.1:80".parse().unwrap()));
//! ```

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};

/// Longest request accepted, user id and host name included.
pub const MAX_REQUEST: usize = 128;

/// Where the client wants to go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// SOCKS4: an IPv4 address.
    Addr(SocketAddr),
    /// SOCKS4a: a host name to resolve, and a port.
    Host(String, u16),
}

/// Why a request is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SocksError {
    /// Not version 4.
    Version(u8),
    /// A command other than CONNECT.
    Command(u8),
    /// Longer than [`MAX_REQUEST`] bytes.
    TooLong,
    /// The host name is not UTF-8 or empty.
    BadHost,
}

/// The first request in `data`: `Ok(Some((bytes, target)))`, or `Ok(None)`
/// while incomplete.
pub fn parse(data: &[u8]) -> Result<Option<(usize, Target)>, SocksError> {
    if let Some(&vn) = data.first() {
        if vn != 4 {
            return Err(SocksError::Version(vn));
        }
    }
    if let Some(&cd) = data.get(1) {
        if cd != 1 {
            return Err(SocksError::Command(cd));
        }
    }
    let limited = &data[..data.len().min(MAX_REQUEST)];
    let Some(user_end) = limited.iter().skip(8).position(|&b| b == 0).map(|p| p + 8) else {
        return if data.len() >= MAX_REQUEST {
            Err(SocksError::TooLong)
        } else {
            Ok(None)
        };
    };
    let port = u16::from_be_bytes([data[2], data[3]]);
    let ip = Ipv4Addr::new(data[4], data[5], data[6], data[7]);
    let o = ip.octets();
    if o[0] == 0 && o[1] == 0 && o[2] == 0 && o[3] != 0 {
        // SOCKS4a: a host name follows the user id.
        let start = user_end + 1;
        let Some(end) = limited
            .iter()
            .skip(start)
            .position(|&b| b == 0)
            .map(|p| p + start)
        else {
            return if data.len() >= MAX_REQUEST {
                Err(SocksError::TooLong)
            } else {
                Ok(None)
            };
        };
        let host = std::str::from_utf8(&data[start..end]).map_err(|_| SocksError::BadHost)?;
        if host.is_empty() {
            return Err(SocksError::BadHost);
        }
        return Ok(Some((end + 1, Target::Host(host.to_string(), port))));
    }
    Ok(Some((
        user_end + 1,
        Target::Addr(SocketAddr::V4(SocketAddrV4::new(ip, port))),
    )))
}

/// The 8-byte reply: granted (0x5A) or rejected (0x5B).
pub fn reply(granted: bool) -> [u8; 8] {
    [0, if granted { 0x5a } else { 0x5b }, 0, 0, 0, 0, 0, 0]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socks4a_host_names() {
        let mut req = vec![4, 1, 0x1f, 0x90, 0, 0, 0, 1];
        req.extend_from_slice(b"me\0localhost\0");
        for end in 0..req.len() {
            assert_eq!(parse(&req[..end]), Ok(None), "prefix of {end}");
        }
        assert_eq!(
            parse(&req),
            Ok(Some((req.len(), Target::Host("localhost".into(), 8080))))
        );
    }

    #[test]
    fn refusals() {
        assert_eq!(parse(&[5, 1]), Err(SocksError::Version(5)));
        assert_eq!(parse(&[4, 2]), Err(SocksError::Command(2)));
        let mut long = vec![4, 1, 0, 80, 1, 2, 3, 4];
        long.extend(std::iter::repeat_n(b'u', 200));
        assert_eq!(parse(&long), Err(SocksError::TooLong));
        let mut long_host = vec![4, 1, 0, 80, 0, 0, 0, 9, 0];
        long_host.extend(std::iter::repeat_n(b'h', 200));
        assert_eq!(parse(&long_host), Err(SocksError::TooLong));
        assert_eq!(
            parse(&[4, 1, 0, 80, 0, 0, 0, 9, 0, 0]),
            Err(SocksError::BadHost)
        );
    }
}
