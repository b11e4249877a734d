//! Reading a meta command line: splitting it into key and flag tokens,
//! parsing the flags as memcached's `_meta_flag_preparse` does, and the
//! checks `mg`, `md` and `ma` share.

use super::{BAD_FORMAT, BAD_TOKEN, MAX_AFTER_KEY, MAX_OPAQUE, NO_BASE64};
use crate::memcached::store::{expiry_deadline, is_valid_key};
use crate::memcached::text::{parse_i32, parse_u32, parse_u64, Tokens};

/// A meta command line split into key and the tokens after it.
pub(super) struct Line<'a> {
    pub(super) key: &'a [u8],
    pub(super) after: [&'a [u8]; MAX_AFTER_KEY],
    /// How many tokens followed the key (may exceed `MAX_AFTER_KEY`).
    pub(super) len: usize,
}

impl<'a> Line<'a> {
    pub(super) fn split(mut tokens: Tokens<'a>) -> Option<Self> {
        let key = tokens.next()?;
        let mut line = Line {
            key,
            after: [&[]; MAX_AFTER_KEY],
            len: 0,
        };
        for token in tokens {
            if line.len < MAX_AFTER_KEY {
                line.after[line.len] = token;
            }
            line.len += 1;
        }
        Some(line)
    }

    pub(super) fn after(&self) -> &[&'a [u8]] {
        &self.after[..self.len.min(MAX_AFTER_KEY)]
    }
}

/// The flags of a meta command, parsed like memcached's
/// `_meta_flag_preparse`.
#[derive(Default)]
pub(super) struct Flags {
    pub(super) value: bool,
    pub(super) quiet: bool,
    pub(super) cas: Option<u64>,
    pub(super) ttl: Option<u64>,
    pub(super) vivify: Option<u64>,
    pub(super) recache: Option<u64>,
    pub(super) invalidate: bool,
    pub(super) client_flags: u32,
    pub(super) mode: Option<u8>,
    pub(super) delta: Option<u64>,
    pub(super) initial: u64,
}

/// Parses flag tokens; `Err` carries memcached's error text.
pub(super) fn parse_flags(tokens: &[&[u8]], now: u64) -> Result<Flags, &'static str> {
    let mut flags = Flags::default();
    let mut seen = [false; 128];
    let mut error = None;
    let deadline =
        |token: &[u8]| parse_i32(&token[1..]).map(|t| expiry_deadline(i64::from(t), now));
    for token in tokens {
        let o = token[0];
        if o >= 127 || seen[usize::from(o)] {
            return Err("duplicate flag");
        }
        seen[usize::from(o)] = true;
        match o {
            b'b' => error = Some(NO_BASE64),
            b'N' => match deadline(token) {
                Some(d) => flags.vivify = Some(d),
                None => error = Some(BAD_TOKEN),
            },
            b'T' => match deadline(token) {
                Some(d) => flags.ttl = Some(d),
                None => error = Some(BAD_TOKEN),
            },
            b'R' => match deadline(token) {
                Some(d) => flags.recache = Some(d),
                None => error = Some(BAD_TOKEN),
            },
            b'I' => flags.invalidate = true,
            b'O' | b'P' | b'L' | b'k' | b's' | b't' | b'c' | b'f' | b'l' | b'h' | b'u' => {}
            b'v' => flags.value = true,
            b'q' => flags.quiet = true,
            b'F' => match parse_u32(&token[1..]) {
                Some(f) => flags.client_flags = f,
                None => error = Some(error.unwrap_or(BAD_FORMAT)),
            },
            b'C' => match parse_u64(&token[1..]) {
                Some(c) => flags.cas = Some(c),
                None => error = Some(BAD_TOKEN),
            },
            b'M' => {
                if token.len() == 2 {
                    flags.mode = Some(token[1]);
                } else {
                    error = Some("incorrect length for M token");
                }
            }
            b'J' => match parse_u64(&token[1..]) {
                Some(j) => flags.initial = j,
                None => error = Some("invalid numeric initial value"),
            },
            b'D' => match parse_u64(&token[1..]) {
                Some(d) => flags.delta = Some(d),
                None => error = Some("invalid numeric delta value"),
            },
            _ => return Err("invalid flag"),
        }
    }
    match error {
        Some(e) => Err(e),
        None => Ok(flags),
    }
}

pub(super) fn opaque_too_long(tokens: &[&[u8]]) -> bool {
    tokens.iter().any(|t| t[0] == b'O' && t.len() > MAX_OPAQUE)
}

/// The checks `mg`, `md` and `ma` start with, in memcached's order: a
/// valid key, at most `MAX_AFTER_KEY` flag tokens (else `too_long`), flags
/// that parse (else their error, or `bad_flags` when given). Returns the
/// flag tokens and the parsed flags; `Err` carries the error text.
pub(super) fn keyed_flags<'l, 'a>(
    line: &'l Line<'a>,
    now: u64,
    too_long: &'static str,
    bad_flags: Option<&'static str>,
) -> Result<(&'l [&'a [u8]], Flags), &'static str> {
    if !is_valid_key(line.key) {
        return Err(BAD_FORMAT);
    }
    if line.len > MAX_AFTER_KEY {
        return Err(too_long);
    }
    let tokens = line.after();
    let flags = parse_flags(tokens, now).map_err(|e| bad_flags.unwrap_or(e))?;
    Ok((tokens, flags))
}
