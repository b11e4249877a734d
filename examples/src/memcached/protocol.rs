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
//!
//! This file owns the session's state machine and the command dispatch;
//! the commands live by family in submodules: `storage` (set, add, replace,
//! append, prepend, cas and the data block), `retrieval` (get, gets, gat,
//! gats), `keyed` (incr, decr, touch, delete), `control` (flush_all, stats,
//! verbosity) and `admin` (cache_memlimit, slabs, lru_crawler, watch,
//! shutdown).

use super::config::Config;
use super::meta;
use super::stats::{ConnTicket, Counter, LocalCounters};
use super::store::Store;
use super::text::{Args, Tokens};
use control::verbosity;
use retrieval::Retrieve;
pub(crate) use storage::{data_block_len, DataBlock};
use storage::{PendingStore, Update};

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

/// Appends a reply line unless the command said `noreply`.
fn reply(out: &mut Vec<u8>, noreply: bool, line: &[u8]) {
    if !noreply {
        out.extend_from_slice(line);
    }
}

mod admin;
mod control;
mod keyed;
mod retrieval;
mod storage;
#[cfg(test)]
mod tests;
