//! Top-k most frequent words (seed 004, "多机找出最频繁出现的数据项") by a
//! map-reduce shuffle between executors:
//!
//! 1. the driver publishes R reduce tasks (passive: they take no slot);
//!    Reg places them and tells the driver where (ASSIGNED);
//! 2. it publishes one map task per word file, naming the reducers; the
//!    executor holding the file counts its words and sends each word's
//!    count to reducer `hash(word) % R` (PARTITION messages, NeedAck,
//!    executor to executor, a bounded number in flight);
//! 3. a reducer that has every map's partition merges them and returns
//!    its shard's top k; every word lives in exactly one shard, so the top
//!    k of the union of the shards' top k is the exact answer.
//!
//! Faults: a reduce task Reg moves to another executor (its executor's
//! lease ran out) starts empty; the driver sends the maps for that shard
//! again to the new place. Map output is deterministic, and a reducer
//! keeps one copy per (map, chunk), so repeats are harmless. Order: count
//! descending, then word ascending.

use super::{Done, Env, Progress, Work};
use crate::proto::{self, Kind, TaskId};
use crate::publisher::{Event, Publisher};
use crate::wire::{Reader, Writer};
use msgcenter::{Handlers, Message, Outcome};
use std::collections::{HashMap, HashSet};
use std::io::BufRead;
use std::net::SocketAddr;
use std::sync::{mpsc, Arc};
use std::time::Duration;

/// Map tasks in flight: task -> (map index, [(shard, reducer address)]).
type MapsInFlight = HashMap<TaskId, (u32, Vec<(u32, SocketAddr)>)>;

/// Bytes of word counts per PARTITION message.
const CHUNK: usize = 256 * 1024;
/// PARTITION messages a map keeps unacknowledged.
const WINDOW: usize = 8;

/// FNV-1a: the shard of a word (stable across processes and builds).
pub fn shard(word: &str, shards: u32) -> u32 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in word.bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    (h % shards.max(1) as u64) as u32
}

/// Sorts by count descending, word ascending, and keeps `k`.
pub fn top(mut v: Vec<(String, u64)>, k: usize) -> Vec<(String, u64)> {
    v.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    v.truncate(k);
    v
}

/// Counts the words (one per line) of a file, streaming it.
pub fn count_words(path: &std::path::Path) -> std::io::Result<HashMap<String, u64>> {
    let mut counts = HashMap::new();
    let mut r = std::io::BufReader::with_capacity(1 << 20, std::fs::File::open(path)?);
    let mut line = String::new();
    loop {
        line.clear();
        if r.read_line(&mut line)? == 0 {
            return Ok(counts);
        }
        let w = line.trim();
        if !w.is_empty() {
            *counts.entry(w.to_string()).or_insert(0) += 1;
        }
    }
}

fn encode_list(list: &[(String, u64)]) -> Vec<u8> {
    let mut w = Writer::new();
    w.u32(list.len() as u32);
    for (word, n) in list {
        w.str(word).u64(*n);
    }
    w.finish()
}

fn decode_list(body: &[u8]) -> Result<Vec<(String, u64)>, String> {
    let mut r = Reader::new(body);
    let n = r.count(12).map_err(|e| e.to_string())?;
    (0..n)
        .map(|_| Ok((r.str()?.to_string(), r.u64()?)))
        .collect::<crate::wire::WireResult<_>>()
        .map_err(|e| e.to_string())
}

/// One map's partition for a reducer, as it arrives in chunks.
struct MapPart {
    chunks: Vec<Option<Vec<u8>>>,
}

impl MapPart {
    fn complete(&self) -> bool {
        self.chunks.iter().all(|c| c.is_some())
    }
}

struct ReduceBox {
    created: std::time::Instant,
    parts: HashMap<u32, MapPart>,
    expect: Option<(u32, usize, Done)>,
    bytes: usize,
    overflow: bool,
}

impl Default for ReduceBox {
    fn default() -> Self {
        ReduceBox {
            created: std::time::Instant::now(),
            parts: HashMap::new(),
            expect: None,
            bytes: 0,
            overflow: false,
        }
    }
}

/// Shuffle input held by an executor for its reducers, by reduce task.
#[derive(Default)]
pub struct Shuffle {
    boxes: HashMap<TaskId, ReduceBox>,
    bytes: usize,
}

impl Shuffle {
    /// Drops input that no reducer here claimed within `age` (its reduce
    /// task went elsewhere, or its job ended); returns how many boxes.
    pub fn prune(&mut self, age: Duration) -> usize {
        let stale: Vec<TaskId> = self
            .boxes
            .iter()
            .filter(|(_, b)| b.expect.is_none() && b.created.elapsed() > age)
            .map(|(id, _)| *id)
            .collect();
        for id in &stale {
            if let Some(b) = self.boxes.remove(id) {
                self.bytes -= b.bytes;
            }
        }
        stale.len()
    }

    /// Takes a ready reducer: its parts, k and callback.
    fn take_ready(&mut self, id: TaskId) -> Option<(Vec<MapPart>, usize, Done, bool)> {
        let b = self.boxes.get(&id)?;
        let (maps, _, _) = b.expect.as_ref()?;
        let ready = b.overflow
            || (b.parts.len() as u32 >= *maps && b.parts.values().all(MapPart::complete));
        if !ready {
            return None;
        }
        let b = self.boxes.remove(&id)?;
        self.bytes -= b.bytes;
        let (_, k, done) = b.expect?;
        Some((b.parts.into_values().collect(), k, done, b.overflow))
    }
}

fn reduce(env: &Arc<Env>, id: TaskId) {
    let ready = env
        .shuffle
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .take_ready(id);
    let Some((parts, k, done, overflow)) = ready else {
        return;
    };
    if overflow {
        return done(Err("shuffle input over max_shuffle_bytes".into()));
    }
    env.pool.run(move || {
        let mut counts: HashMap<String, u64> = HashMap::new();
        for part in parts {
            for chunk in part.chunks.into_iter().flatten() {
                match decode_list(&chunk) {
                    Ok(list) => {
                        for (w, n) in list {
                            *counts.entry(w).or_insert(0) += n;
                        }
                    }
                    Err(e) => return done(Err(format!("bad partition: {e}"))),
                }
            }
        }
        done(Ok(encode_list(&top(counts.into_iter().collect(), k))))
    });
}

/// Starts a reduce task (input: maps, k): it completes when every map's
/// partition is in.
pub fn start_reduce(env: &Arc<Env>, id: TaskId, input: &[u8], done: Done) {
    let mut r = Reader::new(input);
    let (Ok(maps), Ok(k)) = (r.u32(), r.u32()) else {
        return done(Err("bad reduce input".into()));
    };
    env.shuffle
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .boxes
        .entry(id)
        .or_default()
        .expect = Some((maps, k as usize, done));
    reduce(env, id);
}

/// Adds the PARTITION handler (on the loop: it only stores the chunk).
pub fn handlers(h: Handlers, env: &Arc<Env>) -> Handlers {
    let env = env.clone();
    h.on(proto::PARTITION, move |_, m| {
        let mut r = Reader::new(m.body);
        let parsed = (|| {
            Ok::<_, crate::wire::WireError>((r.u64()?, r.u32()?, r.u32()?, r.u32()?, r.bytes()?))
        })();
        let Ok((id, map, chunk, chunks, data)) = parsed else {
            return log::warn!("exe: bad PARTITION from {}", m.from);
        };
        store(&env, m.from, id, map, chunk, chunks, data);
    })
}

/// Keeps one chunk of a map's partition for reducer `id` (from a
/// PARTITION message, or from a map on the same executor).
fn store(
    env: &Arc<Env>,
    from: SocketAddr,
    id: TaskId,
    map: u32,
    chunk: u32,
    chunks: u32,
    data: &[u8],
) {
    if chunk >= chunks || chunks > 1 << 20 {
        return log::warn!("exe: PARTITION chunk {chunk} of {chunks} from {from}");
    }
    {
        let mut s = env.shuffle.lock().unwrap_or_else(|p| p.into_inner());
        if !s.boxes.contains_key(&id) && s.boxes.len() >= env.cfg.max_tasks {
            return log::warn!(
                "exe: shuffle input for {} reducers (max_tasks); PARTITION from {from} dropped",
                s.boxes.len()
            );
        }
        let over = s.bytes + data.len() > env.cfg.max_shuffle_bytes;
        let b = s.boxes.entry(id).or_default();
        if over {
            log::warn!("exe: shuffle input for {id:x} over max_shuffle_bytes; reducer fails");
            b.overflow = true;
        } else {
            let part = b.parts.entry(map).or_insert_with(|| MapPart {
                chunks: vec![None; chunks as usize],
            });
            if part.chunks.len() == chunks as usize && part.chunks[chunk as usize].is_none() {
                part.chunks[chunk as usize] = Some(data.to_vec());
                b.bytes += data.len();
                s.bytes += data.len();
            }
        }
    }
    reduce(env, id);
}

/// A map task's input: its file, index, shard count, and the reducers to
/// send to (shard, executor, reduce task).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MapInput {
    /// The word file.
    pub file: String,
    /// This map's index (the reducers count maps by it).
    pub map: u32,
    /// Shards in all.
    pub shards: u32,
    /// Where to send which shard.
    pub targets: Vec<(u32, SocketAddr, TaskId)>,
}

impl MapInput {
    fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.str(&self.file)
            .u32(self.map)
            .u32(self.shards)
            .u32(self.targets.len() as u32);
        for (r, a, id) in &self.targets {
            w.u32(*r).addr(*a).u64(*id);
        }
        w.finish()
    }
    fn decode(b: &[u8]) -> crate::wire::WireResult<MapInput> {
        let mut r = Reader::new(b);
        let file = r.str()?.to_string();
        let map = r.u32()?;
        let shards = r.u32()?;
        let n = r.count(16)?;
        let targets = (0..n)
            .map(|_| Ok((r.u32()?, r.addr()?, r.u64()?)))
            .collect::<crate::wire::WireResult<_>>()?;
        r.end()?;
        Ok(MapInput {
            file,
            map,
            shards,
            targets,
        })
    }
}

/// Runs a map task (on a pool thread): count, partition, send; the
/// result lists the shards whose every chunk was acknowledged.
pub fn run_map(env: &Arc<Env>, _id: TaskId, input: &[u8]) -> Result<Vec<u8>, String> {
    let inp = MapInput::decode(input).map_err(|e| e.to_string())?;
    if inp.shards == 0 {
        return Err("0 shards".into());
    }
    let counts =
        count_words(&env.data_file(&inp.file)?).map_err(|e| format!("{}: {e}", inp.file))?;
    let mut parts: Vec<Vec<(String, u64)>> = vec![Vec::new(); inp.shards as usize];
    for (w, n) in counts {
        parts[shard(&w, inp.shards) as usize].push((w, n));
    }
    let handle = env.handle.get().ok_or("center not started")?;
    let (tx, rx) = mpsc::channel::<(u32, bool)>();
    let mut in_flight = 0;
    let mut failed: HashSet<u32> = HashSet::new();
    // A reducer that does not acknowledge within two leases is presumed
    // gone (Reg will have moved it): give up on its shard so the slot is
    // freed and the driver sends the shard to the reducer's new place.
    let retry = msgcenter::Retry {
        deadline: (2 * env.cfg.lease + Duration::from_secs(1)).min(env.cfg.center.retry.deadline),
        ..env.cfg.center.retry
    };
    let wait = retry.deadline + Duration::from_secs(10);
    let settle = |in_flight: &mut usize, failed: &mut HashSet<u32>| -> Result<(), String> {
        let (r, ok) = rx
            .recv_timeout(wait)
            .map_err(|_| "no outcome for a partition")?;
        *in_flight -= 1;
        if !ok {
            failed.insert(r);
        }
        Ok(())
    };
    for (r, addr, reduce_id) in &inp.targets {
        let Some(part) = parts.get_mut(*r as usize) else {
            return Err(format!("shard {r} of {}", inp.shards));
        };
        part.sort();
        // Split into chunks of about CHUNK bytes (deterministic).
        let mut chunks: Vec<&[(String, u64)]> = Vec::new();
        let (mut start, mut size) = (0, 0);
        for (i, (w, _)) in part.iter().enumerate() {
            size += w.len() + 12;
            if size >= CHUNK {
                chunks.push(&part[start..=i]);
                start = i + 1;
                size = 0;
            }
        }
        if start < part.len() || chunks.is_empty() {
            chunks.push(&part[start..]);
        }
        let total = chunks.len() as u32;
        for (c, list) in chunks.into_iter().enumerate() {
            if *addr == handle.advertised_addr() || *addr == handle.local_addr() {
                // The reducer is here: msgcenter does not connect a node
                // to itself.
                let data = encode_list(list);
                store(env, *addr, *reduce_id, inp.map, c as u32, total, &data);
                continue;
            }
            while in_flight >= WINDOW {
                settle(&mut in_flight, &mut failed)?;
            }
            let body = Writer::new()
                .u64(*reduce_id)
                .u32(inp.map)
                .u32(c as u32)
                .u32(total)
                .bytes(&encode_list(list))
                .finish();
            let (tx, r) = (tx.clone(), *r);
            in_flight += 1;
            handle.post(
                Message::new(*addr, proto::PARTITION, body)
                    .need_ack()
                    .with_retry(retry)
                    .on_done(move |_, o| {
                        let _ = tx.send((r, matches!(o, Outcome::Acked { .. })));
                    }),
            );
        }
    }
    while in_flight > 0 {
        settle(&mut in_flight, &mut failed)?;
    }
    let mut w = Writer::new();
    let delivered: Vec<u32> = inp
        .targets
        .iter()
        .map(|t| t.0)
        .filter(|r| !failed.contains(r))
        .collect();
    w.u32(delivered.len() as u32);
    for r in delivered {
        w.u32(r);
    }
    Ok(w.finish())
}

/// The job: the `k` most frequent words of `files`, shuffled over
/// `shards` reducers.
pub fn run(
    p: &Publisher,
    files: &[String],
    shards: u32,
    k: u32,
    timeout: Duration,
    progress: &dyn Progress,
    work: &mut Work,
) -> Result<Vec<(String, u64)>, String> {
    if files.is_empty() || shards == 0 {
        return Err("no word files, or 0 shards".into());
    }
    let maps = files.len() as u32;
    let reduce_input = Writer::new().u32(maps).u32(k).finish();
    let mut reducers: Vec<TaskId> = Vec::new();
    for _ in 0..shards {
        reducers.push(p.submit(Kind::TopkReduce, "", true, reduce_input.clone())?);
    }
    let shard_of: HashMap<TaskId, u32> = reducers
        .iter()
        .enumerate()
        .map(|(i, id)| (*id, i as u32))
        .collect();
    let mut place: Vec<Option<SocketAddr>> = vec![None; shards as usize];
    let mut delivered = vec![vec![false; shards as usize]; files.len()];
    let mut maps_in_flight: MapsInFlight = HashMap::new();
    let mut tops: Vec<Option<Vec<(String, u64)>>> = vec![None; shards as usize];
    let total = (files.len() + shards as usize) as u64;
    let mut done = 0u64;
    progress.update(0, total, "top-k: placing reducers");
    let publish_maps = |m: usize,
                        only: &[u32],
                        place: &[Option<SocketAddr>],
                        in_flight: &mut MapsInFlight|
     -> Result<(), String> {
        let targets: Vec<(u32, SocketAddr, TaskId)> = only
            .iter()
            .filter_map(|&r| place[r as usize].map(|a| (r, a, reducers[r as usize])))
            .collect();
        if targets.is_empty() {
            return Ok(());
        }
        let input = MapInput {
            file: files[m].clone(),
            map: m as u32,
            shards,
            targets: targets.clone(),
        };
        let id = p.submit(Kind::TopkMap, &files[m], false, input.encode())?;
        in_flight.insert(id, (m as u32, targets.iter().map(|t| (t.0, t.1)).collect()));
        Ok(())
    };
    let mut maps_started = false;
    let mut map_placed: HashSet<TaskId> = HashSet::new();
    loop {
        let Some(ev) = p.next_event(timeout) else {
            return Err(format!(
                "no progress for {timeout:?} ({done} of {total} tasks done)"
            ));
        };
        match ev {
            Event::Assigned { task, exe } => {
                let Some(&r) = shard_of.get(&task) else {
                    if maps_in_flight.contains_key(&task) && !map_placed.insert(task) {
                        work.reassigned += 1;
                    }
                    continue;
                };
                let moved = place[r as usize].is_some();
                place[r as usize] = Some(exe);
                if moved {
                    work.reassigned += 1;
                    log::info!("top-k: reducer {r} moved to {exe}; maps sent again");
                    for d in delivered.iter_mut() {
                        d[r as usize] = false;
                    }
                }
                if !maps_started && place.iter().all(Option::is_some) {
                    maps_started = true;
                    progress.update(done, total, "top-k: mapping");
                    let all: Vec<u32> = (0..shards).collect();
                    for m in 0..files.len() {
                        publish_maps(m, &all, &place, &mut maps_in_flight)?;
                    }
                } else if moved && maps_started && tops[r as usize].is_none() {
                    for m in 0..files.len() {
                        publish_maps(m, &[r], &place, &mut maps_in_flight)?;
                    }
                }
            }
            Event::Result { task, exe, result } => {
                let result = result.map_err(|e| format!("task {task:x} on {exe}: {e}"))?;
                if let Some(&r) = shard_of.get(&task) {
                    if tops[r as usize].is_none() {
                        tops[r as usize] = Some(decode_list(&result)?);
                        *work.tasks.entry(exe).or_default() += 1;
                        done += 1;
                        progress.update(done, total, "top-k: reducing");
                    }
                } else if let Some((m, targets)) = maps_in_flight.remove(&task) {
                    *work.tasks.entry(exe).or_default() += 1;
                    let mut rd = Reader::new(&result);
                    let n = rd.count(4).map_err(|e| e.to_string())?;
                    let ok: HashSet<u32> = (0..n)
                        .map(|_| rd.u32())
                        .collect::<Result<_, _>>()
                        .map_err(|e| e.to_string())?;
                    let mut again = Vec::new();
                    for (r, addr) in targets {
                        if place[r as usize] != Some(addr) {
                            continue; // the reducer moved; sent again already
                        }
                        if ok.contains(&r) {
                            delivered[m as usize][r as usize] = true;
                        } else if tops[r as usize].is_none() {
                            again.push(r);
                        }
                    }
                    if delivered[m as usize].iter().all(|d| *d) {
                        done += 1;
                        progress.update(done.min(total), total, "top-k: mapping");
                    }
                    publish_maps(m as usize, &again, &place, &mut maps_in_flight)?;
                }
                if tops.iter().all(Option::is_some) {
                    for id in maps_in_flight.keys() {
                        p.cancel(*id);
                    }
                    work.duplicates = p.duplicates();
                    let all = tops.into_iter().flatten().flatten().collect();
                    return Ok(top(all, k as usize));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_and_shards() {
        let v = vec![
            ("b".into(), 2),
            ("a".into(), 2),
            ("c".into(), 5),
            ("d".into(), 1),
        ];
        assert_eq!(
            top(v, 3),
            vec![("c".to_string(), 5), ("a".into(), 2), ("b".into(), 2)]
        );
        assert_eq!(shard("kalo", 7), shard("kalo", 7));
        let l = vec![("x".to_string(), 3u64)];
        assert_eq!(decode_list(&encode_list(&l)).unwrap(), l);
    }
}
