//! End-to-end tests that start the real binaries and talk to them over
//! loopback live in `tests/tests/`. This library also compiles and runs the
//! code blocks of the top-level README as doc tests, so the README stays true.
#![warn(missing_docs)]

/// The README's examples, compiled and run by `cargo test --doc`.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;
