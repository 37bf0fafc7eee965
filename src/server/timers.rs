//! One deadline heap for every timer of the process: modes' backend connect
//! deadlines, health-check rounds and timeouts, speed-probe rounds and
//! timeouts. An owner never cancels: it keeps the generation
//! `arm` gave it and ignores an entry that no longer matches when it comes
//! due. Stale entries are also dropped in bulk when they pile up (`compact`),
//! so the heap is bounded by what is live, whatever the rate and timeouts.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Instant;

/// Who armed a deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum TimerOwner {
    /// The mode of this frontend.
    Mode(usize),
    /// The health checks of this pool.
    Checks(usize),
    /// The speed probes of this frontend's policy.
    Probes(usize),
}

/// The key an owner uses for its periodic round (any other key is its own).
pub const ROUND: usize = usize::MAX;

/// What a deadline's owner is lent when it comes due.
pub struct Tick<'a> {
    pub now: Instant,
    pub registry: &'a mio::Registry,
    pub timers: &'a mut Timers,
}

/// One armed deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Deadline {
    pub when: Instant,
    pub owner: TimerOwner,
    /// The mode's own name for what it times (a session, a connection).
    pub key: usize,
    /// Tells this arming from earlier ones of the same key.
    pub generation: u64,
}

/// Entries beyond twice the live connections before stale ones are dropped.
const SLACK: usize = 1024;

#[derive(Default)]
pub struct Timers {
    heap: BinaryHeap<Reverse<Deadline>>,
    generation: u64,
}

impl Timers {
    /// Arm a deadline; the returned generation identifies it to its owner.
    pub fn arm(&mut self, when: Instant, owner: TimerOwner, key: usize) -> u64 {
        self.generation += 1;
        let generation = self.generation;
        self.heap.push(Reverse(Deadline { when, owner, key, generation }));
        generation
    }

    pub fn next(&self) -> Option<Instant> {
        self.heap.peek().map(|Reverse(d)| d.when)
    }

    /// The earliest deadline if it is due at `now`.
    pub fn pop_due(&mut self, now: Instant) -> Option<Deadline> {
        if self.next()? > now {
            return None;
        }
        self.heap.pop().map(|Reverse(d)| d)
    }

    pub fn len(&self) -> usize {
        self.heap.len()
    }

    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }

    /// Drop entries their owners no longer wait for, once there are many
    /// more than `live` (amortized O(1) per arming).
    pub fn compact(&mut self, live: usize, mut waited_for: impl FnMut(&Deadline) -> bool) {
        if self.heap.len() > 2 * live + SLACK {
            self.heap.retain(|Reverse(d)| waited_for(d));
        }
        // A burst of connects leaves a heap sized for it; once its deadlines
        // are gone, give the memory back instead of holding it for good.
        if self.heap.capacity() > 4 * self.heap.len() + SLACK {
            self.heap.shrink_to(2 * self.heap.len() + SLACK);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn due_in_order_and_compacted() {
        let mut t = Timers::default();
        let now = Instant::now();
        let late = t.arm(now + Duration::from_secs(2), TimerOwner::Mode(0), 7);
        let early = t.arm(now + Duration::from_secs(1), TimerOwner::Checks(1), 8);
        assert_eq!(t.pop_due(now), None);
        let d = t.pop_due(now + Duration::from_secs(3)).unwrap();
        assert_eq!((d.owner, d.key, d.generation), (TimerOwner::Checks(1), 8, early));
        assert_eq!(t.pop_due(now + Duration::from_secs(3)).unwrap().generation, late);
        for k in 0..3000 {
            t.arm(now, TimerOwner::Mode(0), k);
        }
        t.compact(10, |d| d.key < 5);
        assert_eq!(t.len(), 5);
        assert!(t.heap.capacity() <= 2 * 5 + SLACK, "capacity {} kept after the burst", t.heap.capacity());
    }
}
