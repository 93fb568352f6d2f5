//! The live byte counters of a job's files: what running transfers have
//! received, shown while it is above the durable count.
//!
//! A job of 100,000 files has 100,000 counters, read by every `list` and
//! written by every transfer. One allocation per file (an `Arc` each) cost
//! 32 bytes of heap and a pointer per file; here the files added by one
//! call share blocks of up to [`BLOCK`] counters, so a counter costs its
//! 8 bytes. A transfer holds its block, so files added later (new blocks)
//! never move the counter it writes.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Counters per block: large enough that the per-block overhead (the `Arc`
/// header and two words in the index) is lost in the block, small enough
/// that a transfer pins little.
const BLOCK: usize = 256;

/// Every file's counter, in order.
#[derive(Debug, Default)]
pub struct Counters {
    /// The blocks, and the index of each block's first file.
    blocks: Vec<(usize, Arc<[AtomicU64]>)>,
    len: usize,
}

/// One file's counter, as a running transfer holds it.
#[derive(Debug, Clone)]
pub struct Counter {
    block: Arc<[AtomicU64]>,
    slot: usize,
}

impl Counters {
    /// `n` counters at 0.
    pub fn new(n: usize) -> Counters {
        let mut c = Counters::default();
        c.extend(n);
        c
    }

    /// `n` more counters at 0, for files added to the job.
    pub fn extend(&mut self, mut n: usize) {
        while n > 0 {
            let size = n.min(BLOCK);
            let block: Arc<[AtomicU64]> = (0..size).map(|_| AtomicU64::new(0)).collect();
            self.blocks.push((self.len, block));
            self.len += size;
            n -= size;
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.len
    }

    /// File `index`'s counter, to hand to its transfer.
    pub fn get(&self, index: usize) -> Option<Counter> {
        let (block, slot) = self.find(index)?;
        Some(Counter {
            block: block.clone(),
            slot,
        })
    }

    /// File `index`'s count (0 for a file without a counter). Read for
    /// every file by every `list`: no reference count is touched.
    pub fn load(&self, index: usize) -> u64 {
        self.find(index)
            .map_or(0, |(block, slot)| block[slot].load(Ordering::Relaxed))
    }

    /// The block holding file `index`, and its slot there.
    fn find(&self, index: usize) -> Option<(&Arc<[AtomicU64]>, usize)> {
        if index >= self.len {
            return None;
        }
        // The last block starting at or before `index`.
        let b = self.blocks.partition_point(|(start, _)| *start <= index) - 1;
        let (start, block) = &self.blocks[b];
        Some((block, index - start))
    }

    /// Every count back to 0: no transfer runs.
    pub fn reset(&self) {
        for (_, block) in &self.blocks {
            for c in block.iter() {
                c.store(0, Ordering::Relaxed);
            }
        }
    }
}

impl Counter {
    /// Sets the count.
    pub fn store(&self, bytes: u64) {
        self.block[self.slot].store(bytes, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_file_has_its_own_counter_across_blocks_and_extensions() {
        let mut c = Counters::new(BLOCK + 3);
        c.extend(1);
        c.extend(2 * BLOCK);
        assert_eq!(c.len(), 3 * BLOCK + 4);
        for i in 0..c.len() {
            c.get(i).unwrap().store(i as u64 + 1);
        }
        for i in 0..c.len() {
            assert_eq!(c.load(i), i as u64 + 1, "file {i}");
        }
        assert!(c.get(c.len()).is_none());
        assert_eq!(c.load(c.len()), 0);
        c.reset();
        assert!((0..c.len()).all(|i| c.load(i) == 0));
    }

    #[test]
    fn a_held_counter_survives_files_added_after_it() {
        let mut c = Counters::new(1);
        let held = c.get(0).unwrap();
        c.extend(1000);
        held.store(7);
        assert_eq!(c.load(0), 7);
        assert_eq!(c.load(1), 0);
    }
}
