//! `ms`: checking the line, reading the data block into the buffer that
//! becomes the item, and the reply once it is stored. Also the data block
//! length the codec frames requests with.

use super::flags::{opaque_too_long, parse_flags, Line};
use super::reply::client_error;
use super::{Next, BAD_FORMAT, MAX_AFTER_KEY};
use crate::memcached::protocol::DataBlock;
use crate::memcached::stats::{Counter, LocalCounters};
use crate::memcached::store::{is_valid_key, item_size, NewItem, Store, StoreMode, StoreOutcome};
use crate::memcached::text::{parse_i32, push_u64, Tokens};

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
pub(super) fn set_length(line: &Line<'_>) -> Result<usize, &'static str> {
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

/// `ms <key> <datalen> <flags>*`: checks the line; the data block follows.
pub(super) fn meta_set(
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
    Next::Data(PendingSet {
        mode,
        append_cas,
        quiet: flags.quiet,
        key_len: key.len(),
        flags: flags.client_flags,
        exptime: flags.ttl.unwrap_or(0),
        block: DataBlock::new(key, length),
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
    /// Key then value, and the trailer.
    block: DataBlock,
    /// The `O`, `k` and `c` tokens of the line, each after a space.
    echo: Vec<u8>,
}

impl PendingSet {
    /// Takes what it still needs from `input`; returns how much it took.
    pub(crate) fn fill(&mut self, input: &[u8]) -> usize {
        self.block.fill(input)
    }

    /// Whether the data block and its trailer are in.
    pub(crate) fn is_complete(&self) -> bool {
        self.block.is_complete()
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
        if !self.block.trailer_ok() {
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
            self.block.bytes()[..self.key_len].to_vec()
        };
        let Some(item) = NewItem::from_buffer(
            self.block.into_buf(),
            self.key_len,
            self.flags,
            self.exptime,
        ) else {
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
