//! Loop hooks: closures that run once per loop iteration (TeamTalk's
//! `netlib_add_loop`, whose hooks could never be removed).
//!
//! Hooks run after I/O events and timers in every turn. A hook may add or
//! remove hooks, itself included: removal only marks the entry during a pass
//! and the list is compacted afterwards, so indices stay valid while hooks run;
//! hooks added during a pass first run in the next one.

use crate::context::Context;

/// Identifies a loop hook, to remove it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct HookId(u64);

pub(crate) type HookFn = Box<dyn FnMut(&mut Context)>;

struct HookEntry {
    id: HookId,
    /// `None` while running.
    hook: Option<HookFn>,
    removed: bool,
}

#[derive(Default)]
pub(crate) struct Hooks {
    list: Vec<HookEntry>,
    next_id: u64,
    removed_any: bool,
}

impl Hooks {
    pub(crate) fn add(&mut self, hook: HookFn) -> HookId {
        self.next_id += 1;
        let id = HookId(self.next_id);
        self.list.push(HookEntry {
            id,
            hook: Some(hook),
            removed: false,
        });
        id
    }

    pub(crate) fn remove(&mut self, id: HookId) -> bool {
        match self.list.iter_mut().find(|e| e.id == id && !e.removed) {
            Some(entry) => {
                entry.removed = true;
                entry.hook = None;
                self.removed_any = true;
                true
            }
            None => false,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.list.len()
    }

    /// Takes out hook `i` to run it.
    pub(crate) fn take(&mut self, i: usize) -> Option<HookFn> {
        let entry = self.list.get_mut(i)?;
        if entry.removed {
            return None;
        }
        entry.hook.take()
    }

    /// Returns hook `i` after it ran, unless it was removed meanwhile.
    pub(crate) fn put_back(&mut self, i: usize, hook: HookFn) {
        if let Some(entry) = self.list.get_mut(i) {
            if !entry.removed {
                entry.hook = Some(hook);
            }
        }
    }

    /// Drops the entries removed during a pass.
    pub(crate) fn compact(&mut self) {
        if self.removed_any {
            self.list.retain(|e| !e.removed);
            self.removed_any = false;
        }
    }

    pub(crate) fn clear(&mut self) {
        self.list.clear();
    }
}
