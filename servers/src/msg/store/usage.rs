//! Mailbox bounds and what the mailboxes hold, checked before a message is
//! stored (the same code for every store).

use super::{Refusal, SessionKey};
use std::collections::HashMap;

/// Mailbox bounds (`MailboxMaxMsgs`, `MailboxMaxBytes`, `MailboxTotalMaxBytes`).
#[derive(Debug, Clone, Copy)]
pub struct Bounds {
    /// Most undelivered messages per user.
    pub user_msgs: usize,
    /// Most undelivered bytes per user.
    pub user_bytes: usize,
    /// Most undelivered bytes over all users.
    pub total_bytes: usize,
}

/// What the mailboxes hold, checked against [`Bounds`] before a message is
/// stored. Both stores keep one.
#[derive(Debug, Default)]
pub struct Usage {
    per_user: HashMap<u32, (usize, usize), ahash::RandomState>,
    total_bytes: usize,
}

impl Usage {
    /// Whether one more message of `bytes` fits every receiver's mailbox.
    pub fn admit(&self, bounds: &Bounds, receivers: &[u32], bytes: usize) -> Result<(), Refusal> {
        let added = bytes.saturating_mul(receivers.len());
        if self.total_bytes.saturating_add(added) > bounds.total_bytes {
            return Err(Refusal::StoreFull);
        }
        for &r in receivers {
            let (n, b) = self.per_user.get(&r).copied().unwrap_or((0, 0));
            if n >= bounds.user_msgs || b.saturating_add(bytes) > bounds.user_bytes {
                return Err(Refusal::MailboxFull(r));
            }
        }
        Ok(())
    }

    /// The receivers whose mailboxes take a message of `bytes` in
    /// `session`: all of them, or a refusal, for a single chat; for a group
    /// those with room (a member with a full mailbox reads it in the
    /// history instead of blocking the group). A full store refuses either.
    pub fn admit_message(
        &self,
        bounds: &Bounds,
        session: SessionKey,
        receivers: &[u32],
        bytes: usize,
    ) -> Result<Vec<u32>, Refusal> {
        match self.admit(bounds, receivers, bytes) {
            Ok(()) => Ok(receivers.to_vec()),
            Err(Refusal::MailboxFull(user)) if matches!(session, SessionKey::Group(_)) => {
                log::warn!("group message: mailbox of member {user} (and maybe more) full");
                Ok(receivers
                    .iter()
                    .copied()
                    .filter(|r| self.admit(bounds, &[*r], bytes).is_ok())
                    .collect())
            }
            Err(e) => Err(e),
        }
    }

    /// Usage as counted elsewhere (a shared database): (user, undelivered
    /// messages, bytes) and the total bytes of all mailboxes.
    pub fn from_counts(
        per_user: impl IntoIterator<Item = (u32, usize, usize)>,
        total_bytes: usize,
    ) -> Usage {
        Usage {
            per_user: per_user.into_iter().map(|(u, n, b)| (u, (n, b))).collect(),
            total_bytes,
        }
    }

    /// A message of `bytes` joined `user`'s mailbox.
    pub fn add(&mut self, user: u32, bytes: usize) {
        let e = self.per_user.entry(user).or_default();
        e.0 += 1;
        e.1 += bytes;
        self.total_bytes += bytes;
    }

    /// A message of `bytes` left `user`'s mailbox.
    pub fn remove(&mut self, user: u32, bytes: usize) {
        if let Some(e) = self.per_user.get_mut(&user) {
            e.0 = e.0.saturating_sub(1);
            e.1 = e.1.saturating_sub(bytes);
            if e.0 == 0 {
                self.per_user.remove(&user);
            }
        }
        self.total_bytes = self.total_bytes.saturating_sub(bytes);
    }

    /// Undelivered messages over all mailboxes, and their bytes.
    pub fn totals(&self) -> (usize, usize) {
        (self.per_user.values().map(|e| e.0).sum(), self.total_bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_refuses_past_each_bound() {
        let bounds = Bounds {
            user_msgs: 2,
            user_bytes: 100,
            total_bytes: 150,
        };
        let mut u = Usage::default();
        assert!(u.admit(&bounds, &[1], 40).is_ok());
        u.add(1, 40);
        u.add(1, 40);
        assert_eq!(u.admit(&bounds, &[1], 1), Err(Refusal::MailboxFull(1)));
        assert!(u.admit(&bounds, &[2], 60).is_ok());
        assert_eq!(u.admit(&bounds, &[2, 3], 40), Err(Refusal::StoreFull));
        assert_eq!(u.admit(&bounds, &[2], 101), Err(Refusal::StoreFull));
        u.remove(1, 40);
        assert!(u.admit(&bounds, &[1], 20).is_ok());
        assert_eq!(u.totals(), (1, 40));
    }
}
