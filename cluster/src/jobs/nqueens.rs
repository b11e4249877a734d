//! N-queens (seed 004): the number of ways to place N queens on an N×N
//! board, none attacking another. The job is split by the positions of the
//! queens of the first `depth` rows: each valid prefix is one task, counted
//! by a bitmask backtracking search, and the counts add up.

use super::{run_all, Progress, Work};
use crate::proto::Kind;
use crate::publisher::Publisher;
use crate::wire::{Reader, Writer};
use std::time::Duration;

/// Largest N accepted (the masks are u32; 20 would already take days).
pub const MAX_N: u32 = 20;

fn search(all: u32, cols: u32, d1: u32, d2: u32) -> u64 {
    if cols == all {
        return 1;
    }
    let mut free = all & !(cols | d1 | d2);
    let mut n = 0;
    while free != 0 {
        let bit = free & free.wrapping_neg();
        free ^= bit;
        n += search(all, cols | bit, ((d1 | bit) << 1) & all, (d2 | bit) >> 1);
    }
    n
}

/// Solutions of the `n`-queens problem whose first rows hold queens in
/// columns `prefix` (0 if the prefix itself has two queens attacking).
///
/// ```
/// assert_eq!(cluster::jobs::nqueens::count_from(8, &[]), 92);
/// assert_eq!(cluster::jobs::nqueens::count_from(8, &[0, 0]), 0);
/// ```
pub fn count_from(n: u32, prefix: &[u8]) -> u64 {
    assert!(n <= MAX_N);
    let all = if n == 32 { u32::MAX } else { (1u32 << n) - 1 };
    let (mut cols, mut d1, mut d2) = (0u32, 0u32, 0u32);
    for &c in prefix {
        let bit = 1u32 << c;
        if c as u32 >= n || (cols | d1 | d2) & bit != 0 {
            return 0;
        }
        cols |= bit;
        d1 = ((d1 | bit) << 1) & all;
        d2 = (d2 | bit) >> 1;
    }
    search(all, cols, d1, d2)
}

/// The valid placements of the first `depth` rows (the tasks).
pub fn prefixes(n: u32, depth: u32) -> Vec<Vec<u8>> {
    let mut out = vec![Vec::new()];
    for _ in 0..depth.min(n) {
        let mut next = Vec::new();
        for p in &out {
            for c in 0..n as u8 {
                let mut q = p.clone();
                q.push(c);
                if valid(&q) {
                    next.push(q);
                }
            }
        }
        out = next;
    }
    out
}

fn valid(q: &[u8]) -> bool {
    let last = q.len() - 1;
    (0..last).all(|i| {
        let (a, b) = (q[i] as i32, q[last] as i32);
        a != b && (a - b).abs() != (last - i) as i32
    })
}

/// A slow, obviously right count for tests: every permutation of columns
/// (one queen per row and column), checked for diagonals.
pub fn brute_force(n: u32) -> u64 {
    fn perm(q: &mut Vec<u8>, used: &mut [bool], n: usize) -> u64 {
        if q.len() == n {
            return 1;
        }
        let mut total = 0;
        for c in 0..n {
            if used[c] {
                continue;
            }
            q.push(c as u8);
            // checked for every pair, not incrementally, to stay naive
            let ok = (0..q.len()).all(|i| {
                (i + 1..q.len()).all(|j| (q[i] as i32 - q[j] as i32).abs() != (j - i) as i32)
            });
            if ok {
                used[c] = true;
                total += perm(q, used, n);
                used[c] = false;
            }
            q.pop();
        }
        total
    }
    perm(&mut Vec::new(), &mut vec![false; n as usize], n as usize)
}

/// Encodes a task's input.
pub fn task_input(n: u32, prefix: &[u8]) -> Vec<u8> {
    Writer::new().u32(n).bytes(prefix).finish()
}

/// Runs one task: the count below a prefix.
pub fn run_task(input: &[u8]) -> Result<Vec<u8>, String> {
    let mut r = Reader::new(input);
    let n = r.u32().map_err(|e| e.to_string())?;
    let prefix = r.bytes().map_err(|e| e.to_string())?;
    if n == 0 || n > MAX_N || prefix.len() > n as usize {
        return Err(format!(
            "bad N-queens task: n {n}, prefix of {}",
            prefix.len()
        ));
    }
    Ok(count_from(n, prefix).to_be_bytes().to_vec())
}

/// The job: publishes one task per prefix of `depth` rows and adds the
/// counts.
pub fn run(
    p: &Publisher,
    n: u32,
    depth: u32,
    timeout: Duration,
    progress: &dyn Progress,
    work: &mut Work,
) -> Result<u64, String> {
    if n == 0 || n > MAX_N {
        return Err(format!("N must be between 1 and {MAX_N}"));
    }
    let inputs = prefixes(n, depth)
        .iter()
        .map(|q| (String::new(), task_input(n, q)))
        .collect();
    let results = run_all(p, Kind::NQueens, inputs, timeout, progress, work)?;
    results.iter().try_fold(0u64, |acc, r| {
        let b: [u8; 8] = r
            .as_slice()
            .try_into()
            .map_err(|_| "bad count".to_string())?;
        Ok(acc + u64::from_be_bytes(b))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_counts_and_brute_force_agree() {
        let known = [1u64, 0, 0, 2, 10, 4, 40, 92, 352, 724];
        for (i, &k) in known.iter().enumerate() {
            let n = i as u32 + 1;
            assert_eq!(count_from(n, &[]), k, "n={n}");
            if n <= 8 {
                assert_eq!(brute_force(n), k, "brute force n={n}");
            }
            // Splitting by prefixes gives the same total.
            for depth in 0..=2 {
                let sum: u64 = prefixes(n, depth).iter().map(|q| count_from(n, q)).sum();
                assert_eq!(sum, k, "n={n} depth={depth}");
            }
        }
        assert_eq!(count_from(12, &[]), 14_200);
    }
}
