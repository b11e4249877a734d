//! [`UserMap`]: which connections a user is logged in on.
//!
//! TeamTalk's `CImUser` kept a user's connections in a map per user id; a
//! user may be online on several connections (desktop and mobile). Lookups
//! and updates are O(1) in the number of users.

use netlib::Handle;
use std::collections::HashMap;

/// User id to the handles of that user's connections.
#[derive(Debug, Default)]
pub struct UserMap {
    users: HashMap<u32, Vec<Handle>>,
}

impl UserMap {
    /// Records that `user` is online on `h`.
    pub fn add(&mut self, user: u32, h: Handle) {
        let conns = self.users.entry(user).or_default();
        if !conns.contains(&h) {
            conns.push(h);
        }
    }

    /// Forgets `h` for `user`; returns true if it was there.
    pub fn remove(&mut self, user: u32, h: Handle) -> bool {
        let Some(conns) = self.users.get_mut(&user) else {
            return false;
        };
        let before = conns.len();
        conns.retain(|c| *c != h);
        let removed = conns.len() != before;
        if conns.is_empty() {
            self.users.remove(&user);
        }
        removed
    }

    /// The connections of `user` (empty if offline).
    pub fn get(&self, user: u32) -> &[Handle] {
        self.users.get(&user).map_or(&[], |v| v.as_slice())
    }

    /// Whether `user` has any connection.
    pub fn is_online(&self, user: u32) -> bool {
        self.users.contains_key(&user)
    }

    /// Number of users online.
    pub fn user_count(&self) -> usize {
        self.users.len()
    }

    /// Number of user connections.
    pub fn conn_count(&self) -> usize {
        self.users.values().map(Vec::len).sum()
    }
}
