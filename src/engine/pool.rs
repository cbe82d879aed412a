//! Buffers for bytes in flight. A connection takes a buffer when bytes arrive that cannot be
//! passed on at once and gives it back as soon as it is empty, so an idle connection holds none.
//! Freed buffers are kept for reuse up to a cap, so the steady state allocates nothing.

use std::num::NonZeroU32;

/// Handle of a buffer lent out by the pool: its slot plus one, so that `Option<BufId>` takes
/// no more room than the handle (it sits in every connection's two flows). Neither `Copy` nor
/// `Clone`: [`Pool::give`] takes the handle, so one buffer cannot be given back twice or end up
/// on two flows.
///
/// ```compile_fail
/// let mut pool = wsgate::engine::pool::Pool::new(16, 1);
/// let id = pool.take();
/// pool.give(id);
/// pool.give(id); // the handle was moved by the first give
/// ```
#[derive(Debug, PartialEq, Eq)]
pub struct BufId(NonZeroU32);

impl BufId {
    fn of_slot(i: u32) -> BufId {
        BufId(NonZeroU32::MIN.saturating_add(i))
    }
    fn slot(&self) -> u32 {
        self.0.get() - 1
    }
}

pub struct Pool {
    size: usize,
    /// Every buffer ever made; `None` while the slot is free and its memory released.
    slots: Vec<Option<Box<[u8]>>>,
    /// Slots holding a buffer that nobody uses.
    idle: Vec<u32>,
    /// Slots without a buffer.
    empty: Vec<u32>,
    in_use: usize,
    keep_idle: usize,
}

impl Pool {
    /// `size`: bytes per buffer; `keep_idle`: how many unused buffers to keep for reuse.
    pub fn new(size: usize, keep_idle: usize) -> Pool {
        Pool {
            size,
            slots: Vec::new(),
            idle: Vec::new(),
            empty: Vec::new(),
            in_use: 0,
            keep_idle,
        }
    }

    pub fn buf_size(&self) -> usize {
        self.size
    }

    pub fn take(&mut self) -> BufId {
        self.in_use += 1;
        if let Some(i) = self.idle.pop() {
            return BufId::of_slot(i);
        }
        let fresh = vec![0u8; self.size].into_boxed_slice();
        if let Some(i) = self.empty.pop() {
            self.slots[i as usize] = Some(fresh);
            return BufId::of_slot(i);
        }
        self.slots.push(Some(fresh));
        BufId::of_slot(self.slots.len() as u32 - 1)
    }

    pub fn give(&mut self, id: BufId) {
        self.in_use -= 1;
        let i = id.slot();
        if self.idle.len() < self.keep_idle {
            self.idle.push(i);
        } else {
            self.slots[i as usize] = None;
            self.empty.push(i);
        }
    }

    pub fn get(&mut self, id: &BufId) -> &mut [u8] {
        match &mut self.slots[id.slot() as usize] {
            Some(b) => b,
            None => unreachable!("buffer {} used after it was given back", id.slot()),
        }
    }

    /// Buffers lent out now.
    pub fn in_use(&self) -> usize {
        self.in_use
    }

    /// Buffers kept for reuse.
    pub fn idle(&self) -> usize {
        self.idle.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reuses_and_releases() {
        let mut p = Pool::new(16, 1);
        let a = p.take();
        let b = p.take();
        assert_eq!(p.in_use(), 2);
        p.get(&a)[0] = 7;
        p.give(a);
        p.give(b);
        // One kept for reuse, the other released.
        assert_eq!(p.idle(), 1);
        assert_eq!(p.in_use(), 0);
        let c = p.take();
        assert_eq!(p.get(&c).len(), 16);
        let d = p.take();
        assert_ne!(c, d);
        assert_eq!(p.in_use(), 2);
    }
}
