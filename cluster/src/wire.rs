//! Bytes of the cluster's message bodies: a [`Writer`] and a bounds-checked
//! [`Reader`] (every length is checked against what is left, so a hostile
//! body is an error, never an allocation of its claimed size). All integers
//! big-endian, strings and byte strings length-prefixed (u32).

use std::net::SocketAddr;

/// A body that does not decode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WireError(pub String);

impl std::fmt::Display for WireError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "bad message body: {}", self.0)
    }
}

impl std::error::Error for WireError {}

/// Result of decoding.
pub type WireResult<T> = Result<T, WireError>;

/// Appends fields to a body.
#[derive(Default)]
pub struct Writer(pub Vec<u8>);

impl Writer {
    /// An empty body.
    pub fn new() -> Writer {
        Writer::default()
    }
    /// A byte.
    pub fn u8(&mut self, v: u8) -> &mut Self {
        self.0.push(v);
        self
    }
    /// A u32.
    pub fn u32(&mut self, v: u32) -> &mut Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    /// A u64.
    pub fn u64(&mut self, v: u64) -> &mut Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    /// An i64.
    pub fn i64(&mut self, v: i64) -> &mut Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    /// Length-prefixed bytes.
    pub fn bytes(&mut self, v: &[u8]) -> &mut Self {
        self.u32(v.len() as u32);
        self.0.extend_from_slice(v);
        self
    }
    /// A length-prefixed UTF-8 string.
    pub fn str(&mut self, v: &str) -> &mut Self {
        self.bytes(v.as_bytes())
    }
    /// A socket address (as text).
    pub fn addr(&mut self, v: SocketAddr) -> &mut Self {
        self.str(&v.to_string())
    }
    /// The body.
    pub fn finish(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.0)
    }
}

/// Reads fields from a body; every read checks what is left.
pub struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    /// Reads `buf`.
    pub fn new(buf: &'a [u8]) -> Reader<'a> {
        Reader { buf }
    }
    fn take(&mut self, n: usize, what: &str) -> WireResult<&'a [u8]> {
        if self.buf.len() < n {
            return Err(WireError(format!(
                "{what}: needs {n} bytes, {} left",
                self.buf.len()
            )));
        }
        let (a, b) = self.buf.split_at(n);
        self.buf = b;
        Ok(a)
    }
    /// A byte.
    pub fn u8(&mut self) -> WireResult<u8> {
        Ok(self.take(1, "u8")?[0])
    }
    /// A u32.
    pub fn u32(&mut self) -> WireResult<u32> {
        Ok(u32::from_be_bytes(self.take(4, "u32")?.try_into().unwrap()))
    }
    /// A u64.
    pub fn u64(&mut self) -> WireResult<u64> {
        Ok(u64::from_be_bytes(self.take(8, "u64")?.try_into().unwrap()))
    }
    /// An i64.
    pub fn i64(&mut self) -> WireResult<i64> {
        Ok(i64::from_be_bytes(self.take(8, "i64")?.try_into().unwrap()))
    }
    /// Length-prefixed bytes.
    pub fn bytes(&mut self) -> WireResult<&'a [u8]> {
        let n = self.u32()? as usize;
        self.take(n, "bytes")
    }
    /// A length-prefixed UTF-8 string.
    pub fn str(&mut self) -> WireResult<&'a str> {
        std::str::from_utf8(self.bytes()?).map_err(|_| WireError("string is not UTF-8".into()))
    }
    /// A socket address.
    pub fn addr(&mut self) -> WireResult<SocketAddr> {
        let s = self.str()?;
        s.parse()
            .map_err(|_| WireError(format!("{s:?} is not an address")))
    }
    /// A count of following items, each at least `min_item` bytes (so a
    /// claimed count cannot exceed what the body holds).
    pub fn count(&mut self, min_item: usize) -> WireResult<usize> {
        let n = self.u32()? as usize;
        if n.saturating_mul(min_item.max(1)) > self.buf.len() {
            return Err(WireError(format!("count {n} exceeds the body")));
        }
        Ok(n)
    }
    /// Whether everything was read.
    pub fn end(&self) -> WireResult<()> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(WireError(format!("{} trailing bytes", self.buf.len())))
        }
    }
    /// What is left.
    pub fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_bounds() {
        let a: SocketAddr = "10.0.0.1:7000".parse().unwrap();
        let body = Writer::new()
            .u8(1)
            .u32(2)
            .u64(3)
            .i64(-4)
            .str("x")
            .addr(a)
            .finish();
        let mut r = Reader::new(&body);
        assert_eq!(r.u8().unwrap(), 1);
        assert_eq!(r.u32().unwrap(), 2);
        assert_eq!(r.u64().unwrap(), 3);
        assert_eq!(r.i64().unwrap(), -4);
        assert_eq!(r.str().unwrap(), "x");
        assert_eq!(r.addr().unwrap(), a);
        r.end().unwrap();
        // A huge claimed length is an error, not an allocation.
        let bad = Writer::new().u32(u32::MAX).finish();
        assert!(Reader::new(&bad).bytes().is_err());
        assert!(Reader::new(&bad).count(1).is_err());
    }
}
