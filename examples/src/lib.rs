//! examples: classic muduo servers and clients, each an `imconn::Server` with a codec.
#![warn(missing_docs)]

pub mod cli;
pub mod echo;
pub mod http;
pub mod memcached;
pub mod procmon;
pub mod relay;
pub mod roundtrip;
pub mod socks;
pub mod sudoku;
pub mod wheel;
