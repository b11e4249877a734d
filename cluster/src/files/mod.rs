//! File transfer between executors (seed 002 steps 7-10 and the
//! request-file flow). An executor that needs a file asks the executor
//! holding it with [`FileService::request`], giving a completion callback;
//! the id of the transfer (the callback id) travels with every message.
//!
//! | type | name       | from -> to          | body                                         |
//! |-----:|------------|---------------------|----------------------------------------------|
//! | 140  | FILE_REQ   | requester -> holder | id, attempt, name, first chunk, chunk size, window |
//! | 141  | FILE_CHUNK | holder -> requester | id, attempt, index, SHA-256 of the chunk, bytes |
//! | 142  | FILE_END   | holder -> requester | id, attempt, chunks, size, SHA-256 of the file |
//! | 143  | FILE_ERR   | holder -> requester | id, attempt, reason                          |
//!
//! - The holder streams the file from a thread of its own, one chunk read
//!   at a time (never the whole file in memory), and keeps at most
//!   `file_window` chunks unacknowledged (flow control: FILE_CHUNK is
//!   NeedAck, acknowledged once the requester has verified and written it).
//! - The requester checks each chunk's SHA-256 and writes it at its offset
//!   into `<name>.part` on a msgcenter worker thread (never on the loop);
//!   at FILE_END it hashes the whole file, renames it into place and runs
//!   the callback with the path - or with the reason it failed.
//! - The timeout is on inactivity (`file_inactivity_ms`, default 5 minutes
//!   as in the seed): a transfer that keeps moving is never killed for
//!   being large, nor while it syncs and hashes the whole file after
//!   FILE_END. When nothing arrived for that long, the requester asks
//!   again from its first missing chunk (a new attempt; the holder stops
//!   sending the old one), up to `file_attempts` times. A holder already
//!   sending `max_file_senders` files answers "busy", and the requester
//!   asks again a second later (not counted as an attempt).
//!
//! This module is the requester's side and the service; `send` is the
//! holder's (the sender thread).

use crate::config::NodeConfig;
use crate::jobs::Env;
use crate::wire::{Reader, WireResult, Writer};
use msgcenter::{CenterHandle, Handlers, Message};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::io::{Read, Seek, SeekFrom};
use std::net::SocketAddr;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

mod send;

/// See the module table.
pub const FILE_REQ: u32 = 140;
/// See the module table.
pub const FILE_CHUNK: u32 = 141;
/// See the module table.
pub const FILE_END: u32 = 142;
/// See the module table.
pub const FILE_ERR: u32 = 143;

/// A completed transfer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transferred {
    /// Where the file now is.
    pub path: PathBuf,
    /// Its size.
    pub size: u64,
    /// Requests it took (1: no resume).
    pub attempts: u32,
    /// The chunks later attempts started from (the verified prefix each
    /// time; 0 would be a restart from scratch).
    pub resumed_from: Vec<u64>,
}

/// What a transfer ends with: the file, or why it failed.
pub type FileDone = Box<dyn FnOnce(Result<Transferred, String>) + Send>;

/// One incoming transfer.
struct Incoming {
    holder: SocketAddr,
    name: String,
    attempt: u32,
    /// Chunks verified and written, by index.
    have: Vec<bool>,
    /// The first chunk not yet verified (everything before it is on disk).
    prefix: u64,
    last_activity: Instant,
    done: Option<FileDone>,
    bytes: u64,
    resumed_from: Vec<u64>,
    /// Requests that timed out (counted against `file_attempts`).
    timeouts: u32,
    /// The holder said it is busy: ask again at this time (not counted).
    busy_until: Option<Instant>,
    /// Every chunk and FILE_END are here: the whole file is being synced
    /// and hashed. Nothing more is to arrive, so no inactivity timeout.
    verifying: bool,
}

impl Incoming {
    fn mark(&mut self, index: u64) {
        let i = index as usize;
        if self.have.len() <= i {
            self.have.resize(i + 1, false);
        }
        self.have[i] = true;
        while self.have.get(self.prefix as usize) == Some(&true) {
            self.prefix += 1;
        }
    }
}

#[derive(Default)]
struct Tables {
    incoming: HashMap<u64, Incoming>,
    /// Holder side: the latest attempt per (requester, id); a sender
    /// thread of an older attempt stops.
    sending: HashMap<(SocketAddr, u64), u32>,
    next_id: u64,
}

/// Counters of a file service (for tests and logs).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FileStats {
    /// Requests sent again after inactivity.
    pub resumes: u64,
    /// Chunks that failed their hash.
    pub bad_chunks: u64,
    /// Chunks written.
    pub chunks: u64,
}

/// Both sides of file transfer for one executor.
pub struct FileService {
    dir: PathBuf,
    cfg: NodeConfig,
    tables: Mutex<Tables>,
    senders: AtomicUsize,
    stats: Mutex<FileStats>,
}

impl FileService {
    /// Files go to and come from `dir`.
    pub fn new(dir: PathBuf, cfg: NodeConfig) -> FileService {
        FileService {
            dir,
            cfg,
            tables: Mutex::new(Tables::default()),
            senders: AtomicUsize::new(0),
            stats: Mutex::new(FileStats::default()),
        }
    }

    fn tables(&self) -> std::sync::MutexGuard<'_, Tables> {
        self.tables.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The counters.
    pub fn stats(&self) -> FileStats {
        *self.stats.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn part_path(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.part"))
    }

    /// Asks `holder` for its file `name`; `done` runs once with the path in
    /// this executor's data directory, or the reason it failed. Returns
    /// the transfer's (callback) id.
    pub fn request(&self, h: &CenterHandle, holder: SocketAddr, name: &str, done: FileDone) -> u64 {
        if let Err(e) = check_name(name) {
            done(Err(e));
            return 0;
        }
        let id = {
            let mut t = self.tables();
            t.next_id += 1;
            let id = t.next_id;
            t.incoming.insert(
                id,
                Incoming {
                    holder,
                    name: name.to_string(),
                    attempt: 1,
                    have: Vec::new(),
                    prefix: 0,
                    last_activity: Instant::now(),
                    done: Some(done),
                    bytes: 0,
                    resumed_from: Vec::new(),
                    timeouts: 0,
                    busy_until: None,
                    verifying: false,
                },
            );
            id
        };
        // A stale partial file of an earlier run is not trusted.
        let _ = std::fs::remove_file(self.part_path(name));
        h.post(self.req_msg(holder, id, 1, name, 0));
        log::info!("files: transfer {id}: {name} from {holder}");
        id
    }

    fn req_msg(
        &self,
        holder: SocketAddr,
        id: u64,
        attempt: u32,
        name: &str,
        first: u64,
    ) -> Message {
        let body = Writer::new()
            .u64(id)
            .u32(attempt)
            .str(name)
            .u64(first)
            .u32(self.cfg.file_chunk as u32)
            .u32(self.cfg.file_window as u32)
            .finish();
        Message::new(holder, FILE_REQ, body).need_ack()
    }

    fn fail(&self, id: u64, why: String) {
        let inc = self.tables().incoming.remove(&id);
        if let Some(mut inc) = inc {
            log::warn!("files: transfer {id} ({}) failed: {why}", inc.name);
            if let Some(done) = inc.done.take() {
                done(Err(why));
            }
        }
    }

    /// Checks inactivity: asks again from the first missing chunk, or
    /// fails the transfer after `file_attempts` attempts. Called by the
    /// executor's ticker.
    pub fn tick(&self, h: &CenterHandle) {
        let mut resend = Vec::new();
        let mut failed = Vec::new();
        {
            let mut t = self.tables();
            for (id, inc) in t.incoming.iter_mut() {
                if let Some(at) = inc.busy_until {
                    if Instant::now() >= at {
                        inc.busy_until = None;
                        inc.attempt += 1;
                        inc.last_activity = Instant::now();
                        resend.push(self.req_msg(
                            inc.holder,
                            *id,
                            inc.attempt,
                            &inc.name,
                            inc.prefix,
                        ));
                    }
                    continue;
                }
                if inc.verifying || inc.last_activity.elapsed() < self.cfg.file_inactivity {
                    continue;
                }
                inc.timeouts += 1;
                if inc.timeouts >= self.cfg.file_attempts {
                    failed.push((
                        *id,
                        format!(
                            "nothing received for {:?}, {} attempts",
                            self.cfg.file_inactivity, inc.attempt
                        ),
                    ));
                    continue;
                }
                inc.attempt += 1;
                inc.last_activity = Instant::now();
                inc.resumed_from.push(inc.prefix);
                log::warn!(
                    "files: transfer {id} ({}) inactive; resuming from chunk {} (attempt {})",
                    inc.name,
                    inc.prefix,
                    inc.attempt
                );
                resend.push(self.req_msg(inc.holder, *id, inc.attempt, &inc.name, inc.prefix));
            }
        }
        self.stats.lock().unwrap_or_else(|p| p.into_inner()).resumes += resend.len() as u64;
        for m in resend {
            h.post(m);
        }
        for (id, why) in failed {
            self.fail(id, why);
        }
    }

    /// Adds the four handlers: FILE_REQ on the loop (it starts a sender
    /// thread), FILE_CHUNK and FILE_END on msgcenter's workers (they hash
    /// and write), FILE_ERR on the loop.
    pub fn handlers(h: Handlers, env: &Arc<Env>) -> Handlers {
        let (a, b, c, d) = (env.clone(), env.clone(), env.clone(), env.clone());
        h.on(FILE_REQ, move |_, m| match send::decode_req(m.body) {
            Ok(req) => a.files.start_sender(&a, m.from, req),
            Err(e) => log::warn!("files: bad FILE_REQ from {}: {e}", m.from),
        })
        .on_worker(FILE_CHUNK, move |_, m| b.files.on_chunk(m.from, m.body))
        .on_worker(FILE_END, move |_, m| c.files.on_end(&c, m.body))
        .on(FILE_ERR, move |_, m| {
            let mut r = Reader::new(m.body);
            if let (Ok(id), Ok(attempt), Ok(why)) = (r.u64(), r.u32(), r.str()) {
                let mut t = d.files.tables();
                let Some(inc) = t.incoming.get_mut(&id).filter(|i| i.attempt == attempt) else {
                    return;
                };
                if why.starts_with("busy") {
                    // Ask again in a second; not counted as a failed attempt.
                    inc.busy_until = Some(Instant::now() + Duration::from_secs(1));
                    inc.last_activity = Instant::now();
                    return;
                }
                drop(t);
                d.files.fail(id, format!("holder {}: {why}", m.from));
            }
        })
    }

    fn on_chunk(&self, from: SocketAddr, body: &[u8]) {
        let mut r = Reader::new(body);
        let parsed =
            (|| -> WireResult<_> { Ok((r.u64()?, r.u32()?, r.u64()?, r.bytes()?, r.bytes()?)) })();
        let Ok((id, attempt, index, hash, data)) = parsed else {
            return log::warn!("files: bad FILE_CHUNK from {from}");
        };
        let name = {
            let mut t = self.tables();
            let Some(inc) = t.incoming.get_mut(&id) else {
                return; // finished or failed already
            };
            if inc.attempt != attempt || inc.holder != from {
                return; // an older attempt's chunk
            }
            inc.last_activity = Instant::now();
            inc.name.clone()
        };
        if Sha256::digest(data).as_slice() != hash {
            self.stats
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .bad_chunks += 1;
            log::warn!(
                "files: transfer {id} chunk {index} failed its SHA-256; it will be asked for again"
            );
            return;
        }
        let offset = index * self.cfg.file_chunk as u64;
        let written = std::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(false)
            .open(self.part_path(&name))
            .and_then(|f| f.write_all_at(data, offset));
        if let Err(e) = written {
            return self.fail(id, format!("writing {name}.part: {e}"));
        }
        self.stats.lock().unwrap_or_else(|p| p.into_inner()).chunks += 1;
        if let Some(inc) = self.tables().incoming.get_mut(&id) {
            inc.mark(index);
            inc.bytes += data.len() as u64;
        }
    }

    fn on_end(&self, env: &Arc<Env>, body: &[u8]) {
        let mut r = Reader::new(body);
        let parsed = (|| -> WireResult<_> {
            Ok((r.u64()?, r.u32()?, r.u64()?, r.u64()?, r.bytes()?.to_vec()))
        })();
        let Ok((id, attempt, chunks, size, hash)) = parsed else {
            return log::warn!("files: bad FILE_END");
        };
        let (name, prefix) = {
            let mut t = self.tables();
            let Some(inc) = t.incoming.get_mut(&id) else {
                return;
            };
            if inc.attempt != attempt {
                return;
            }
            // The sync and hash below of a large file can take longer than
            // the inactivity timeout on a busy machine: not a stalled peer.
            inc.verifying = inc.prefix >= chunks;
            (inc.name.clone(), inc.prefix)
        };
        if prefix < chunks {
            // A chunk failed its hash: ask for the rest again at once.
            let msg = {
                let mut t = self.tables();
                let Some(inc) = t.incoming.get_mut(&id) else {
                    return;
                };
                inc.attempt += 1;
                inc.last_activity = Instant::now();
                inc.resumed_from.push(prefix);
                self.req_msg(inc.holder, id, inc.attempt, &name, prefix)
            };
            if let Some(h) = env.handle.get() {
                h.post(msg);
            }
            return;
        }
        let part = self.part_path(&name);
        let check = (|| -> std::io::Result<Vec<u8>> {
            let f = std::fs::OpenOptions::new().write(true).open(&part)?;
            f.set_len(size)?;
            f.sync_all()?;
            sha256_file(&part, 0)
        })();
        match check {
            Ok(h) if h == hash => {
                let dest = self.dir.join(&name);
                if let Err(e) = std::fs::rename(&part, &dest) {
                    return self.fail(id, format!("renaming {name}: {e}"));
                }
                let inc = self.tables().incoming.remove(&id);
                if let Some(mut inc) = inc {
                    log::info!(
                        "files: transfer {id}: {name} complete ({size} bytes, {} attempts)",
                        inc.attempt
                    );
                    if let Some(done) = inc.done.take() {
                        done(Ok(Transferred {
                            path: dest,
                            size,
                            attempts: inc.attempt,
                            resumed_from: std::mem::take(&mut inc.resumed_from),
                        }));
                    }
                }
            }
            Ok(_) => {
                let _ = std::fs::remove_file(&part);
                self.fail(id, format!("{name}: the whole-file SHA-256 does not match"));
            }
            Err(e) => self.fail(id, format!("{name}: {e}")),
        }
    }
}

/// A plain file name (no directories, not hidden).
pub(crate) fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.contains('/') || name.contains('\\') || name.starts_with('.') {
        Err(format!("bad file name {name:?}"))
    } else {
        Ok(())
    }
}

/// SHA-256 of a file from `offset` on, read in 1 MiB pieces.
pub fn sha256_file(path: &Path, offset: u64) -> std::io::Result<Vec<u8>> {
    let mut f = std::fs::File::open(path)?;
    f.seek(SeekFrom::Start(offset))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            return Ok(h.finalize().to_vec());
        }
        h.update(&buf[..n]);
    }
}
