//! What one transaction (a connection) incremented, so that auto-decrement gives it back exactly
//! once (decision 8, spec §5).

use super::Slot;

/// Up to two (slot, weight) pairs inline, the rest in a boxed slice that grows by doubling. One
/// pair per slot: pushing a slot again adds to its weight.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Held {
    inline: [(Slot, u64); 2],
    spill: Option<Box<[(Slot, u64)]>>,
    len: u32,
}

impl Default for Held {
    fn default() -> Self {
        Held {
            inline: [(Slot::NONE, 0); 2],
            spill: None,
            len: 0,
        }
    }
}

impl Held {
    pub fn new() -> Held {
        Held::default()
    }

    pub fn len(&self) -> usize {
        self.len as usize
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Records that `weight` was added to `slot` (0 counts as 1, as in [`super::Counters::inc`]).
    pub fn push(&mut self, slot: Slot, weight: u64) {
        let weight = weight.max(1);
        if let Some(i) = self.find(slot) {
            if let Some(p) = self.get_mut(i) {
                p.1 = p.1.saturating_add(weight);
            }
            return;
        }
        let i = self.len as usize;
        if i >= 2 {
            let need = i - 1;
            let cap = self.spill.as_ref().map_or(0, |s| s.len());
            if need > cap {
                let mut grown = vec![(Slot::NONE, 0); cap.saturating_mul(2).max(4)];
                if let Some(old) = &self.spill {
                    grown[..cap].copy_from_slice(old);
                }
                self.spill = Some(grown.into_boxed_slice());
            }
        }
        self.len = self.len.saturating_add(1);
        if let Some(p) = self.get_mut(i) {
            *p = (slot, weight);
        }
    }

    /// Takes back up to `weight` of what was recorded for `slot`, after an explicit `dec`, so that
    /// auto-decrement only gives back what is still outstanding. Returns how much was taken.
    pub fn remove(&mut self, slot: Slot, weight: u64) -> u64 {
        let weight = weight.max(1);
        let Some(i) = self.find(slot) else {
            return 0;
        };
        let Some(p) = self.get_mut(i) else {
            return 0;
        };
        let taken = weight.min(p.1);
        p.1 -= taken;
        if p.1 == 0 {
            // Swap the last pair into the hole.
            let last = self.len as usize - 1;
            let moved = self.get(last);
            if let (Some(moved), Some(p)) = (moved, self.get_mut(i)) {
                *p = moved;
            }
            self.len -= 1;
        }
        taken
    }

    /// Empties the ledger and yields every (slot, weight) it held: a second call yields nothing.
    pub fn take_all(&mut self) -> HeldDrain {
        HeldDrain {
            held: std::mem::take(self),
            pos: 0,
        }
    }

    /// Lets `f` rewrite every slot recorded (a reload points them at the new layout).
    pub fn slots_mut(&mut self, mut f: impl FnMut(&mut Slot)) {
        for i in 0..self.len as usize {
            if let Some(p) = self.get_mut(i) {
                f(&mut p.0);
            }
        }
    }

    fn find(&self, slot: Slot) -> Option<usize> {
        (0..self.len as usize).find(|&i| self.get(i).is_some_and(|p| p.0 == slot))
    }

    fn get(&self, i: usize) -> Option<(Slot, u64)> {
        if i >= self.len as usize {
            return None;
        }
        match i {
            0 | 1 => self.inline.get(i).copied(),
            _ => self.spill.as_ref()?.get(i - 2).copied(),
        }
    }

    fn get_mut(&mut self, i: usize) -> Option<&mut (Slot, u64)> {
        if i >= self.len as usize {
            return None;
        }
        match i {
            0 | 1 => self.inline.get_mut(i),
            _ => self.spill.as_mut()?.get_mut(i - 2),
        }
    }
}

/// The pairs taken out of a [`Held`].
#[derive(Debug)]
pub struct HeldDrain {
    held: Held,
    pos: usize,
}

impl Iterator for HeldDrain {
    type Item = (Slot, u64);
    fn next(&mut self) -> Option<(Slot, u64)> {
        let p = self.held.get(self.pos)?;
        self.pos += 1;
        Some(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(n: u32) -> Slot {
        Slot {
            cell: n,
            limit: 0,
            h1: 0,
        }
    }

    #[test]
    fn size_is_small() {
        assert_eq!(std::mem::size_of::<Slot>(), 16);
        assert_eq!(std::mem::size_of::<Held>(), 72);
    }

    #[test]
    fn take_all_gives_back_exactly_once() {
        let mut h = Held::new();
        h.push(s(1), 1);
        h.push(s(2), 3);
        assert_eq!(h.len(), 2);
        assert!(h.spill.is_none());
        let got: Vec<_> = h.take_all().collect();
        assert_eq!(got, vec![(s(1), 1), (s(2), 3)]);
        assert!(h.is_empty());
        assert_eq!(h.take_all().count(), 0);
    }

    #[test]
    fn spills_beyond_two_and_keeps_everything() {
        let mut h = Held::new();
        for i in 0..11 {
            h.push(s(i), u64::from(i) + 1);
        }
        assert_eq!(h.len(), 11);
        let mut got: Vec<_> = h.take_all().collect();
        got.sort_by_key(|p| p.0.cell);
        let want: Vec<_> = (0..11).map(|i| (s(i), u64::from(i) + 1)).collect();
        assert_eq!(got, want);
        assert_eq!(h.take_all().next(), None);
    }

    #[test]
    fn same_slot_merges_and_zero_counts_as_one() {
        let mut h = Held::new();
        h.push(s(7), 2);
        h.push(s(7), 0);
        assert_eq!(h.len(), 1);
        assert_eq!(h.take_all().collect::<Vec<_>>(), vec![(s(7), 3)]);
    }

    #[test]
    fn remove_takes_only_what_is_outstanding() {
        let mut h = Held::new();
        h.push(s(1), 1);
        h.push(s(2), 5);
        h.push(s(3), 1);
        assert_eq!(h.remove(s(2), 2), 2);
        assert_eq!(h.remove(s(1), 4), 1, "never more than was recorded");
        assert_eq!(h.remove(s(1), 1), 0, "already gone");
        assert_eq!(h.remove(s(9), 1), 0, "never recorded");
        let mut got: Vec<_> = h.take_all().collect();
        got.sort_by_key(|p| p.0.cell);
        assert_eq!(got, vec![(s(2), 3), (s(3), 1)]);
    }
}
