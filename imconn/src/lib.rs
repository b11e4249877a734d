//! # imconn - buffered TeamTalk connections over netlib
//!
//! The layer TeamTalk's servers are written against (`CImConn`, `ServInfo`):
//!
//! - [`buffered`]: a connection's in/out buffers with write-through sends, a
//!   high-water mark, a hard cap, half-close after drain - usable with any
//!   codec;
pub mod buffered;

pub use buffered::{BufferedConn, Limits, ReadStatus, SendError, SendStatus};
