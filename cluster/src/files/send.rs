//! The holder's side of a transfer: a FILE_REQ starts a sender thread
//! (at most `max_file_senders` at once; past that the requester is told
//! "busy") that streams the file chunk by chunk with a bounded window.

use super::{check_name, FileService, FILE_CHUNK, FILE_END, FILE_ERR};
use crate::jobs::Env;
use crate::wire::{Reader, WireResult, Writer};
use msgcenter::{CenterHandle, Message, Outcome};
use sha2::{Digest, Sha256};
use std::io::Read;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::{mpsc, Arc};
use std::time::Duration;

impl FileService {
    pub(super) fn start_sender(&self, env: &Arc<Env>, to: SocketAddr, req: Req) {
        let key = (to, req.id);
        {
            let mut t = self.tables();
            let latest = t.sending.entry(key).or_insert(0);
            if req.attempt <= *latest {
                return; // a duplicate or older request
            }
            *latest = req.attempt;
        }
        let Some(h) = env.handle.get().cloned() else {
            return;
        };
        let err = |why: String| {
            h.post(err_msg(to, &req, &why));
        };
        if let Err(e) = check_name(&req.name) {
            return err(e);
        }
        let max_chunk = self.cfg.center.max_body.saturating_sub(256);
        if req.chunk == 0 || req.chunk as usize > max_chunk || req.window == 0 || req.window > 1024
        {
            return err(format!(
                "bad chunk size {} or window {}",
                req.chunk, req.window
            ));
        }
        if self.senders.fetch_add(1, Ordering::SeqCst) >= self.cfg.max_file_senders {
            self.senders.fetch_sub(1, Ordering::SeqCst);
            // The requester asks again shortly.
            return err(format!(
                "busy: {} files being sent",
                self.cfg.max_file_senders
            ));
        }
        let env = env.clone();
        let path = self.dir.join(&req.name);
        let spawned = std::thread::Builder::new()
            .name("file-sender".into())
            .spawn(move || {
                let r = send_file(&env, &h, to, &path, &req);
                env.files.senders.fetch_sub(1, Ordering::SeqCst);
                if let Err(why) = r {
                    log::warn!("files: sending {} to {to} stopped: {why}", req.name);
                    if why.starts_with("file:") {
                        h.post(err_msg(to, &req, &why));
                    }
                }
            });
        if spawned.is_err() {
            self.senders.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

/// A decoded FILE_REQ.
pub(super) struct Req {
    id: u64,
    attempt: u32,
    name: String,
    first: u64,
    chunk: u32,
    window: u32,
}

pub(super) fn decode_req(body: &[u8]) -> WireResult<Req> {
    let mut r = Reader::new(body);
    let req = Req {
        id: r.u64()?,
        attempt: r.u32()?,
        name: r.str()?.to_string(),
        first: r.u64()?,
        chunk: r.u32()?,
        window: r.u32()?,
    };
    r.end()?;
    Ok(req)
}

/// FILE_ERR for request `req`: the holder cannot send the file.
fn err_msg(to: SocketAddr, req: &Req, why: &str) -> Message {
    let body = Writer::new().u64(req.id).u32(req.attempt).str(why).finish();
    Message::new(to, FILE_ERR, body).need_ack()
}

/// The holder's sender thread: chunks from `req.first` on, at most
/// `req.window` unacknowledged; then FILE_END with the whole file's hash.
/// Stops when a newer attempt of the same transfer arrived, or a chunk
/// was not acknowledged (the requester will ask again).
fn send_file(
    env: &Env,
    h: &CenterHandle,
    to: SocketAddr,
    path: &Path,
    req: &Req,
) -> Result<(), String> {
    let mut f = std::fs::File::open(path).map_err(|e| format!("file: {}: {e}", req.name))?;
    let size = f.metadata().map_err(|e| format!("file: {e}"))?.len();
    let chunk = req.chunk as u64;
    let chunks = size.div_ceil(chunk);
    // The whole-file hash: the part before `first` is read (not sent).
    let mut whole = Sha256::new();
    let mut buf = vec![0u8; chunk as usize];
    for _ in 0..req.first.min(chunks) {
        let n = read_full(&mut f, &mut buf).map_err(|e| format!("file: {e}"))?;
        whole.update(&buf[..n]);
    }
    let (tx, rx) = mpsc::channel::<bool>();
    let mut in_flight = 0usize;
    let wait = env.cfg.center.retry.deadline + Duration::from_secs(5);
    let settle = |in_flight: &mut usize| -> Result<(), String> {
        let ok = rx
            .recv_timeout(wait)
            .map_err(|_| "no outcome for a chunk".to_string())?;
        *in_flight -= 1;
        if ok {
            Ok(())
        } else {
            Err("a chunk was not acknowledged".into())
        }
    };
    for index in req.first..chunks {
        let current = env.files.tables().sending.get(&(to, req.id)).copied();
        if current != Some(req.attempt) {
            return Err("superseded by a newer request".into());
        }
        let n = read_full(&mut f, &mut buf).map_err(|e| format!("file: {e}"))?;
        whole.update(&buf[..n]);
        let body = Writer::new()
            .u64(req.id)
            .u32(req.attempt)
            .u64(index)
            .bytes(&Sha256::digest(&buf[..n]))
            .bytes(&buf[..n])
            .finish();
        while in_flight >= req.window as usize {
            settle(&mut in_flight)?;
        }
        in_flight += 1;
        let tx = tx.clone();
        h.post(
            Message::new(to, FILE_CHUNK, body)
                .need_ack()
                .on_done(move |_, o| {
                    let _ = tx.send(matches!(o, Outcome::Acked { .. }));
                }),
        );
    }
    while in_flight > 0 {
        settle(&mut in_flight)?;
    }
    let body = Writer::new()
        .u64(req.id)
        .u32(req.attempt)
        .u64(chunks)
        .u64(size)
        .bytes(&whole.finalize())
        .finish();
    h.post(Message::new(to, FILE_END, body).need_ack());
    Ok(())
}

fn read_full(f: &mut std::fs::File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}
