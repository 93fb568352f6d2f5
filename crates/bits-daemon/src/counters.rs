//! The live byte counters of a job's files: what running transfers have
//! received, shown while it is above the durable count.
//!
//! A job of 100,000 files has 100,000 counters, read by every `list` and
//! written by every transfer. One allocation per file (an `Arc` each) cost
//! 32 bytes of heap and a pointer per file; here the files added by one
//! call share blocks of up to [`BLOCK`] counters, each made when a transfer
//! first asks for one of its counters: a queued file costs nothing, a file
//! that ran 8 bytes. A transfer holds its block, so files added later (new
//! blocks) never move the counter it writes.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

/// Counters per block: large enough that the per-block overhead (the `Arc`
/// header and the block's entry in the index) is lost in the block, small
/// enough that a transfer pins little.
const BLOCK: usize = 256;

/// Every file's counter, in order.
#[derive(Debug, Default)]
pub struct Counters {
    /// The blocks, in order.
    blocks: Vec<Block>,
    /// Counters in all.
    len: usize,
}

/// The counters of up to [`BLOCK`] consecutive files.
#[derive(Debug)]
struct Block {
    /// The index of its first file.
    start: usize,
    /// How many files it counts.
    size: usize,
    /// The counters, once a transfer asked for one (until then all 0).
    counters: OnceLock<Arc<[AtomicU64]>>,
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
            self.blocks.push(Block {
                start: self.len,
                size,
                counters: OnceLock::new(),
            });
            self.len += size;
            n -= size;
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.len
    }

    /// File `index`'s counter, to hand to its transfer (its block is made
    /// now if it was not yet).
    pub fn get(&self, index: usize) -> Option<Counter> {
        let (block, slot) = self.find(index)?;
        let counters = block
            .counters
            .get_or_init(|| (0..block.size).map(|_| AtomicU64::new(0)).collect());
        Some(Counter {
            block: counters.clone(),
            slot,
        })
    }

    /// File `index`'s count (0 for a file without a counter). Read for
    /// every file by every `list`: no reference count is touched.
    pub fn load(&self, index: usize) -> u64 {
        self.find(index)
            .and_then(|(block, slot)| Some(block.counters.get()?[slot].load(Ordering::Relaxed)))
            .unwrap_or(0)
    }

    /// The block holding file `index`, and its slot there.
    fn find(&self, index: usize) -> Option<(&Block, usize)> {
        if index >= self.len {
            return None;
        }
        // The last block starting at or before `index`.
        let b = self.blocks.partition_point(|block| block.start <= index) - 1;
        let block = &self.blocks[b];
        Some((block, index - block.start))
    }

    /// Every count back to 0: no transfer runs.
    pub fn reset(&self) {
        for counters in self.blocks.iter().filter_map(|b| b.counters.get()) {
            for c in counters.iter() {
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

    /// Every file has a counter of its own, whichever block and whichever
    /// extension it came with; reset sets them all to 0.
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

    /// A block is made only when a transfer asks for one of its counters:
    /// until then its files read 0, and a reset leaves it unmade.
    #[test]
    fn blocks_are_made_when_a_transfer_first_asks() {
        let c = Counters::new(3 * BLOCK);
        assert!(c.blocks.iter().all(|b| b.counters.get().is_none()));
        c.reset();
        assert_eq!(c.load(BLOCK + 5), 0);
        assert!(c.blocks.iter().all(|b| b.counters.get().is_none()));
        c.get(BLOCK + 5).unwrap().store(9);
        let made: Vec<bool> = c
            .blocks
            .iter()
            .map(|b| b.counters.get().is_some())
            .collect();
        assert_eq!(made, [false, true, false]);
        assert_eq!(c.load(BLOCK + 5), 9);
        assert_eq!(c.load(BLOCK + 6), 0);
        assert_eq!(c.load(5), 0);
    }

    /// A transfer's counter stays its own when files are added to the job.
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
