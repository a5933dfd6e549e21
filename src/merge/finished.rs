//! The exported-span ids of recently finished sessions, kept in memory so
//! that a late event or a resume finds them without a store query.
//!
//! They sit in two contiguous buffers, not in one small allocation per
//! session: a session finishes while the memory of thousands of others is
//! being freed, and one small allocation left in a freed region keeps its
//! whole page resident (measured at 10 000 ended sessions: see
//! BENCHMARKS.md, round 10).

use super::sid::Sid;
use std::collections::{HashMap, HashSet, VecDeque};

/// How many finished sessions keep their ids in memory (the store keeps
/// them all).
const MAX_SESSIONS: usize = 4096;

/// How many ids they keep at most, together (8 bytes each): a few long
/// sessions do not hold megabytes.
const MAX_IDS: usize = 1 << 18;

/// Where a session's ids are: `start` counts every id ever pushed.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
struct Range {
    start: u64,
    len: u32,
}

/// The ids of the last finished sessions, oldest dropped first.
pub(crate) struct Finished {
    index: HashMap<Sid, Range>,
    /// Every session pushed and not yet dropped, oldest first; a session
    /// taken back out keeps its entry here until it is the oldest.
    order: VecDeque<(Sid, Range)>,
    ids: VecDeque<[u8; 8]>,
    /// How many ids were dropped from the front of `ids`.
    dropped: u64,
    max_sessions: usize,
    max_ids: usize,
}

impl Default for Finished {
    fn default() -> Finished {
        Finished::with_bounds(MAX_SESSIONS, MAX_IDS)
    }
}

impl Finished {
    fn with_bounds(max_sessions: usize, max_ids: usize) -> Finished {
        Finished {
            index: HashMap::new(),
            order: VecDeque::new(),
            ids: VecDeque::new(),
            dropped: 0,
            max_sessions,
            max_ids,
        }
    }

    /// Keeps `ids` as `sid`'s; the oldest sessions make room.
    pub(crate) fn insert(&mut self, sid: &str, ids: impl IntoIterator<Item = [u8; 8]>) {
        let start = self.dropped + self.ids.len() as u64;
        self.ids.extend(ids);
        let len = (self.dropped + self.ids.len() as u64 - start) as u32;
        let range = Range { start, len };
        let sid = Sid::new(sid);
        self.index.insert(sid.clone(), range);
        self.order.push_back((sid, range));
        while self.order.len() > 1
            && (self.order.len() > self.max_sessions || self.ids.len() > self.max_ids)
        {
            self.drop_oldest();
        }
    }

    fn drop_oldest(&mut self) {
        let Some((sid, range)) = self.order.pop_front() else {
            return;
        };
        let n = (range.len as usize).min(self.ids.len());
        self.ids.drain(..n);
        self.dropped += n as u64;
        // Only if it was not finished again since (a newer range).
        if self.index.get(&sid) == Some(&range) {
            self.index.remove(&sid);
        }
    }

    /// Takes `sid`'s ids out, if it is one of the last finished sessions.
    pub(crate) fn take(&mut self, sid: &str) -> Option<HashSet<[u8; 8]>> {
        let range = self.index.remove(sid)?;
        let from = (range.start - self.dropped) as usize;
        Some(
            self.ids
                .range(from..from + range.len as usize)
                .copied()
                .collect(),
        )
    }

    #[cfg(test)]
    fn sessions(&self) -> usize {
        self.index.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(from: u8, n: u8) -> Vec<[u8; 8]> {
        (from..from + n).map(|i| [i; 8]).collect()
    }

    #[test]
    fn a_finished_session_gives_back_its_own_ids() {
        let mut f = Finished::default();
        f.insert("a", ids(0, 3));
        f.insert("b", ids(10, 2));
        f.insert("c", Vec::new());
        assert_eq!(f.take("b"), Some(ids(10, 2).into_iter().collect()));
        assert_eq!(f.take("a"), Some(ids(0, 3).into_iter().collect()));
        assert_eq!(f.take("c"), Some(HashSet::new()));
        assert_eq!(f.take("a"), None, "taken once");
        assert_eq!(f.take("unknown"), None);
    }

    #[test]
    fn the_oldest_sessions_leave_first_by_count_and_by_ids() {
        let mut f = Finished::with_bounds(3, 10);
        for (i, sid) in ["a", "b", "c", "d"].iter().enumerate() {
            f.insert(sid, ids(i as u8 * 10, 2));
        }
        assert_eq!(f.sessions(), 3);
        assert_eq!(f.take("a"), None);
        assert_eq!(f.take("d"), Some(ids(30, 2).into_iter().collect()));
        // 6 ids held (b, c, and d's left behind); 6 more pass the bound of
        // 10, so the oldest (b, then c) go.
        f.insert("e", ids(40, 6));
        assert_eq!(f.take("b"), None);
        assert_eq!(f.take("c"), Some(ids(20, 2).into_iter().collect()));
        assert_eq!(f.take("e"), Some(ids(40, 6).into_iter().collect()));
        // A session larger than the bound is still kept, alone.
        f.insert("big", ids(100, 20));
        assert_eq!(f.take("big"), Some(ids(100, 20).into_iter().collect()));
    }

    #[test]
    fn a_session_finished_again_keeps_its_newer_ids_when_the_older_leave() {
        let mut f = Finished::with_bounds(2, 100);
        f.insert("a", ids(0, 2));
        assert!(f.take("a").is_some());
        f.insert("a", ids(0, 4));
        f.insert("b", ids(50, 1));
        // a's first entry is the oldest and leaves; its second stays.
        assert_eq!(f.take("a"), Some(ids(0, 4).into_iter().collect()));
        assert_eq!(f.take("b"), Some(ids(50, 1).into_iter().collect()));
    }
}
