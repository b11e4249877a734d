//! Socket options and addresses (TeamTalk's `netlib_option`).
//!
//! Thin, typed wrappers over `setsockopt`/`getsockopt` through socket2 on a
//! socket the table owns; nothing here changes dispatcher state.
//!
//! Thread: the loop's own; reached through `&Context`.

use crate::context::Context;
use crate::error::{Error, Result};
use crate::handle::Handle;
use crate::socket::Io;
use socket2::{SockRef, TcpKeepalive};
use std::net::SocketAddr;
use std::time::Duration;

impl Context {
    /// The remote address (`NETLIB_OPT_GET_REMOTE_IP`/`_PORT`). A
    /// Unix-domain connection has none: an [`Error::Io`] of kind
    /// `Unsupported`.
    pub fn peer_addr(&self, h: Handle) -> Result<SocketAddr> {
        let entry = self.entry_or_err(h)?;
        match (entry.peer, &entry.io) {
            (Some(peer), _) => Ok(peer),
            (None, Io::Stream(s)) => Ok(s.peer_addr()?),
            (None, _) => Err(Error::InvalidHandle),
        }
    }

    /// The local address (`NETLIB_OPT_GET_LOCAL_IP`/`_PORT`); for a
    /// Unix-domain socket an [`Error::Io`] of kind `Unsupported`.
    pub fn local_addr(&self, h: Handle) -> Result<SocketAddr> {
        match &self.entry_or_err(h)?.io {
            Io::Listener(l) => Ok(l.local_addr()?),
            Io::Stream(s) => Ok(s.local_addr()?),
            Io::None => Err(Error::InvalidHandle),
        }
    }

    pub(crate) fn sock_ref(&self, h: Handle) -> Result<SockRef<'_>> {
        match &self.entry_or_err(h)?.io {
            Io::Listener(l) => Ok(SockRef::from(l)),
            Io::Stream(s) => Ok(SockRef::from(s)),
            Io::None => Err(Error::InvalidHandle),
        }
    }

    /// Sets TCP_NODELAY.
    pub fn set_nodelay(&self, h: Handle, on: bool) -> Result<()> {
        Ok(self.sock_ref(h)?.set_tcp_nodelay(on)?)
    }

    /// Reads TCP_NODELAY.
    pub fn nodelay(&self, h: Handle) -> Result<bool> {
        Ok(self.sock_ref(h)?.tcp_nodelay()?)
    }

    /// Sets SO_SNDBUF (`NETLIB_OPT_SET_SEND_BUF_SIZE`).
    pub fn set_send_buffer_size(&self, h: Handle, bytes: usize) -> Result<()> {
        Ok(self.sock_ref(h)?.set_send_buffer_size(bytes)?)
    }

    /// Reads SO_SNDBUF.
    pub fn send_buffer_size(&self, h: Handle) -> Result<usize> {
        Ok(self.sock_ref(h)?.send_buffer_size()?)
    }

    /// Sets SO_RCVBUF (`NETLIB_OPT_SET_RECV_BUF_SIZE`).
    pub fn set_recv_buffer_size(&self, h: Handle, bytes: usize) -> Result<()> {
        Ok(self.sock_ref(h)?.set_recv_buffer_size(bytes)?)
    }

    /// Reads SO_RCVBUF.
    pub fn recv_buffer_size(&self, h: Handle) -> Result<usize> {
        Ok(self.sock_ref(h)?.recv_buffer_size()?)
    }

    /// Enables TCP keepalive probing after `idle` without traffic, or
    /// disables it with `None`.
    pub fn set_keepalive(&self, h: Handle, idle: Option<Duration>) -> Result<()> {
        let sock = self.sock_ref(h)?;
        match idle {
            Some(t) => sock.set_tcp_keepalive(&TcpKeepalive::new().with_time(t))?,
            None => sock.set_keepalive(false)?,
        }
        Ok(())
    }

    /// Reads SO_KEEPALIVE.
    pub fn keepalive(&self, h: Handle) -> Result<bool> {
        Ok(self.sock_ref(h)?.keepalive()?)
    }
}
