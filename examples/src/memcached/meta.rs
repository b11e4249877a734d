//! memcached 1.6's meta commands: `mg`, `ms`, `md`, `ma`, `mn`, `me`.
//!
//! Replies follow memcached 1.6 (proto_text.c) byte for byte for the flags
//! implemented here: status codes `VA`/`HD`/`EN`/`NS`/`EX`/`NF`/`MN`, return
//! flags in the order the client asked for them, `O<opaque>` and `k` echoed
//! on misses too, `q` hiding the nominal reply (`EN` for `mg`, `HD` for the
//! others), and memcached's error strings for bad flags.
//!
//! Leases work as memcached's: `N` (vivify on miss) and `R` (recache)
//! on `mg` hand out `W` to exactly one client, later readers see `Z`, and
//! `md ... I` / `ms ... C<older cas> I` leave the item stale (`X`) - see
//! the store's `lease` module. A few things are simpler than in
//! memcached: a `C<cas>` check on `md` (without `I`), `ma` and
//! `ms MA`/`MP` is made just before the operation rather than under its
//! lock; `l` always answers `l0` (no access time is kept); `I` on `ms` without `C` is ignored; `b` (base64 keys) is refused.

use super::stats::{Counter, LocalCounters};
use super::store::{
    expiry_deadline, is_valid_key, item_size, DeltaError, ItemView, Lease, LeaseGet, MarkStale,
    NewItem, Store, StoreMode, StoreOutcome,
};
use super::text::{format_u64, parse_i32, parse_u32, parse_u64, push_u64, Tokens};

const ERROR: &[u8] = b"CLIENT_ERROR";
const BAD_FORMAT: &str = "bad command line format";
const BAD_TOKEN: &str = "bad token in command line format";
const NO_BASE64: &str = "base64 keys are not supported";

/// memcached refuses a meta command of more than 20 tokens (its
/// `MFLAG_MAX_OPT_LENGTH`, counting the command, the key and an empty
/// terminal token): at most this many tokens after the key.
const MAX_AFTER_KEY: usize = 17;
/// The longest `O<opaque>` token memcached echoes.
const MAX_OPAQUE: usize = 32;

/// What the session does after a meta command line.
#[derive(Debug)]
pub(crate) enum Next {
    /// Read the next command line.
    Line,
    /// Discard this many bytes (a refused `ms` data block and its `\r\n`).
    Swallow(usize),
    /// Read the data block of an `ms`.
    Data(PendingSet),
}

/// A meta command line split into key and the tokens after it.
struct Line<'a> {
    key: &'a [u8],
    after: [&'a [u8]; MAX_AFTER_KEY],
    /// How many tokens followed the key (may exceed `MAX_AFTER_KEY`).
    len: usize,
}

impl<'a> Line<'a> {
    fn split(mut tokens: Tokens<'a>) -> Option<Self> {
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

    fn after(&self) -> &[&'a [u8]] {
        &self.after[..self.len.min(MAX_AFTER_KEY)]
    }
}

/// The flags of a meta command, parsed like memcached's
/// `_meta_flag_preparse`.
#[derive(Default)]
struct Flags {
    value: bool,
    quiet: bool,
    cas: Option<u64>,
    ttl: Option<u64>,
    vivify: Option<u64>,
    recache: Option<u64>,
    invalidate: bool,
    client_flags: u32,
    mode: Option<u8>,
    delta: Option<u64>,
    initial: u64,
}

/// Parses flag tokens; `Err` carries memcached's error text.
fn parse_flags(tokens: &[&[u8]], now: u64) -> Result<Flags, &'static str> {
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

fn client_error(out: &mut Vec<u8>, message: &str) {
    out.extend_from_slice(ERROR);
    out.push(b' ');
    out.extend_from_slice(message.as_bytes());
    out.extend_from_slice(b"\r\n");
}

fn opaque_too_long(tokens: &[&[u8]]) -> bool {
    tokens.iter().any(|t| t[0] == b'O' && t.len() > MAX_OPAQUE)
}

/// Appends the `O<opaque>` and `k<key>` return flags, in request order.
fn echo(out: &mut Vec<u8>, tokens: &[&[u8]], key: &[u8]) {
    for token in tokens {
        match token[0] {
            b'O' => {
                out.push(b' ');
                out.extend_from_slice(token);
            }
            b'k' => {
                out.extend_from_slice(b" k");
                out.extend_from_slice(key);
            }
            _ => {}
        }
    }
}

fn push_ttl(out: &mut Vec<u8>, exptime: u64, now: u64) {
    out.extend_from_slice(b" t");
    if exptime == 0 {
        out.extend_from_slice(b"-1");
    } else {
        push_u64(out, exptime.saturating_sub(now));
    }
}

/// The checks `mg`, `md` and `ma` start with, in memcached's order: a
/// valid key, at most `MAX_AFTER_KEY` flag tokens (else `too_long`), flags
/// that parse (else their error, or `bad_flags` when given). Returns the
/// flag tokens and the parsed flags; `Err` carries the error text.
fn keyed_flags<'l, 'a>(
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

/// Appends a reply without a value: `code`, the echoed `O`/`k` flags, `\r\n`.
fn status(out: &mut Vec<u8>, code: &[u8], tokens: &[&[u8]], key: &[u8]) {
    out.extend_from_slice(code);
    echo(out, tokens, key);
    out.extend_from_slice(b"\r\n");
}

/// Runs meta command `command` (`mg`, `ms`, `md`, `ma`, `mn` or `me`).
pub(crate) fn dispatch(
    store: &Store,
    counters: &mut LocalCounters,
    command: &[u8],
    tokens: Tokens<'_>,
    now: u64,
    out: &mut Vec<u8>,
) -> Next {
    if command == b"mn" {
        out.extend_from_slice(b"MN\r\n");
        return Next::Line;
    }
    let Some(line) = Line::split(tokens) else {
        // memcached wants a key for every meta command but mn.
        if command == b"me" {
            client_error(out, BAD_FORMAT);
        } else {
            out.extend_from_slice(b"ERROR\r\n");
        }
        return Next::Line;
    };
    match command {
        b"mg" => meta_get(store, counters, &line, now, out),
        b"ms" => return meta_set(store, counters, &line, now, out),
        b"md" => meta_delete(store, counters, &line, now, out),
        b"ma" => meta_arithmetic(store, counters, &line, now, out),
        b"me" => meta_debug(store, counters, &line, now, out),
        _ => out.extend_from_slice(b"ERROR\r\n"),
    }
    Next::Line
}

/// The bytes that follow an `ms` line as its data block (`\r\n`
/// included), if the session reads or swallows one: the codec frames with
/// it. `None` for any other line.
pub(crate) fn data_block_len(line: &[u8]) -> Option<usize> {
    let mut tokens = Tokens::new(line);
    if tokens.next()? != b"ms" {
        return None;
    }
    set_length(&Line::split(tokens)?).ok()
}

/// The data block length of an `ms` line, or the error memcached answers
/// without reading a data block.
fn set_length(line: &Line<'_>) -> Result<usize, &'static str> {
    if !is_valid_key(line.key) || line.len == 0 {
        return Err(BAD_FORMAT);
    }
    if line.len > MAX_AFTER_KEY {
        return Err("options flags too long");
    }
    match parse_i32(line.after[0]) {
        Some(len) if (0..=i32::MAX - 2).contains(&len) => Ok(len as usize + 2),
        _ => Err(BAD_FORMAT),
    }
}

/// `mg <key> <flags>*`.
fn meta_get(
    store: &Store,
    counters: &mut LocalCounters,
    line: &Line<'_>,
    now: u64,
    out: &mut Vec<u8>,
) {
    let (tokens, flags) = match keyed_flags(line, now, "options flags are too long", None) {
        Ok(parsed) => parsed,
        Err(e) => return client_error(out, e),
    };
    if opaque_too_long(tokens) {
        return client_error(out, "opaque token too long");
    }
    let key = line.key;
    let write = |item: ItemView<'_>, lease: Lease| {
        if flags.value {
            out.extend_from_slice(b"VA ");
            push_u64(out, item.value.len() as u64);
        } else {
            out.extend_from_slice(b"HD");
        }
        for token in tokens {
            match token[0] {
                b's' => {
                    out.extend_from_slice(b" s");
                    push_u64(out, item.value.len() as u64);
                }
                b't' => push_ttl(out, item.exptime, now),
                b'c' => {
                    out.extend_from_slice(b" c");
                    push_u64(out, item.cas);
                }
                b'f' => {
                    out.extend_from_slice(b" f");
                    push_u64(out, u64::from(item.flags));
                }
                b'l' => out.extend_from_slice(b" l0"),
                b'h' => out.extend_from_slice(if lease.fetched { b" h1" } else { b" h0" }),
                _ => {}
            }
            echo_one(out, token, item.key);
        }
        // After the requested flags, as memcached appends them.
        for (on, flag) in [
            (lease.token_sent, b" Z"),
            (lease.stale, b" X"),
            (lease.won, b" W"),
        ] {
            if on {
                out.extend_from_slice(flag);
            }
        }
        out.extend_from_slice(b"\r\n");
        if flags.value {
            out.extend_from_slice(item.value);
            out.extend_from_slice(b"\r\n");
        }
    };
    let ask = LeaseGet {
        touch: flags.ttl,
        vivify: flags.vivify,
        recache: flags.recache,
    };
    let found = store.meta_get(key, ask, now, write);
    let (cmd, hit, miss) = if flags.ttl.is_some() {
        (Counter::CmdTouch, Counter::TouchHits, Counter::TouchMisses)
    } else {
        (Counter::CmdGet, Counter::GetHits, Counter::GetMisses)
    };
    counters.bump(cmd);
    if found.is_some() {
        counters.bump(hit);
        return;
    }
    counters.bump(miss);
    if !flags.quiet {
        status(out, b"EN", tokens, key);
    }
}

fn echo_one(out: &mut Vec<u8>, token: &[u8], key: &[u8]) {
    echo(out, &[token], key);
}

/// `ms <key> <datalen> <flags>*`: checks the line; the data block follows.
fn meta_set(
    store: &Store,
    counters: &mut LocalCounters,
    line: &Line<'_>,
    now: u64,
    out: &mut Vec<u8>,
) -> Next {
    let block = match set_length(line) {
        Ok(block) => block,
        Err(e) => {
            client_error(out, e);
            return Next::Line;
        }
    };
    let length = block - 2;
    let tokens = &line.after()[1..];
    let refuse = |out: &mut Vec<u8>, e: &str| {
        client_error(out, e);
        Next::Swallow(block)
    };
    let flags = match parse_flags(tokens, now) {
        Ok(flags) => flags,
        Err(e) => return refuse(out, e),
    };
    let mut mode = match flags.mode {
        None | Some(b'S') => StoreMode::Set,
        Some(b'E') => StoreMode::Add,
        Some(b'A') => StoreMode::Append,
        Some(b'P') => StoreMode::Prepend,
        Some(b'R') => StoreMode::Replace,
        Some(_) => return refuse(out, "invalid mode for ms M token"),
    };
    if opaque_too_long(tokens) {
        return refuse(out, "opaque token too long");
    }
    let mut append_cas = None;
    if let Some(cas) = flags.cas {
        match mode {
            StoreMode::Set | StoreMode::Replace if flags.invalidate => {
                mode = StoreMode::CasStale(cas)
            }
            StoreMode::Set | StoreMode::Replace => mode = StoreMode::Cas(cas),
            StoreMode::Append | StoreMode::Prepend if cas != 0 => append_cas = Some(cas),
            _ => {}
        }
    }
    let key = line.key;
    let size = item_size(key.len(), flags.client_flags, length);
    let refusal = if size > store.item_size_max() {
        Some((
            "SERVER_ERROR object too large for cache\r\n",
            Counter::StoreTooLarge,
        ))
    } else if store.exceeds_shard_budget(size) {
        Some((
            "SERVER_ERROR out of memory storing object\r\n",
            Counter::StoreNoMemory,
        ))
    } else {
        None
    };
    if let Some((message, counter)) = refusal {
        out.extend_from_slice(message.as_bytes());
        counters.bump(counter);
        // memcached: a failed ms must not leave the old value visible.
        store.delete(key, now);
        return Next::Swallow(block);
    }
    let mut echo = Vec::new();
    for token in tokens {
        if matches!(token[0], b'O' | b'k' | b'c') {
            echo.push(b' ');
            echo.extend_from_slice(token);
        }
    }
    let mut buf = Vec::with_capacity(key.len() + length);
    buf.extend_from_slice(key);
    Next::Data(PendingSet {
        mode,
        append_cas,
        quiet: flags.quiet,
        key_len: key.len(),
        flags: flags.client_flags,
        exptime: flags.ttl.unwrap_or(0),
        buf,
        full: key.len() + length,
        trailer: [0; 2],
        trailer_len: 0,
        echo,
    })
}

/// An `ms` whose data block is being read.
#[derive(Debug)]
pub(crate) struct PendingSet {
    mode: StoreMode,
    /// `C<cas>` on an append or prepend, checked before storing.
    append_cas: Option<u64>,
    quiet: bool,
    key_len: usize,
    flags: u32,
    exptime: u64,
    /// Key then value: it becomes the item.
    buf: Vec<u8>,
    full: usize,
    trailer: [u8; 2],
    trailer_len: usize,
    /// The `O`, `k` and `c` tokens of the line, each after a space.
    echo: Vec<u8>,
}

impl PendingSet {
    /// Takes what it still needs from `input`; returns how much it took.
    pub(crate) fn fill(&mut self, input: &[u8]) -> usize {
        let need = self.full - self.buf.len();
        let mut used = need.min(input.len());
        self.buf.extend_from_slice(&input[..used]);
        while self.trailer_len < 2 && used < input.len() {
            self.trailer[self.trailer_len] = input[used];
            self.trailer_len += 1;
            used += 1;
        }
        used
    }

    /// Whether the data block and its trailer are in.
    pub(crate) fn is_complete(&self) -> bool {
        self.trailer_len == 2
    }

    /// Stores the item and answers (memcached's `complete_nread_ascii`).
    pub(crate) fn finish(
        self,
        store: &Store,
        counters: &mut LocalCounters,
        now: u64,
        out: &mut Vec<u8>,
    ) {
        counters.bump(Counter::CmdSet);
        if self.trailer != *b"\r\n" {
            if !self.quiet {
                client_error(out, "bad data chunk");
            }
            return;
        }
        // The store takes the buffer; the key is copied only when the reply
        // echoes `k` or `c` after that.
        let key = if self.echo.is_empty() {
            Vec::new()
        } else {
            self.buf[..self.key_len].to_vec()
        };
        let Some(item) = NewItem::from_buffer(self.buf, self.key_len, self.flags, self.exptime)
        else {
            return client_error(out, BAD_FORMAT);
        };
        let current_cas = || store.get(&key, now, |i| i.cas);
        let outcome = match self.append_cas {
            Some(cas)
                if store
                    .get(item.key(), now, |i| i.cas)
                    .is_some_and(|c| c != cas) =>
            {
                StoreOutcome::Exists
            }
            _ => store.store(self.mode, item, now),
        };
        if let StoreMode::Cas(_) | StoreMode::CasStale(_) = self.mode {
            counters.bump(match outcome {
                StoreOutcome::Stored => Counter::CasHits,
                StoreOutcome::Exists => Counter::CasBadval,
                _ => Counter::CasMisses,
            });
        }
        let code: &[u8] = match outcome {
            StoreOutcome::Stored if self.quiet => return,
            StoreOutcome::Stored => b"HD",
            StoreOutcome::NotStored => b"NS",
            StoreOutcome::Exists => b"EX",
            StoreOutcome::NotFound => b"NF",
            StoreOutcome::OutOfMemory => {
                counters.bump(Counter::StoreNoMemory);
                out.extend_from_slice(b"SERVER_ERROR out of memory storing object\r\n");
                return;
            }
        };
        out.extend_from_slice(code);
        for token in Tokens::new(&self.echo) {
            match token[0] {
                b'O' => {
                    out.push(b' ');
                    out.extend_from_slice(token);
                }
                b'k' => {
                    out.extend_from_slice(b" k");
                    out.extend_from_slice(&key);
                }
                _ => {
                    out.extend_from_slice(b" c");
                    let cas = match outcome {
                        StoreOutcome::Stored => current_cas().unwrap_or(0),
                        _ => 0,
                    };
                    push_u64(out, cas);
                }
            }
        }
        out.extend_from_slice(b"\r\n");
    }
}

/// `md <key> <flags>*`.
fn meta_delete(
    store: &Store,
    counters: &mut LocalCounters,
    line: &Line<'_>,
    now: u64,
    out: &mut Vec<u8>,
) {
    let (tokens, flags) = match keyed_flags(
        line,
        now,
        "options flags too long",
        Some("invalid or duplicate flag"),
    ) {
        Ok(parsed) => parsed,
        Err(e) => return client_error(out, e),
    };
    if opaque_too_long(tokens) {
        return client_error(out, "opaque token too long");
    }
    let key = line.key;
    if flags.invalidate {
        let code: &[u8] = match store.mark_stale(key, flags.cas, flags.ttl, now) {
            Ok(()) if flags.quiet => return,
            Ok(()) => b"HD",
            Err(MarkStale::Exists) => b"EX",
            Err(MarkStale::NotFound) => b"NF",
        };
        if code != b"HD" {
            counters.bump(Counter::DeleteMisses);
        }
        return status(out, code, tokens, key);
    }
    let code: &[u8] = match store.get(key, now, |i| i.cas) {
        Some(cas) if flags.cas.is_some_and(|c| c != cas) => {
            counters.bump(Counter::DeleteMisses);
            b"EX"
        }
        Some(_) if store.delete(key, now) => {
            counters.bump(Counter::DeleteHits);
            if flags.quiet {
                return;
            }
            b"HD"
        }
        _ => {
            counters.bump(Counter::DeleteMisses);
            b"NF"
        }
    };
    status(out, code, tokens, key);
}

/// `ma <key> <flags>*`.
fn meta_arithmetic(
    store: &Store,
    counters: &mut LocalCounters,
    line: &Line<'_>,
    now: u64,
    out: &mut Vec<u8>,
) {
    let (tokens, flags) = match keyed_flags(
        line,
        now,
        "options flags too long",
        Some("invalid or duplicate flag"),
    ) {
        Ok(parsed) => parsed,
        Err(e) => return client_error(out, e),
    };
    let incr = match flags.mode {
        None | Some(b'I' | b'i' | b'+') => true,
        Some(b'D' | b'd' | b'-') => false,
        Some(_) => return client_error(out, "invalid mode for ma M token"),
    };
    if opaque_too_long(tokens) {
        return client_error(out, "opaque token too long");
    }
    let key = line.key;
    let (hits, misses) = if incr {
        (Counter::IncrHits, Counter::IncrMisses)
    } else {
        (Counter::DecrHits, Counter::DecrMisses)
    };
    let cas_mismatch = flags
        .cas
        .is_some_and(|c| store.get(key, now, |i| i.cas).is_some_and(|cas| cas != c));
    let result = if cas_mismatch {
        Err(b"EX" as &[u8])
    } else {
        match store.delta(key, incr, flags.delta.unwrap_or(1), now) {
            Ok(value) => {
                counters.bump(hits);
                Ok((value, false))
            }
            Err(DeltaError::NonNumeric) => {
                return client_error(out, "cannot increment or decrement non-numeric value")
            }
            Err(DeltaError::OutOfMemory) => {
                out.extend_from_slice(b"SERVER_ERROR out of memory\r\n");
                return;
            }
            Err(DeltaError::NotFound) => match flags.vivify {
                Some(deadline) => {
                    let mut digits = [0u8; 20];
                    let digits = format_u64(flags.initial, &mut digits);
                    let stored = NewItem::new(key, digits, 0, deadline)
                        .map(|item| store.store(StoreMode::Add, item, now));
                    match stored {
                        Some(StoreOutcome::Stored) => Ok((flags.initial, true)),
                        _ => Err(b"NS" as &[u8]),
                    }
                }
                None => {
                    counters.bump(misses);
                    Err(b"NF" as &[u8])
                }
            },
        }
    };
    let (value, created) = match result {
        Ok(found) => found,
        Err(code) => {
            return status(out, code, tokens, key);
        }
    };
    if let (Some(deadline), false) = (flags.ttl, created) {
        store.touch(key, deadline, now);
    }
    if flags.quiet && !created {
        return;
    }
    let mut digits = [0u8; 20];
    let digits = format_u64(value, &mut digits);
    let (cas, exptime) = store
        .get(key, now, |i| (i.cas, i.exptime))
        .unwrap_or((0, 0));
    if flags.value {
        out.extend_from_slice(b"VA ");
        push_u64(out, digits.len() as u64);
    } else {
        out.extend_from_slice(b"HD");
    }
    for token in tokens {
        match token[0] {
            b'c' => {
                out.extend_from_slice(b" c");
                push_u64(out, cas);
            }
            b't' => push_ttl(out, exptime, now),
            _ => echo_one(out, token, key),
        }
    }
    out.extend_from_slice(b"\r\n");
    if flags.value {
        out.extend_from_slice(digits);
        out.extend_from_slice(b"\r\n");
    }
}

/// `me <key>`: memcached's debug line, with what this server keeps; counts
/// `cmd_meta` as memcached 1.6.18 does (only here, once the key is valid).
fn meta_debug(
    store: &Store,
    counters: &mut LocalCounters,
    line: &Line<'_>,
    now: u64,
    out: &mut Vec<u8>,
) {
    if !is_valid_key(line.key) {
        return client_error(out, BAD_FORMAT);
    }
    if line.after().first() == Some(&&b"b"[..]) {
        return client_error(out, NO_BASE64);
    }
    counters.bump(Counter::CmdMeta);
    let found = store.get(line.key, now, |item| {
        out.extend_from_slice(b"ME ");
        out.extend_from_slice(item.key);
        out.extend_from_slice(b" exp=");
        if item.exptime == 0 {
            out.extend_from_slice(b"-1");
        } else {
            // memcached prints `current_time - exptime`: minus the TTL left.
            let left = item.exptime.saturating_sub(now);
            if left > 0 {
                out.push(b'-');
            }
            push_u64(out, left);
        }
        out.extend_from_slice(b" la=0 cas=");
        push_u64(out, item.cas);
        out.extend_from_slice(b" fetch=no cls=1 size=");
        push_u64(
            out,
            item_size(item.key.len(), item.flags, item.value.len()) as u64,
        );
        out.extend_from_slice(b"\r\n");
    });
    if found.is_none() {
        out.extend_from_slice(b"EN\r\n");
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::data_block_len;
    use crate::memcached::clock::ManualClock;
    use crate::memcached::{Config, Progress, Session, Store};

    const T0: u64 = 1_700_000_000;

    fn store() -> (Store, Arc<ManualClock>) {
        let clock = Arc::new(ManualClock::new(T0));
        (Store::new(&Config::default(), clock.clone()), clock)
    }

    /// Feeds `input` one byte at a time, as the slowest network would.
    fn bytewise(store: &Store, session: &mut Session, input: &[u8]) -> String {
        let mut pending = Vec::new();
        let mut out = Vec::new();
        for &b in input {
            pending.push(b);
            let (used, progress) = session.process(store, &pending, &mut out);
            assert_eq!(progress, Progress::Continue);
            pending.drain(..used);
        }
        assert!(pending.is_empty());
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn meta_commands_arrive_byte_by_byte() {
        let (store, _) = store();
        let mut session = Session::new();
        let replies = bytewise(
            &store,
            &mut session,
            b"ms k 5 T0 F9 q\r\nhello\r\nmg k v f q\r\nmg x q\r\nms k 2 MX\r\nxx\r\nmn\r\n",
        );
        assert_eq!(
            replies,
            "VA 5 f9\r\nhello\r\nCLIENT_ERROR invalid mode for ms M token\r\nMN\r\n"
        );
    }

    #[test]
    fn ttls_count_down_with_the_clock() {
        let (store, clock) = store();
        let mut session = Session::new();
        let mut out = Vec::new();
        let input = b"ms k 1 T100\r\nv\r\nma n N50 J1\r\n";
        session.process(&store, input, &mut out);
        clock.advance(30);
        out.clear();
        let input = b"mg k t\r\nma n t\r\nme k\r\nmg k T0 t\r\nmg k t\r\n";
        session.process(&store, input, &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "HD t70\r\nHD t20\r\nME k exp=-70 la=0 cas=1 fetch=no cls=1 size=61\r\nHD t-1\r\nHD t-1\r\n"
        );
        clock.advance(1000);
        let mut out = Vec::new();
        session.process(&store, b"mg n\r\n", &mut out);
        assert_eq!(out, b"EN\r\n");
    }

    #[test]
    fn only_good_ms_lines_carry_a_data_block() {
        assert_eq!(data_block_len(b"ms k 5"), Some(7));
        assert_eq!(data_block_len(b"ms k 5 MX zz"), Some(7));
        assert_eq!(data_block_len(b"  ms k 0 T1"), Some(2));
        assert_eq!(data_block_len(b"ms k"), None);
        assert_eq!(data_block_len(b"ms k -1"), None);
        assert_eq!(data_block_len(b"ms k x"), None);
        assert_eq!(data_block_len(b"mg k 5"), None);
        let many = format!("ms k 1{}", " v".repeat(17));
        assert_eq!(data_block_len(many.as_bytes()), None);
    }
}
