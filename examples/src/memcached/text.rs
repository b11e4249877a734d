//! Byte-level helpers for the ASCII protocol: tokenizing a command line,
//! reading numbers exactly the way memcached reads them, and writing numbers
//! without allocating.
//!
//! Why emulate C: memcached parses every number with `strtol`/`strtoul`/
//! `strtoull` wrapped in its `safe_strto*` helpers (util.c). Those accept a
//! leading sign and leading whitespace, reject trailing garbage, reject a
//! negative value only when it wraps to a "large" unsigned number, and on a
//! 64-bit build silently truncate a `long` into an `int32_t`. Clients have been
//! tested against those quirks for years (memcached's own `t/issue_70.t` checks
//! that a length of 4294967295 is refused because it truncates to -1), so the
//! parsers here reproduce them rather than using `str::parse`.
//!
//! Everything here works on borrowed slices of the caller's input buffer; no
//! function allocates.

/// `isspace` in the C locale: the only bytes that may end a number token.
pub(crate) fn is_c_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

/// Splits a command line on single spaces, skipping empty tokens, like
/// memcached's `tokenize_command` (which splits on `' '` only, not tabs).
#[derive(Debug, Clone)]
pub(crate) struct Tokens<'a> {
    rest: &'a [u8],
}

impl<'a> Tokens<'a> {
    /// Tokens of `line` (which must not contain its `\r\n`).
    pub(crate) fn new(line: &'a [u8]) -> Self {
        Tokens { rest: line }
    }
}

impl<'a> Iterator for Tokens<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        let start = self.rest.iter().position(|&b| b != b' ')?;
        let rest = &self.rest[start..];
        let end = rest.iter().position(|&b| b == b' ').unwrap_or(rest.len());
        self.rest = &rest[end..];
        Some(&rest[..end])
    }
}

/// The most arguments any fixed-arity command takes (`cas` has six with
/// `noreply`); one more slot lets "too many" be told apart from "just right".
pub(crate) const MAX_ARGS: usize = 7;

/// The arguments after a command name, collected without allocating.
///
/// `len()` counts every argument on the line even past `MAX_ARGS`, so arity
/// checks see the true count while only the first `MAX_ARGS` are kept.
#[derive(Debug)]
pub(crate) struct Args<'a> {
    items: [&'a [u8]; MAX_ARGS],
    len: usize,
}

impl<'a> Args<'a> {
    /// Collects the remaining tokens.
    pub(crate) fn collect(tokens: Tokens<'a>) -> Self {
        let mut args = Args {
            items: [&[]; MAX_ARGS],
            len: 0,
        };
        for token in tokens {
            if args.len < MAX_ARGS {
                args.items[args.len] = token;
            }
            args.len += 1;
        }
        args
    }

    /// How many arguments the line had.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Argument `i`, or an empty slice if there is none (empty never parses
    /// as a number or matches a keyword, so callers need no extra branch).
    pub(crate) fn get(&self, i: usize) -> &'a [u8] {
        if i < self.len.min(MAX_ARGS) {
            self.items[i]
        } else {
            &[]
        }
    }

    /// memcached's `set_noreply_maybe`: the last argument is `noreply`.
    pub(crate) fn last_is_noreply(&self) -> bool {
        self.len > 0 && self.len <= MAX_ARGS && self.items[self.len - 1] == b"noreply"
    }
}

/// What `strtoull`/`strtol` saw in a token, before range checks.
struct CNumber {
    negative: bool,
    magnitude: u64,
    overflow: bool,
}

/// The shared front half of the `strto*` family: optional leading whitespace,
/// an optional sign, at least one decimal digit, then end-of-token or a
/// whitespace byte. Anything else is `None`, as memcached's `safe_strto*`
/// reject it.
fn c_number(token: &[u8]) -> Option<CNumber> {
    let mut i = 0;
    while i < token.len() && is_c_space(token[i]) {
        i += 1;
    }
    let mut negative = false;
    if i < token.len() && (token[i] == b'+' || token[i] == b'-') {
        negative = token[i] == b'-';
        i += 1;
    }
    let digits_start = i;
    let mut magnitude: u64 = 0;
    let mut overflow = false;
    while i < token.len() && token[i].is_ascii_digit() {
        let digit = u64::from(token[i] - b'0');
        match magnitude.checked_mul(10).and_then(|m| m.checked_add(digit)) {
            Some(m) => magnitude = m,
            None => overflow = true,
        }
        i += 1;
    }
    if i == digits_start {
        return None; // str == endptr
    }
    if i < token.len() && !is_c_space(token[i]) {
        return None; // trailing garbage
    }
    Some(CNumber {
        negative,
        magnitude,
        overflow,
    })
}

/// memcached's `safe_strtoull`: a u64, where `-N` is refused only when its
/// two's-complement wrap would look negative as an i64 (so `-0` is 0).
pub(crate) fn parse_u64(token: &[u8]) -> Option<u64> {
    let n = c_number(token)?;
    if n.overflow {
        return None; // ERANGE
    }
    let value = if n.negative {
        n.magnitude.wrapping_neg()
    } else {
        n.magnitude
    };
    if (value as i64) < 0 && token.contains(&b'-') {
        return None;
    }
    Some(value)
}

/// memcached's `safe_strtoul` on a 64-bit build: parsed as an unsigned long
/// (64 bits), then stored into a `uint32_t`, keeping the low 32 bits.
pub(crate) fn parse_u32(token: &[u8]) -> Option<u32> {
    parse_u64(token).map(|v| v as u32)
}

/// memcached's `safe_strtol` on a 64-bit build: parsed as a long (64 bits,
/// out of range is refused), then stored into an `int32_t`, keeping the low
/// 32 bits. That is why a length of 4294967295 becomes -1.
pub(crate) fn parse_i32(token: &[u8]) -> Option<i32> {
    let n = c_number(token)?;
    if n.overflow {
        return None;
    }
    let value: i64 = if n.negative {
        if n.magnitude > 1u64 << 63 {
            return None;
        }
        (n.magnitude as i64).wrapping_neg()
    } else {
        if n.magnitude > i64::MAX as u64 {
            return None;
        }
        n.magnitude as i64
    };
    Some(value as i32)
}

/// Appends the decimal digits of `value` to `out` (itoa without a crate).
pub(crate) fn push_u64(out: &mut Vec<u8>, value: u64) {
    let mut buf = [0u8; 20];
    let digits = format_u64(value, &mut buf);
    out.extend_from_slice(digits);
}

/// Writes the decimal digits of `value` into the end of `buf` and returns
/// them.
pub(crate) fn format_u64(mut value: u64, buf: &mut [u8; 20]) -> &[u8] {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (value % 10) as u8;
        value /= 10;
        if value == 0 {
            break;
        }
    }
    &buf[i..]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(line: &str) -> Vec<&[u8]> {
        Tokens::new(line.as_bytes()).collect()
    }

    #[test]
    fn tokens_split_on_spaces_only() {
        assert_eq!(toks("get  a b"), vec![&b"get"[..], b"a", b"b"]);
        assert_eq!(toks("  set\tx 1 "), vec![&b"set\tx"[..], b"1"]);
        assert!(toks("").is_empty());
        assert!(toks("    ").is_empty());
    }

    #[test]
    fn args_count_past_capacity() {
        let args = Args::collect(Tokens::new(b"a b c d e f g h i"));
        assert_eq!(args.len(), 9);
        assert_eq!(args.get(0), b"a");
        assert_eq!(args.get(6), b"g");
        assert_eq!(args.get(7), b"");
        assert!(!args.last_is_noreply());
        let args = Args::collect(Tokens::new(b"k 0 noreply"));
        assert!(args.last_is_noreply());
        assert_eq!(args.get(5), b"");
    }

    #[test]
    fn u64_follows_safe_strtoull() {
        assert_eq!(parse_u64(b"0"), Some(0));
        assert_eq!(parse_u64(b"18446744073709551615"), Some(u64::MAX));
        assert_eq!(parse_u64(b"18446744073709551616"), None);
        assert_eq!(parse_u64(b"+5"), Some(5));
        assert_eq!(parse_u64(b"-1"), None);
        assert_eq!(parse_u64(b"-0"), Some(0));
        assert_eq!(parse_u64(b""), None);
        assert_eq!(parse_u64(b"-"), None);
        assert_eq!(parse_u64(b"12abc"), None);
        assert_eq!(parse_u64(b"12 "), Some(12));
        assert_eq!(parse_u64(b"\t7"), Some(7));
        assert_eq!(parse_u64(b"foobar"), None);
    }

    #[test]
    fn u32_truncates_like_a_64_bit_build() {
        assert_eq!(parse_u32(b"4294967295"), Some(u32::MAX));
        assert_eq!(parse_u32(b"4294967296"), Some(0));
        assert_eq!(parse_u32(b"-1"), None);
        assert_eq!(parse_u32(b"x"), None);
    }

    #[test]
    fn i32_truncates_like_a_64_bit_build() {
        assert_eq!(parse_i32(b"-1"), Some(-1));
        assert_eq!(parse_i32(b"2147483647"), Some(i32::MAX));
        assert_eq!(parse_i32(b"4294967295"), Some(-1));
        assert_eq!(parse_i32(b"9223372036854775807"), Some(-1));
        assert_eq!(parse_i32(b"9223372036854775808"), None);
        assert_eq!(parse_i32(b"-9223372036854775808"), Some(0));
        assert_eq!(parse_i32(b"-9223372036854775809"), None);
        assert_eq!(parse_i32(b"1x"), None);
    }

    #[test]
    fn formats_u64() {
        let mut out = Vec::new();
        for v in [0u64, 7, 10, 12345, u64::MAX] {
            out.clear();
            push_u64(&mut out, v);
            assert_eq!(out, v.to_string().as_bytes());
        }
    }
}
