//! # servers - TeamTalk's login_server and msg_server on netlib
//!
//! - [`config`]: TeamTalk-style `.conf` files with `--Key value` overrides;
//! - [`runtime`]: logging, address announcement, signal handling.
pub mod config;
pub mod runtime;
