//! Distributed median (seed 004, muduo's example): every executor holds
//! files of 64-bit integers; the k-th smallest value over all of them is
//! found without moving the data. Each round asks every file for the
//! counts of its values in `buckets` equal sub-ranges of the current range
//! [lo, hi] (and how many lie below lo); the driver finds the sub-range
//! holding rank k and narrows to it. With 2 buckets it is exactly the
//! binary search on value; more buckets take fewer rounds (64 buckets: at
//! most 11 rounds for the whole i64 range). Only counts travel.
//!
//! The median of n values is the value of rank (n-1)/2 (0-based; the
//! lower median when n is even).

use super::{run_all, Env, Progress, Work};
use crate::proto::Kind;
use crate::publisher::Publisher;
use crate::wire::{Reader, Writer};
use std::io::Read;
use std::time::Duration;

/// A round's question for one file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Query {
    /// Lowest value of the range.
    pub lo: i64,
    /// Highest value of the range (inclusive).
    pub hi: i64,
    /// Sub-ranges.
    pub buckets: u32,
}

impl Query {
    /// Width of a sub-range (at most 2^64 / 2 for 2 or more buckets; the
    /// whole span, up to 2^64, for 1 - which `run_task` refuses).
    fn width(&self) -> i128 {
        let span = self.hi as i128 - self.lo as i128 + 1;
        (span + self.buckets as i128 - 1) / self.buckets as i128
    }
    /// The sub-range of `v` (which must lie in [lo, hi]).
    pub fn bucket(&self, v: i64) -> usize {
        ((v as u64).wrapping_sub(self.lo as u64) / self.width() as u64) as usize
    }
    /// The bounds of sub-range `b`.
    pub fn range(&self, b: usize) -> (i64, i64) {
        let lo = self.lo as i128 + b as i128 * self.width();
        let hi = (lo + self.width() - 1).min(self.hi as i128);
        (lo as i64, hi as i64)
    }
}

/// One file's answer: values below the range, and per sub-range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Counts {
    /// Values below `lo`.
    pub below: u64,
    /// Values in each sub-range.
    pub buckets: Vec<u64>,
}

/// Counts the values of the file at `path` for `q`, reading it in 1 MiB
/// pieces.
pub fn count_file(path: &std::path::Path, q: Query) -> std::io::Result<Counts> {
    let mut f = std::fs::File::open(path)?;
    let mut c = Counts {
        below: 0,
        buckets: vec![0; q.buckets as usize],
    };
    // Offsets from lo fit in u64 (hi - lo < 2^64), and so does the width
    // (buckets >= 1): u64 division per value instead of i128.
    let width = q.width() as u64;
    let lo = q.lo as u64;
    let mut buf = vec![0u8; 1 << 20];
    let mut have = 0;
    loop {
        let n = f.read(&mut buf[have..])?;
        if n == 0 {
            break;
        }
        have += n;
        let whole = have / 8 * 8;
        for chunk in buf[..whole].chunks_exact(8) {
            let v = i64::from_le_bytes(chunk.try_into().unwrap());
            if v < q.lo {
                c.below += 1;
            } else if v <= q.hi {
                c.buckets[((v as u64).wrapping_sub(lo) / width) as usize] += 1; // = q.bucket(v)
            }
        }
        buf.copy_within(whole..have, 0);
        have -= whole;
    }
    if have != 0 {
        return Err(std::io::Error::other(format!(
            "{}: size is not a multiple of 8",
            path.display()
        )));
    }
    Ok(c)
}

/// Runs one task: the counts of a file of the executor's data directory.
pub fn run_task(env: &Env, input: &[u8]) -> Result<Vec<u8>, String> {
    let mut r = Reader::new(input);
    let parse = |r: &mut Reader| -> crate::wire::WireResult<(String, Query)> {
        Ok((
            r.str()?.to_string(),
            Query {
                lo: r.i64()?,
                hi: r.i64()?,
                buckets: r.u32()?,
            },
        ))
    };
    let (file, q) = parse(&mut r).map_err(|e| e.to_string())?;
    if q.lo > q.hi || q.buckets < 2 || q.buckets > 65_536 {
        return Err(format!("bad median query {q:?}"));
    }
    let c = count_file(&env.data_file(&file)?, q).map_err(|e| format!("{file}: {e}"))?;
    let mut w = Writer::new();
    w.u64(c.below).u32(c.buckets.len() as u32);
    for b in &c.buckets {
        w.u64(*b);
    }
    Ok(w.finish())
}

fn decode_counts(body: &[u8], buckets: u32) -> Result<Counts, String> {
    let mut r = Reader::new(body);
    let below = r.u64().map_err(|e| e.to_string())?;
    let n = r.u32().map_err(|e| e.to_string())?;
    if n != buckets {
        return Err(format!("{n} buckets in an answer for {buckets}"));
    }
    let buckets = (0..n)
        .map(|_| r.u64())
        .collect::<Result<_, _>>()
        .map_err(|e| e.to_string())?;
    Ok(Counts { below, buckets })
}

/// The answer of a median job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MedianAnswer {
    /// The value of rank (n-1)/2.
    pub median: i64,
    /// How many values there are.
    pub count: u64,
    /// Rounds of counting.
    pub rounds: u32,
}

/// The job: the median of the files named `files` (each held by some
/// executor), `buckets` sub-ranges per round.
pub fn run(
    p: &Publisher,
    files: &[String],
    buckets: u32,
    timeout: Duration,
    progress: &dyn Progress,
    work: &mut Work,
) -> Result<MedianAnswer, String> {
    if files.is_empty() {
        return Err("no data files".into());
    }
    let buckets = buckets.clamp(2, 65_536);
    let mut q = Query {
        lo: i64::MIN,
        hi: i64::MAX,
        buckets,
    };
    let mut rank: Option<u64> = None;
    let mut count = 0;
    for round in 1.. {
        let inputs = files
            .iter()
            .map(|f| {
                let body = Writer::new()
                    .str(f)
                    .i64(q.lo)
                    .i64(q.hi)
                    .u32(q.buckets)
                    .finish();
                (f.clone(), body)
            })
            .collect();
        let note = format!("median round {round}: [{}, {}]", q.lo, q.hi);
        let results = run_all(
            p,
            Kind::MedianCount,
            inputs,
            timeout,
            &|d, t, _: &str| progress.update(d, t, &note),
            work,
        )?;
        let mut below = 0;
        let mut sums = vec![0u64; buckets as usize];
        for r in &results {
            let c = decode_counts(r, buckets)?;
            below += c.below;
            for (s, b) in sums.iter_mut().zip(&c.buckets) {
                *s += b;
            }
        }
        let k = *rank.get_or_insert_with(|| {
            count = sums.iter().sum::<u64>();
            count.saturating_sub(1) / 2
        });
        if count == 0 {
            return Err("the data files are empty".into());
        }
        let mut seen = below;
        let mut next = None;
        for (b, &n) in sums.iter().enumerate() {
            if k < seen + n {
                next = Some(q.range(b));
                break;
            }
            seen += n;
        }
        let (lo, hi) = next.ok_or("the counts do not add up (data changed?)")?;
        if lo == hi {
            return Ok(MedianAnswer {
                median: lo,
                count,
                rounds: round,
            });
        }
        q = Query { lo, hi, buckets };
    }
    unreachable!()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_cover_the_range() {
        for q in [
            Query {
                lo: i64::MIN,
                hi: i64::MAX,
                buckets: 64,
            },
            Query {
                lo: -5,
                hi: 5,
                buckets: 4,
            },
            Query {
                lo: 7,
                hi: 8,
                buckets: 64,
            },
        ] {
            let (first, _) = q.range(0);
            assert_eq!(first, q.lo);
            for v in [q.lo, q.hi, q.lo / 2 + q.hi / 2] {
                let b = q.bucket(v);
                let (lo, hi) = q.range(b);
                assert!(lo <= v && v <= hi, "{q:?} {v} in {b} = [{lo},{hi}]");
            }
        }
    }
}
