//! memcached's ASCII protocol as a per-connection state machine over bytes.
//!
//! A network layer owns one [`Session`] per connection and feeds it whatever
//! bytes have arrived; the session consumes every complete command, appends
//! the replies to an output buffer, and says how many input bytes it used.
//! The caller keeps the unconsumed tail and offers it again, extended, when
//! more bytes arrive. The session never blocks, never reads a socket and
//! never panics on input, so the same code serves a mio reactor, a test, or a
//! fuzzer.
//!
//! The session is in one of three states:
//!
//! - waiting for a command line (terminated by `\n`, an optional `\r` before
//!   it is dropped);
//! - reading the data block of a storage command: the value is copied
//!   straight into the buffer that becomes the stored item, so a value is
//!   copied once on its way in;
//! - swallowing the data block of a refused storage command by counting
//!   bytes down, so a too-large value costs no memory.
//!
//! Replies follow memcached 1.6 word for word (proto_text.c), quirks
//! included: `noreply` silences error replies too; a malformed storage line
//! leaves its data block to be read as a command; the command name decides
//! how many arguments are allowed and any other count is a bare `ERROR`.
//! `version` and `quit` ignore extra arguments and `verbosity noreply` (no
//! level) is silent, as in memcached 1.6; libmemcached's `memcapable -a`
//! expects exactly that from a server whose version starts with 1.6 (it
//! wants errors only from older ones). Meta commands (`mg`, `ms`, `md`,
//! `ma`, `mn`, `me`) are handled in [`meta`](super::meta).
//!
//! A session belongs to one connection and one thread; it shares nothing but
//! the [`Store`] it is handed.

use super::config::Config;
use super::meta;
use super::stats::{ConnTicket, Counter, DetailOp, LocalCounters};
use super::store::{
    expiry_deadline, is_valid_key, item_size, DeltaError, ItemView, NewItem, Store, StoreMode,
    StoreOutcome,
};
use super::text::{parse_i32, parse_u32, parse_u64, push_u64, Args, Tokens};

/// The version `version` and `stats` report. We speak the 1.6 text protocol,
/// so clients that enable features by version see a 1.6 server.
pub const VERSION: &str = "1.6.21";

/// memcached caps `verbosity` at this level.
const MAX_VERBOSITY: u32 = 2;

const STORED: &[u8] = b"STORED\r\n";
const NOT_STORED: &[u8] = b"NOT_STORED\r\n";
const EXISTS: &[u8] = b"EXISTS\r\n";
const NOT_FOUND: &[u8] = b"NOT_FOUND\r\n";
const DELETED: &[u8] = b"DELETED\r\n";
const TOUCHED: &[u8] = b"TOUCHED\r\n";
const OK: &[u8] = b"OK\r\n";
const END: &[u8] = b"END\r\n";
const ERROR: &[u8] = b"ERROR\r\n";
const BAD_FORMAT: &[u8] = b"CLIENT_ERROR bad command line format\r\n";
const BAD_CHUNK: &[u8] = b"CLIENT_ERROR bad data chunk\r\n";
const BAD_EXPTIME: &[u8] = b"CLIENT_ERROR invalid exptime argument\r\n";
const BAD_DELTA: &[u8] = b"CLIENT_ERROR invalid numeric delta argument\r\n";
const NON_NUMERIC: &[u8] = b"CLIENT_ERROR cannot increment or decrement non-numeric value\r\n";
const DELETE_USAGE: &[u8] =
    b"CLIENT_ERROR bad command line format.  Usage: delete <key> [noreply]\r\n";
const TOO_LARGE: &[u8] = b"SERVER_ERROR object too large for cache\r\n";
const NO_MEMORY_STORING: &[u8] = b"SERVER_ERROR out of memory storing object\r\n";
const NO_MEMORY_GET: &[u8] = b"SERVER_ERROR out of memory writing get response\r\n";
const NO_MEMORY: &[u8] = b"SERVER_ERROR out of memory\r\n";
const FLUSH_DISABLED: &[u8] = b"CLIENT_ERROR flush_all not allowed\r\n";

/// The first byte of a binary-protocol request.
const BINARY_MAGIC: u8 = 0x80;

/// Why a session wants its connection closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    /// The client sent `quit`.
    Quit,
    /// A command line grew past [`Config::max_line`] (or
    /// [`Config::max_multiget_line`] for get/gets) without ending. memcached
    /// closes such connections rather than buffer without bound.
    LineTooLong,
    /// The command line looked like HTTP (its last token starts with
    /// `HTTP/`): memcached closes such connections at once, without a reply.
    Http,
    /// A request started with the binary protocol's magic byte (0x80);
    /// only the text protocol is spoken, so the connection is closed.
    BinaryProtocol,
    /// `shutdown` (with `-A`): close, then stop the server.
    Shutdown,
}

/// What the caller should do after [`Session::process`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// Every complete command was handled; call again when more bytes
    /// arrive.
    Continue,
    /// The output buffer reached [`Config::output_high_water`], so the
    /// session stopped before the next command. Write some of it out, then
    /// call again with the unconsumed input even if no new bytes arrived.
    OutputFull,
    /// Write out what is in the output buffer, then close the connection.
    /// Every later call returns this again and consumes nothing.
    Close(CloseReason),
}

/// The protocol state of one connection. See the module docs.
///
/// ```
/// use std::sync::Arc;
/// use examples::memcached::{Config, Progress, Session, Store, SystemClock};
///
/// let store = Store::new(&Config::default(), Arc::new(SystemClock));
/// let mut session = Session::new();
/// let mut out = Vec::new();
///
/// // The second command is incomplete: it is left for the next call.
/// let input = b"set k 0 0 2\r\nhi\r\nget k\r\nget";
/// let (used, progress) = session.process(&store, input, &mut out);
/// assert_eq!(used, input.len() - 3);
/// assert_eq!(progress, Progress::Continue);
/// assert_eq!(out, b"STORED\r\nVALUE k 0 2\r\nhi\r\nEND\r\n");
/// ```
#[derive(Debug, Default)]
pub struct Session {
    state: State,
    /// How many bytes of the pending line were already searched for `\n`,
    /// so a long line arriving in pieces is scanned once, not once per piece.
    scanned: usize,
    counters: LocalCounters,
    /// This connection's `stats conns` entry, if the server keeps one.
    conn: Option<ConnTicket>,
}

#[derive(Debug, Default)]
enum State {
    #[default]
    Line,
    Data(PendingStore),
    MetaData(meta::PendingSet),
    Swallow(usize),
    Closed(CloseReason),
}

/// A storage command whose data block is being read.
#[derive(Debug)]
struct PendingStore {
    mode: StoreMode,
    noreply: bool,
    key_len: usize,
    flags: u32,
    exptime: u64,
    /// Key then value, sized exactly for both: it becomes the item.
    buf: Vec<u8>,
    /// `buf.len()` once the whole value is in.
    full: usize,
    /// The two bytes after the value, which must be `\r\n`.
    trailer: [u8; 2],
    trailer_len: usize,
}

impl PendingStore {
    /// Takes what it still needs from `input`; returns how much it took.
    fn fill(&mut self, input: &[u8]) -> usize {
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

    fn is_complete(&self) -> bool {
        self.trailer_len == 2
    }
}

/// Which storage command a line asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Update {
    Set,
    Add,
    Replace,
    Append,
    Prepend,
    Cas,
}

impl Update {
    fn from_command(command: &[u8]) -> Option<Update> {
        Some(match command {
            b"set" => Update::Set,
            b"add" => Update::Add,
            b"replace" => Update::Replace,
            b"append" => Update::Append,
            b"prepend" => Update::Prepend,
            b"cas" => Update::Cas,
            _ => return None,
        })
    }
}

/// A storage command line that passed memcached's checks: a data block of
/// `length` bytes and `\r\n` follows it.
struct UpdateLine<'a> {
    mode: StoreMode,
    noreply: bool,
    key: &'a [u8],
    flags: u32,
    exptime: i32,
    length: usize,
}

/// Why a storage command line was refused (no data block is read).
enum BadUpdate {
    /// A bare `ERROR`.
    Arity,
    /// `CLIENT_ERROR bad command line format`, unless `noreply`.
    Format { noreply: bool },
}

/// Checks a storage command's arguments (memcached's
/// `process_update_command` up to reading the data).
fn parse_update<'a>(args: &Args<'a>, kind: Update) -> Result<UpdateLine<'a>, BadUpdate> {
    let arity = if kind == Update::Cas { 5..=6 } else { 4..=5 };
    if !arity.contains(&args.len()) {
        return Err(BadUpdate::Arity);
    }
    let noreply = args.last_is_noreply();
    let bad = BadUpdate::Format { noreply };
    let key = args.get(0);
    if !is_valid_key(key) {
        return Err(bad);
    }
    let (Some(flags), Some(exptime), Some(length)) = (
        parse_u32(args.get(1)),
        parse_i32(args.get(2)),
        parse_i32(args.get(3)),
    ) else {
        return Err(bad);
    };
    let mode = match kind {
        Update::Set => StoreMode::Set,
        Update::Add => StoreMode::Add,
        Update::Replace => StoreMode::Replace,
        Update::Append => StoreMode::Append,
        Update::Prepend => StoreMode::Prepend,
        Update::Cas => match parse_u64(args.get(4)) {
            Some(unique) => StoreMode::Cas(unique),
            None => return Err(bad),
        },
    };
    if !(0..=i32::MAX - 2).contains(&length) {
        return Err(bad);
    }
    Ok(UpdateLine {
        mode,
        noreply,
        key,
        flags,
        exptime,
        length: length as usize,
    })
}

/// The bytes that follow `line` (without its terminator) as its data
/// block, `\r\n` included: `Some` exactly when the session reads (or
/// swallows) a data block after it. The codec frames requests with it.
pub(crate) fn data_block_len(line: &[u8]) -> Option<usize> {
    if let Some(block) = meta::data_block_len(line) {
        return Some(block);
    }
    let mut tokens = Tokens::new(line);
    let kind = Update::from_command(tokens.next()?)?;
    let line = parse_update(&Args::collect(tokens), kind).ok()?;
    Some(line.length + 2)
}

/// Which retrieval command a line asked for.
#[derive(Debug, Clone, Copy)]
struct Retrieve {
    with_cas: bool,
    touch: bool,
}

impl Session {
    /// A session waiting for its first command.
    pub fn new() -> Self {
        Session::default()
    }

    /// Ties the session to its connection's `stats conns` entry (see
    /// [`Counters::register_conn`](super::stats::Counters::register_conn)).
    pub fn set_conn(&mut self, ticket: ConnTicket) {
        self.conn = Some(ticket);
    }

    /// The connection's `stats conns` entry, if any.
    pub fn conn(&self) -> Option<&ConnTicket> {
        self.conn.as_ref()
    }

    /// Consumes as many complete commands as `input` holds, appending their
    /// replies to `out`. Returns how many bytes of `input` were consumed and
    /// what to do next (see [`Progress`]).
    ///
    /// `input` must start with the bytes left unconsumed by the previous
    /// call. Bytes of a value being read are consumed (copied into the
    /// pending item) as they arrive, so the caller never holds more than one
    /// command line plus one read's worth of input.
    pub fn process(&mut self, store: &Store, input: &[u8], out: &mut Vec<u8>) -> (usize, Progress) {
        self.run(store, input, out, true)
    }

    /// Runs one frame of the [`MemcachedCodec`](super::codec::MemcachedCodec)
    /// (a command line with its data block, part of a refused data block,
    /// or the start of an overlong line), appending the reply to `out`
    /// whatever `out` already holds: the caller bounds its output itself.
    /// Returns why the connection must close, if it must.
    pub(crate) fn process_frame(
        &mut self,
        store: &Store,
        frame: &[u8],
        out: &mut Vec<u8>,
    ) -> Option<CloseReason> {
        match self.run(store, frame, out, false) {
            (_, Progress::Close(reason)) => Some(reason),
            (used, _) => {
                debug_assert_eq!(used, frame.len(), "a frame is consumed whole");
                None
            }
        }
    }

    fn run(
        &mut self,
        store: &Store,
        input: &[u8],
        out: &mut Vec<u8>,
        stop_at_high_water: bool,
    ) -> (usize, Progress) {
        let out_start = out.len();
        if !stop_at_high_water {
            // A codec frame is consumed whole: count it before running it,
            // so a `stats` in it sees its own bytes, as memcached's does.
            self.counters.add(Counter::BytesRead, input.len() as u64);
        }
        let now = store.now();
        if let Some(conn) = &self.conn {
            conn.touch(now);
        }
        let config = store.config();
        let mut pos = 0;
        let progress = loop {
            match &mut self.state {
                State::Closed(reason) => break Progress::Close(*reason),
                State::Swallow(remaining) => {
                    let n = (*remaining).min(input.len() - pos);
                    pos += n;
                    *remaining -= n;
                    if *remaining > 0 {
                        break Progress::Continue;
                    }
                    self.state = State::Line;
                }
                State::Data(pending) => {
                    pos += pending.fill(&input[pos..]);
                    if !pending.is_complete() {
                        break Progress::Continue;
                    }
                    if let State::Data(pending) = std::mem::take(&mut self.state) {
                        self.finish_store(store, pending, now, out);
                    }
                }
                State::MetaData(pending) => {
                    pos += pending.fill(&input[pos..]);
                    if !pending.is_complete() {
                        break Progress::Continue;
                    }
                    if let State::MetaData(pending) = std::mem::take(&mut self.state) {
                        pending.finish(store, &mut self.counters, now, out);
                    }
                }
                State::Line => {
                    let rest = &input[pos..];
                    if rest.is_empty() {
                        break Progress::Continue;
                    }
                    if stop_at_high_water && out.len() >= config.output_high_water {
                        break Progress::OutputFull;
                    }
                    if rest[0] == BINARY_MAGIC {
                        self.state = State::Closed(CloseReason::BinaryProtocol);
                        continue;
                    }
                    let limit = line_limit(rest, config);
                    // Look no further than one byte past the limit: a line
                    // that long is refused whatever follows.
                    let window = rest.len().min(limit.saturating_add(1));
                    let from = self.scanned.min(window);
                    match rest[from..window].iter().position(|&b| b == b'\n') {
                        Some(i) => {
                            let newline = from + i;
                            self.scanned = 0;
                            let line = match &rest[..newline] {
                                [line @ .., b'\r'] => line,
                                line => line,
                            };
                            pos += newline + 1;
                            if let Some(reason) = self.dispatch(store, line, now, out) {
                                self.state = State::Closed(reason);
                            }
                        }
                        None if rest.len() > limit => {
                            self.state = State::Closed(CloseReason::LineTooLong);
                        }
                        None => {
                            self.scanned = window;
                            break Progress::Continue;
                        }
                    }
                }
            }
        };
        if stop_at_high_water {
            self.counters.add(Counter::BytesRead, pos as u64);
        }
        self.counters.add(
            Counter::BytesWritten,
            out.len().saturating_sub(out_start) as u64,
        );
        store.counters().absorb(&mut self.counters);
        (pos, progress)
    }

    /// Runs one command line. Returns a reason if the connection must close.
    fn dispatch(
        &mut self,
        store: &Store,
        line: &[u8],
        now: u64,
        out: &mut Vec<u8>,
    ) -> Option<CloseReason> {
        let mut tokens = Tokens::new(line);
        let Some(command) = tokens.next() else {
            out.extend_from_slice(ERROR);
            return None;
        };
        let kind = |with_cas, touch| Retrieve { with_cas, touch };
        match command {
            b"get" | b"bget" => self.retrieve(store, tokens, kind(false, false), now, out),
            b"gets" => self.retrieve(store, tokens, kind(true, false), now, out),
            b"gat" => self.retrieve(store, tokens, kind(false, true), now, out),
            b"gats" => self.retrieve(store, tokens, kind(true, true), now, out),
            b"set" | b"add" | b"replace" | b"append" | b"prepend" | b"cas" => {
                if let Some(kind) = Update::from_command(command) {
                    self.update(store, Args::collect(tokens), kind, now, out);
                }
            }
            b"incr" => self.arithmetic(store, Args::collect(tokens), true, now, out),
            b"decr" => self.arithmetic(store, Args::collect(tokens), false, now, out),
            b"touch" => self.touch(store, Args::collect(tokens), now, out),
            b"delete" => self.delete(store, Args::collect(tokens), now, out),
            b"flush_all" => self.flush_all(store, Args::collect(tokens), now, out),
            b"stats" => self.stats(store, Args::collect(tokens), now, out),
            b"verbosity" => verbosity(store, Args::collect(tokens), out),
            // memcached 1.6 ignores any arguments of these two.
            b"version" => {
                out.extend_from_slice(b"VERSION ");
                out.extend_from_slice(VERSION.as_bytes());
                out.extend_from_slice(b"\r\n");
            }
            b"mg" | b"ms" | b"md" | b"ma" | b"mn" | b"me" => {
                match meta::dispatch(store, &mut self.counters, command, tokens, now, out) {
                    meta::Next::Line => {}
                    meta::Next::Swallow(n) => self.state = State::Swallow(n),
                    meta::Next::Data(pending) => self.state = State::MetaData(pending),
                }
            }
            b"quit" => return Some(CloseReason::Quit),
            b"shutdown" => return admin::shutdown(store, Args::collect(tokens), out),
            b"cache_memlimit" => admin::cache_memlimit(store, Args::collect(tokens), out),
            b"slabs" => admin::slabs(Args::collect(tokens), out),
            b"lru_crawler" => admin::lru_crawler(store, Args::collect(tokens), out),
            b"watch" => admin::watch(Args::collect(tokens), out),
            _ => {
                // memcached: an unknown command whose last token starts
                // with "HTTP/" closes the connection without a reply.
                let last = tokens.last().unwrap_or(command);
                if command.len() >= 2 && last.starts_with(b"HTTP/") {
                    return Some(CloseReason::Http);
                }
                out.extend_from_slice(ERROR);
            }
        }
        None
    }

    /// get, gets, gat, gats (memcached's `process_get_command`).
    fn retrieve(
        &mut self,
        store: &Store,
        mut tokens: Tokens<'_>,
        kind: Retrieve,
        now: u64,
        out: &mut Vec<u8>,
    ) {
        if tokens.clone().next().is_none() {
            out.extend_from_slice(ERROR);
            return;
        }
        let touch = if kind.touch {
            match tokens.next().and_then(parse_i32) {
                Some(exptime) => Some(expiry_deadline(i64::from(exptime), now)),
                None => {
                    out.extend_from_slice(BAD_EXPTIME);
                    return;
                }
            }
        } else {
            None
        };
        let start = out.len();
        let budget = store.config().max_get_response;
        for key in tokens {
            if !is_valid_key(key) {
                // Like memcached, drop the values already queued for this
                // command and answer with the error alone.
                out.truncate(start);
                out.extend_from_slice(BAD_FORMAT);
                return;
            }
            let write = |item: ItemView<'_>| write_value(out, start, budget, item, kind.with_cas);
            let found = match touch {
                Some(exptime) => store.get_and_touch(key, exptime, now, write),
                None => store.get(key, now, write),
            };
            let (hit, miss) = if kind.touch {
                self.counters.bump(Counter::CmdTouch);
                (Counter::TouchHits, Counter::TouchMisses)
            } else {
                self.counters.bump(Counter::CmdGet);
                (Counter::GetHits, Counter::GetMisses)
            };
            let detail = if found.is_some() {
                DetailOp::GetHit
            } else {
                DetailOp::GetMiss
            };
            store.counters().record_detail(key, detail);
            match found {
                Some(written) => {
                    self.counters.bump(hit);
                    if !written {
                        out.truncate(start);
                        out.extend_from_slice(NO_MEMORY_GET);
                        return;
                    }
                }
                None => self.counters.bump(miss),
            }
        }
        out.extend_from_slice(END);
    }

    /// set, add, replace, append, prepend, cas: the command line
    /// (memcached's `process_update_command`). The data block follows.
    fn update(&mut self, store: &Store, args: Args<'_>, kind: Update, now: u64, out: &mut Vec<u8>) {
        let line = match parse_update(&args, kind) {
            Ok(line) => line,
            Err(BadUpdate::Arity) => {
                out.extend_from_slice(ERROR);
                return;
            }
            Err(BadUpdate::Format { noreply }) => {
                reply(out, noreply, BAD_FORMAT);
                return;
            }
        };
        let UpdateLine {
            mode,
            noreply,
            key,
            flags,
            exptime,
            length,
        } = line;
        let size = item_size(key.len(), flags, length);
        let refusal = if size > store.item_size_max() {
            Some((TOO_LARGE, Counter::StoreTooLarge))
        } else if store.exceeds_shard_budget(size) {
            Some((NO_MEMORY_STORING, Counter::StoreNoMemory))
        } else {
            None
        };
        if let Some((message, counter)) = refusal {
            reply(out, noreply, message);
            self.counters.bump(counter);
            self.state = State::Swallow(length + 2);
            // memcached: a failed set must not leave the old value visible.
            if mode == StoreMode::Set {
                store.delete(key, now);
            }
            return;
        }
        let mut buf = Vec::with_capacity(key.len() + length);
        buf.extend_from_slice(key);
        self.state = State::Data(PendingStore {
            mode,
            noreply,
            key_len: key.len(),
            flags,
            exptime: expiry_deadline(i64::from(exptime), now),
            buf,
            full: key.len() + length,
            trailer: [0; 2],
            trailer_len: 0,
        });
    }

    /// The data block of a storage command is in (memcached's
    /// `complete_nread_ascii`).
    fn finish_store(&mut self, store: &Store, pending: PendingStore, now: u64, out: &mut Vec<u8>) {
        self.counters.bump(Counter::CmdSet);
        let noreply = pending.noreply;
        if pending.trailer != *b"\r\n" {
            reply(out, noreply, BAD_CHUNK);
            return;
        }
        let mode = pending.mode;
        let key = pending.buf.get(..pending.key_len).unwrap_or_default();
        store.counters().record_detail(key, DetailOp::Set);
        let Some(item) =
            NewItem::from_buffer(pending.buf, pending.key_len, pending.flags, pending.exptime)
        else {
            // Unreachable: the key was validated when the line was read.
            reply(out, noreply, BAD_FORMAT);
            return;
        };
        let outcome = store.store(mode, item, now);
        if let StoreMode::Cas(_) = mode {
            match outcome {
                StoreOutcome::Stored => self.counters.bump(Counter::CasHits),
                StoreOutcome::Exists => self.counters.bump(Counter::CasBadval),
                StoreOutcome::NotFound => self.counters.bump(Counter::CasMisses),
                StoreOutcome::NotStored | StoreOutcome::OutOfMemory => {}
            }
        }
        let message = match outcome {
            StoreOutcome::Stored => STORED,
            StoreOutcome::NotStored => NOT_STORED,
            StoreOutcome::Exists => EXISTS,
            StoreOutcome::NotFound => NOT_FOUND,
            StoreOutcome::OutOfMemory => {
                self.counters.bump(Counter::StoreNoMemory);
                NO_MEMORY_STORING
            }
        };
        reply(out, noreply, message);
    }

    /// incr and decr (memcached's `process_arithmetic_command`).
    fn arithmetic(
        &mut self,
        store: &Store,
        args: Args<'_>,
        incr: bool,
        now: u64,
        out: &mut Vec<u8>,
    ) {
        if !(2..=3).contains(&args.len()) {
            out.extend_from_slice(ERROR);
            return;
        }
        let noreply = args.last_is_noreply();
        let key = args.get(0);
        if !is_valid_key(key) {
            reply(out, noreply, BAD_FORMAT);
            return;
        }
        let Some(delta) = parse_u64(args.get(1)) else {
            reply(out, noreply, BAD_DELTA);
            return;
        };
        let (hits, misses) = if incr {
            (Counter::IncrHits, Counter::IncrMisses)
        } else {
            (Counter::DecrHits, Counter::DecrMisses)
        };
        match store.delta(key, incr, delta, now) {
            Ok(value) => {
                self.counters.bump(hits);
                if !noreply {
                    push_u64(out, value);
                    out.extend_from_slice(b"\r\n");
                }
            }
            Err(DeltaError::NotFound) => {
                self.counters.bump(misses);
                reply(out, noreply, NOT_FOUND);
            }
            Err(DeltaError::NonNumeric) => reply(out, noreply, NON_NUMERIC),
            Err(DeltaError::OutOfMemory) => reply(out, noreply, NO_MEMORY),
        }
    }

    /// touch (memcached's `process_touch_command`).
    fn touch(&mut self, store: &Store, args: Args<'_>, now: u64, out: &mut Vec<u8>) {
        if !(2..=3).contains(&args.len()) {
            out.extend_from_slice(ERROR);
            return;
        }
        let noreply = args.last_is_noreply();
        let key = args.get(0);
        if !is_valid_key(key) {
            reply(out, noreply, BAD_FORMAT);
            return;
        }
        let Some(exptime) = parse_i32(args.get(1)) else {
            reply(out, noreply, BAD_EXPTIME);
            return;
        };
        self.counters.bump(Counter::CmdTouch);
        if store.touch(key, expiry_deadline(i64::from(exptime), now), now) {
            self.counters.bump(Counter::TouchHits);
            reply(out, noreply, TOUCHED);
        } else {
            self.counters.bump(Counter::TouchMisses);
            reply(out, noreply, NOT_FOUND);
        }
    }

    /// delete (memcached's `process_delete_command`): `delete <key> [0]
    /// [noreply]`; the legacy hold time is accepted only as `0`.
    fn delete(&mut self, store: &Store, args: Args<'_>, now: u64, out: &mut Vec<u8>) {
        if !(1..=3).contains(&args.len()) {
            out.extend_from_slice(ERROR);
            return;
        }
        let mut noreply = false;
        if args.len() > 1 {
            let hold_is_zero = args.get(1) == b"0";
            noreply = args.last_is_noreply();
            let valid = (args.len() == 2 && (hold_is_zero || noreply))
                || (args.len() == 3 && hold_is_zero && noreply);
            if !valid {
                reply(out, noreply, DELETE_USAGE);
                return;
            }
        }
        let key = args.get(0);
        if !is_valid_key(key) {
            reply(out, noreply, BAD_FORMAT);
            return;
        }
        store.counters().record_detail(key, DetailOp::Delete);
        if store.delete(key, now) {
            self.counters.bump(Counter::DeleteHits);
            reply(out, noreply, DELETED);
        } else {
            self.counters.bump(Counter::DeleteMisses);
            reply(out, noreply, NOT_FOUND);
        }
    }

    /// flush_all [delay] [noreply] (memcached's `process_flush_all_command`).
    ///
    /// The delay is an exptime (relative or absolute). memcached then
    /// invalidates every item last stored at or before one second before
    /// that moment; a moment already reached means "now".
    fn flush_all(&mut self, store: &Store, args: Args<'_>, now: u64, out: &mut Vec<u8>) {
        if args.len() > 2 {
            out.extend_from_slice(ERROR);
            return;
        }
        let noreply = args.last_is_noreply();
        self.counters.bump(Counter::CmdFlush);
        if !store.config().flush_enabled {
            reply(out, noreply, FLUSH_DISABLED);
            return;
        }
        let mut delay = 0;
        if args.len() != usize::from(noreply) {
            match parse_i32(args.get(0)) {
                Some(d) => delay = d,
                None => {
                    reply(out, noreply, BAD_EXPTIME);
                    return;
                }
            }
        }
        let at = if delay > 0 {
            let oldest_live = expiry_deadline(i64::from(delay), now).saturating_sub(1);
            (oldest_live > now).then_some(oldest_live)
        } else {
            None
        };
        store.flush_all(at, now);
        reply(out, noreply, OK);
    }

    /// stats and its subcommands (see [`super::stats::command`]).
    fn stats(&mut self, store: &Store, args: Args<'_>, now: u64, out: &mut Vec<u8>) {
        // Include this connection's own counts so far.
        store.counters().absorb(&mut self.counters);
        super::stats::command(store, &args, self.conn.as_ref(), now, out);
    }
}

/// verbosity <level> [noreply]. Like memcached 1.6, a lone `noreply` is
/// taken as the level, fails to parse, and the error is silenced.
fn verbosity(store: &Store, args: Args<'_>, out: &mut Vec<u8>) {
    if !(1..=2).contains(&args.len()) {
        out.extend_from_slice(ERROR);
        return;
    }
    let noreply = args.last_is_noreply();
    match parse_u32(args.get(0)) {
        Some(level) => {
            store.set_verbosity(level.min(MAX_VERBOSITY));
            reply(out, noreply, OK);
        }
        None => reply(out, noreply, BAD_FORMAT),
    }
}

/// The longest line allowed for what `rest` starts with: memcached lets
/// `get`/`gets` lines (after at most 100 leading spaces) grow past the
/// normal limit because a multi-get may carry many keys.
fn line_limit(rest: &[u8], config: &Config) -> usize {
    line_limit_of(rest, config.max_line, config.max_multiget_line)
}

/// [`line_limit`] with the two limits spelled out (the codec keeps them).
pub(crate) fn line_limit_of(rest: &[u8], max_line: usize, max_multiget_line: usize) -> usize {
    let spaces = rest.iter().take_while(|&&b| b == b' ').count();
    let body = &rest[spaces..];
    if spaces <= 100 && (body.starts_with(b"get ") || body.starts_with(b"gets ")) {
        max_multiget_line.max(max_line)
    } else {
        max_line
    }
}

/// Appends `VALUE <key> <flags> <bytes>[ <cas>]\r\n<data>\r\n`, unless that
/// would take this reply (begun at `start`) past `budget`; returns whether it
/// was written.
fn write_value(
    out: &mut Vec<u8>,
    start: usize,
    budget: usize,
    item: ItemView<'_>,
    with_cas: bool,
) -> bool {
    // 60 bytes covers the fixed text and three numbers.
    let needed = item.key.len() + item.value.len() + 60;
    if (out.len() - start).saturating_add(needed) > budget {
        return false;
    }
    out.reserve(needed);
    out.extend_from_slice(b"VALUE ");
    out.extend_from_slice(item.key);
    out.push(b' ');
    push_u64(out, u64::from(item.flags));
    out.push(b' ');
    push_u64(out, item.value.len() as u64);
    if with_cas {
        out.push(b' ');
        push_u64(out, item.cas);
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(item.value);
    out.extend_from_slice(b"\r\n");
    true
}

/// Appends a reply line unless the command said `noreply`.
fn reply(out: &mut Vec<u8>, noreply: bool, line: &[u8]) {
    if !noreply {
        out.extend_from_slice(line);
    }
}

mod admin;
#[cfg(test)]
mod tests;
