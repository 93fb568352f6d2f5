//! A set of byte ranges: which bytes of a temporary file are written, and
//! which of them are durable. Pure data, no I/O.
//!
//! A front-to-back download's set is one range from 0 (its offset); a file
//! fetched over several connections holds many. Both are described the same
//! way, so one durability path serves both (see `temp_file`).

use bits_core::ByteRange;

/// Sorted, disjoint, non-adjacent, non-empty ranges.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct RangeSet {
    ranges: Vec<ByteRange>,
}

impl RangeSet {
    /// The empty set.
    pub(crate) fn new() -> RangeSet {
        RangeSet::default()
    }

    /// `[0, n)`.
    pub(crate) fn prefix(n: u64) -> RangeSet {
        let mut set = RangeSet::new();
        set.insert(0, n);
        set
    }

    /// Everything in `[0, total)` except `missing` (sorted or not).
    pub(crate) fn all_but(total: u64, missing: &[ByteRange]) -> RangeSet {
        let mut gaps = RangeSet::new();
        for r in missing {
            gaps.insert(r.start, r.end);
        }
        gaps.complement(total)
    }

    /// Adds `[start, end)`, merging with neighbours.
    pub(crate) fn insert(&mut self, start: u64, end: u64) {
        if start >= end {
            return;
        }
        // The first range that ends at or after `start` (touching counts).
        let first = self.ranges.partition_point(|r| r.end < start);
        let mut merged = ByteRange { start, end };
        let mut last = first;
        while last < self.ranges.len() && self.ranges[last].start <= end {
            merged.start = merged.start.min(self.ranges[last].start);
            merged.end = merged.end.max(self.ranges[last].end);
            last += 1;
        }
        self.ranges.splice(first..last, [merged]);
    }

    /// Keeps only what lies before `n` (a truncate to `n` bytes).
    pub(crate) fn truncate(&mut self, n: u64) {
        self.ranges.retain(|r| r.start < n);
        if let Some(last) = self.ranges.last_mut() {
            last.end = last.end.min(n);
        }
    }

    /// `[0, total)` minus this set.
    pub(crate) fn complement(&self, total: u64) -> RangeSet {
        let mut out = Vec::new();
        let mut at = 0;
        for r in &self.ranges {
            if r.start >= total {
                break;
            }
            if r.start > at {
                out.push(ByteRange {
                    start: at,
                    end: r.start,
                });
            }
            at = at.max(r.end);
        }
        if at < total {
            out.push(ByteRange {
                start: at,
                end: total,
            });
        }
        RangeSet { ranges: out }
    }

    /// Bytes in the set.
    pub(crate) fn len(&self) -> u64 {
        self.ranges.iter().map(ByteRange::len).sum()
    }

    /// `Some(n)` when the set is exactly `[0, n)` (the empty set is `[0, 0)`).
    pub(crate) fn as_prefix(&self) -> Option<u64> {
        match self.ranges.as_slice() {
            [] => Some(0),
            [only] if only.start == 0 => Some(only.end),
            _ => None,
        }
    }

    /// The ranges, sorted.
    pub(crate) fn ranges(&self) -> &[ByteRange] {
        &self.ranges
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn r(start: u64, end: u64) -> ByteRange {
        ByteRange { start, end }
    }

    #[test]
    fn inserts_merge_and_truncate_cuts() {
        let mut s = RangeSet::new();
        s.insert(10, 20);
        s.insert(30, 40);
        s.insert(20, 30);
        assert_eq!(s.ranges(), &[r(10, 40)]);
        s.insert(0, 5);
        assert_eq!(s.ranges(), &[r(0, 5), r(10, 40)]);
        s.truncate(15);
        assert_eq!(s.ranges(), &[r(0, 5), r(10, 15)]);
        assert_eq!(s.complement(20).ranges(), &[r(5, 10), r(15, 20)]);
        assert_eq!(s.as_prefix(), None);
        assert_eq!(RangeSet::prefix(7).as_prefix(), Some(7));
        assert_eq!(
            RangeSet::all_but(10, &[r(2, 4)]).ranges(),
            &[r(0, 2), r(4, 10)]
        );
    }

    proptest! {
        /// The set behaves like the set of bytes it stands for.
        #[test]
        fn matches_a_byte_model(ops in proptest::collection::vec((0u64..200, 0u64..60, any::<bool>()), 0..40)) {
            let mut set = RangeSet::new();
            let mut model = [false; 260];
            for (start, len, cut) in ops {
                if cut {
                    set.truncate(start);
                    for b in model.iter_mut().skip(start as usize) { *b = false; }
                } else {
                    set.insert(start, start + len);
                    for b in &mut model[start as usize..(start + len) as usize] { *b = true; }
                }
                let rs = set.ranges();
                prop_assert!(rs.iter().all(|r| r.start < r.end));
                prop_assert!(rs.windows(2).all(|w| w[0].end < w[1].start));
                let mut bytes = [false; 260];
                for x in rs { for b in &mut bytes[x.start as usize..x.end as usize] { *b = true; } }
                prop_assert_eq!(bytes, model);
                prop_assert_eq!(set.len(), model.iter().filter(|b| **b).count() as u64);
                let gaps = set.complement(260);
                prop_assert_eq!(gaps.len() + set.len(), 260);
            }
        }
    }
}
