//! The storage commands `set`, `add`, `replace`, `append`, `prepend` and
//! `cas`: checking the command line (memcached's `process_update_command`),
//! reading the data block into the buffer that becomes the item, and the
//! reply once it is in (`complete_nread_ascii`). Also the data block length
//! the codec frames requests with.

use super::{
    meta, reply, Session, State, BAD_CHUNK, BAD_FORMAT, ERROR, EXISTS, NOT_FOUND, NOT_STORED,
    NO_MEMORY_STORING, STORED, TOO_LARGE,
};
use crate::memcached::stats::{Counter, DetailOp};
use crate::memcached::store::{
    expiry_deadline, is_valid_key, item_size, NewItem, Store, StoreMode, StoreOutcome,
};
use crate::memcached::text::{parse_i32, parse_u32, parse_u64, Args, Tokens};

/// A storage command whose data block is being read.
#[derive(Debug)]
pub(super) struct PendingStore {
    mode: StoreMode,
    noreply: bool,
    key_len: usize,
    flags: u32,
    exptime: u64,
    /// Key then value, and the trailer.
    block: DataBlock,
}

impl PendingStore {
    /// Takes what it still needs from `input`; returns how much it took.
    pub(super) fn fill(&mut self, input: &[u8]) -> usize {
        self.block.fill(input)
    }

    pub(super) fn is_complete(&self) -> bool {
        self.block.is_complete()
    }
}

/// A data block being read (after a storage line, classic or meta): the
/// key then the value, in the one buffer that becomes the item, and the two
/// bytes after the value, which must be `\r\n`.
#[derive(Debug)]
pub(crate) struct DataBlock {
    /// Key then value, sized exactly for both.
    buf: Vec<u8>,
    /// `buf.len()` once the whole value is in.
    full: usize,
    trailer: [u8; 2],
    trailer_len: usize,
}

impl DataBlock {
    /// A block of `length` value bytes for `key`.
    pub(crate) fn new(key: &[u8], length: usize) -> DataBlock {
        let mut buf = Vec::with_capacity(key.len() + length);
        buf.extend_from_slice(key);
        DataBlock {
            buf,
            full: key.len() + length,
            trailer: [0; 2],
            trailer_len: 0,
        }
    }

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

    /// Whether the value and its trailer are in.
    pub(crate) fn is_complete(&self) -> bool {
        self.trailer_len == 2
    }

    /// Whether the value ended with `\r\n`, as it must.
    pub(crate) fn trailer_ok(&self) -> bool {
        self.trailer == *b"\r\n"
    }

    /// Key then value.
    pub(crate) fn bytes(&self) -> &[u8] {
        &self.buf
    }

    /// The buffer, to become the item.
    pub(crate) fn into_buf(self) -> Vec<u8> {
        self.buf
    }
}

/// Which storage command a line asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Update {
    Set,
    Add,
    Replace,
    Append,
    Prepend,
    Cas,
}

impl Update {
    pub(super) fn from_command(command: &[u8]) -> Option<Update> {
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

impl Session {
    /// set, add, replace, append, prepend, cas: the command line
    /// (memcached's `process_update_command`). The data block follows.
    pub(super) fn update(
        &mut self,
        store: &Store,
        args: Args<'_>,
        kind: Update,
        now: u64,
        out: &mut Vec<u8>,
    ) {
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
        self.state = State::Data(PendingStore {
            mode,
            noreply,
            key_len: key.len(),
            flags,
            exptime: expiry_deadline(i64::from(exptime), now),
            block: DataBlock::new(key, length),
        });
    }

    /// The data block of a storage command is in (memcached's
    /// `complete_nread_ascii`).
    pub(super) fn finish_store(
        &mut self,
        store: &Store,
        pending: PendingStore,
        now: u64,
        out: &mut Vec<u8>,
    ) {
        self.counters.bump(Counter::CmdSet);
        let noreply = pending.noreply;
        if !pending.block.trailer_ok() {
            reply(out, noreply, BAD_CHUNK);
            return;
        }
        let mode = pending.mode;
        let key = pending
            .block
            .bytes()
            .get(..pending.key_len)
            .unwrap_or_default();
        store.counters().record_detail(key, DetailOp::Set);
        let Some(item) = NewItem::from_buffer(
            pending.block.into_buf(),
            pending.key_len,
            pending.flags,
            pending.exptime,
        ) else {
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
}
