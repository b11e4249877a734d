//! # servers - TeamTalk's login_server and msg_server on netlib
//!
//! - [`config`]: TeamTalk-style `.conf` files with `--Key value` overrides;
//! - [`login`]: the login server (msg_server registry, client and HTTP lookups);
//! - [`msg`]: the message server (logins, routing with acks, offline queues,
//!   registration with login_servers);
//! - [`users`]: the accounts file;
//! - [`client`]: a blocking TeamTalk client, used by `im_client` and tests;
//! - [`runtime`]: logging, address announcement, signal handling.
#![warn(missing_docs)]
pub mod client;
pub mod config;
pub mod login;
pub mod msg;
pub mod runtime;
pub mod users;
