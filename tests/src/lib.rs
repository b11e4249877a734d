//! tests: end-to-end tests that start real processes (filled by later issues).
