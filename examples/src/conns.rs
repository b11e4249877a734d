//! [`ConnTable`]: per-connection state of a server, keyed by netlib [`Handle`].
//!
//! A netlib server is usually one handler object serving every accepted
//! socket (accepted sockets start with their listener's handler), so it needs
//! a map from handle to connection state - typically an
//! [`imconn::BufferedConn`] plus whatever the protocol keeps. Handles carry a
//! small slot index that is unique among open sockets, so the table is a `Vec`
//! indexed by it: no hashing, and no allocation once it has grown to the
//! number of concurrent connections. The full handle is stored and compared,
//! so a stale handle never reaches the connection that reused its slot.
//!
//! Owned by the handler; only the loop thread touches it.
//!
//! ```
//! use examples::conns::ConnTable;
//! let table: ConnTable<u32> = ConnTable::new();
//! assert!(table.is_empty());
//! ```

use netlib::Handle;

/// Connection state `T` for each open socket.
#[derive(Debug)]
pub struct ConnTable<T> {
    slots: Vec<Option<(Handle, T)>>,
    len: usize,
}

impl<T> Default for ConnTable<T> {
    fn default() -> Self {
        ConnTable::new()
    }
}

impl<T> ConnTable<T> {
    /// An empty table.
    pub fn new() -> Self {
        ConnTable {
            slots: Vec::new(),
            len: 0,
        }
    }

    /// Stores `value` for `h`, returning what was stored for it before.
    pub fn insert(&mut self, h: Handle, value: T) -> Option<T> {
        let i = h.index() as usize;
        if self.slots.len() <= i {
            self.slots.resize_with(i + 1, || None);
        }
        let old = self.slots[i].replace((h, value));
        match old {
            Some((old_h, v)) if old_h == h => Some(v),
            Some(_) => None, // a stale entry left behind; replaced
            None => {
                self.len += 1;
                None
            }
        }
    }

    /// The state of `h`, if it is in the table.
    pub fn get(&self, h: Handle) -> Option<&T> {
        match self.slots.get(h.index() as usize) {
            Some(Some((k, v))) if *k == h => Some(v),
            _ => None,
        }
    }

    /// The state of `h`, mutably.
    pub fn get_mut(&mut self, h: Handle) -> Option<&mut T> {
        match self.slots.get_mut(h.index() as usize) {
            Some(Some((k, v))) if *k == h => Some(v),
            _ => None,
        }
    }

    /// Removes and returns the state of `h`.
    pub fn remove(&mut self, h: Handle) -> Option<T> {
        let slot = self.slots.get_mut(h.index() as usize)?;
        match slot {
            Some((k, _)) if *k == h => {
                self.len -= 1;
                slot.take().map(|(_, v)| v)
            }
            _ => None,
        }
    }

    /// Number of connections.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Every connection, in slot order.
    pub fn iter(&self) -> impl Iterator<Item = (Handle, &T)> {
        self.slots
            .iter()
            .filter_map(|s| s.as_ref().map(|(h, v)| (*h, v)))
    }

    /// Every connection, mutably.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = (Handle, &mut T)> {
        self.slots
            .iter_mut()
            .filter_map(|s| s.as_mut().map(|(h, v)| (*h, v)))
    }

    /// The handles of every connection (collected, so the caller may act on
    /// the table while walking them).
    pub fn handles(&self) -> Vec<Handle> {
        self.iter().map(|(h, _)| h).collect()
    }
}
