//! examples: classic servers built on netlib.

pub mod memcached;
