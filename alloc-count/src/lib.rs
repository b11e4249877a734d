//! # alloc-count - a counting global allocator
//!
//! One copy of the allocator that the workspace's allocation tests and
//! benchmark servers install, instead of one per crate. [`CountingAlloc`]
//! forwards every call to the [`System`] allocator and counts allocations
//! (`alloc`, `alloc_zeroed`, `realloc`; not `dealloc`) twice:
//!
//! - per thread ([`thread_allocs`]), for tests that pin "the loop thread
//!   allocates nothing per event" while other threads (clients) allocate
//!   freely;
//! - per process ([`total_allocs`]), for benchmark servers that publish
//!   their allocation count.
//!
//! Install it in a test or binary crate with:
//!
//! ```
//! #[global_allocator]
//! static GLOBAL: alloc_count::CountingAlloc = alloc_count::CountingAlloc;
//!
//! fn main() {
//!     let before = alloc_count::thread_allocs();
//!     let v = std::hint::black_box(vec![1u8; 10]);
//!     assert_eq!(alloc_count::thread_allocs() - before, 1);
//!     drop(v);
//! }
//! ```
//!
//! The counters only move while `CountingAlloc` is the global allocator;
//! otherwise both functions return 0.
//!
//! Thread: both counters may be read from any thread; [`thread_allocs`]
//! reads the calling thread's own count.

#![warn(missing_docs)]
#![deny(unsafe_op_in_unsafe_fn)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};

/// A global allocator that forwards to [`System`] and counts allocations.
#[derive(Debug, Clone, Copy, Default)]
pub struct CountingAlloc;

static TOTAL: AtomicU64 = AtomicU64::new(0);

thread_local! {
    // `const` initialisation: reading it never allocates, so the allocator
    // cannot recurse into itself.
    static THREAD: Cell<u64> = const { Cell::new(0) };
}

fn count() {
    TOTAL.fetch_add(1, Ordering::Relaxed);
    // `try_with`: during thread teardown the slot may be gone; such
    // allocations count only in the process total.
    let _ = THREAD.try_with(|c| c.set(c.get() + 1));
}

/// Allocations made by the calling thread so far.
pub fn thread_allocs() -> u64 {
    THREAD.try_with(|c| c.get()).unwrap_or(0)
}

/// Allocations made by every thread of the process so far.
pub fn total_allocs() -> u64 {
    TOTAL.load(Ordering::Relaxed)
}

// SAFETY: every method forwards its arguments unchanged to `System`, which
// upholds the `GlobalAlloc` contract; the counting on the side neither
// allocates (a const thread-local `Cell` and an atomic) nor touches the
// memory handed out.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: the caller upholds `alloc`'s contract (non-zero size
        // layout); passed through unchanged.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: as for `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        // SAFETY: `ptr` was allocated by this allocator, i.e. by `System`,
        // with `layout`; the caller upholds the rest of the contract.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was allocated by `System` (through us) with `layout`.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[global_allocator]
    static GLOBAL: CountingAlloc = CountingAlloc;

    #[test]
    fn counts_this_threads_allocations() {
        let before = thread_allocs();
        let total_before = total_allocs();
        let v: Vec<u8> = Vec::with_capacity(64);
        drop(std::hint::black_box(v));
        assert!(thread_allocs() > before);
        assert!(total_allocs() > total_before);
    }

    #[test]
    fn other_threads_do_not_count_here() {
        let child = std::thread::spawn(|| {
            let start = thread_allocs();
            drop(std::hint::black_box(vec![0u8; 64]));
            thread_allocs() - start
        })
        .join()
        .unwrap_or(0);
        assert_eq!(child, 1);
    }
}
