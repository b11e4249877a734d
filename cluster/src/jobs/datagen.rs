//! Generated data for the jobs, written streaming (never whole in memory):
//! files of 64-bit integers for the median, files of words for top-k.
//! Deterministic for a seed, so a test can regenerate what executors hold.

use std::io::{BufWriter, Write};
use std::path::Path;

/// splitmix64: a small, well-mixed deterministic generator.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator for `seed`.
    pub fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x9e37_79b9_7f4a_7c15)
    }
    /// The next value.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// The `i`-th value of the integer data for `seed`: mostly within ±10^9
/// (so duplicates occur), one in a thousand anywhere in the i64 range.
pub fn value(rng: &mut Rng) -> i64 {
    let r = rng.next_u64();
    if r % 1000 == 0 {
        rng.next_u64() as i64
    } else {
        (r % 2_000_000_001) as i64 - 1_000_000_000
    }
}

/// Writes `count` little-endian i64 values generated from `seed` to `path`.
pub fn gen_ints(path: &Path, count: u64, seed: u64) -> std::io::Result<()> {
    let mut w = BufWriter::with_capacity(1 << 20, std::fs::File::create(path)?);
    let mut rng = Rng::new(seed);
    for _ in 0..count {
        w.write_all(&value(&mut rng).to_le_bytes())?;
    }
    w.flush()?;
    w.get_ref().sync_all()
}

const SYLLABLES: [&str; 16] = [
    "ka", "lo", "mi", "nu", "pe", "ra", "so", "ti", "va", "ze", "bo", "du", "fi", "go", "hu", "je",
];

/// The word of rank `idx` in the vocabulary.
pub fn word(idx: u64) -> String {
    let mut s = String::new();
    let mut i = idx;
    loop {
        s.push_str(SYLLABLES[(i % 16) as usize]);
        i /= 16;
        if i == 0 {
            return s;
        }
    }
}

/// Writes `count` words, one per line, drawn from a vocabulary of `vocab`
/// words with a skewed (log-uniform rank) distribution.
pub fn gen_words(path: &Path, count: u64, vocab: u64, seed: u64) -> std::io::Result<()> {
    let mut w = BufWriter::with_capacity(1 << 20, std::fs::File::create(path)?);
    let mut rng = Rng::new(seed);
    let v = vocab.max(1) as f64;
    for _ in 0..count {
        let idx = (v.powf(rng.unit()) as u64).saturating_sub(1).min(vocab - 1);
        writeln!(w, "{}", word(idx))?;
    }
    w.flush()?;
    w.get_ref().sync_all()
}
