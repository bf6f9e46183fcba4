//! How the driver divides one (jc, pc) block of a product between tasks
//! (see `driver`): whole MR tiles of rows, and where rows are too few,
//! ranges of B panels as well.

/// How the rows and B panels of one (jc, pc) block are divided into tasks.
///
/// Rows are cut into `m_blocks` near-equal blocks of whole MR tiles, at most
/// MC rows each; the count is rounded up to a multiple of the thread count
/// so every thread gets equal work. If there are too few rows for that (a
/// short, wide product), the B panels are split across threads as well.
pub(crate) struct Split {
    m: usize,
    rows_per_block: usize,
    m_blocks: usize,
    npanels: usize,
    n_splits: usize,
}

impl Split {
    pub(crate) fn new(m: usize, npanels: usize, mr: usize, mc: usize, threads: usize) -> Split {
        let tiles = m.div_ceil(mr);
        let mut m_blocks = m.div_ceil(mc).next_multiple_of(threads).min(tiles);
        let rows_per_block = tiles.div_ceil(m_blocks) * mr;
        m_blocks = m.div_ceil(rows_per_block);
        let n_splits = if m_blocks.is_multiple_of(threads) { 1 } else { threads.min(npanels) };
        Split { m, rows_per_block, m_blocks, npanels, n_splits }
    }

    pub(crate) fn tasks(&self) -> usize {
        self.m_blocks * self.n_splits
    }

    /// Task `t`'s rows of C and its range of B panels.
    pub(crate) fn task(&self, t: usize) -> (std::ops::Range<usize>, std::ops::Range<usize>) {
        let (mi, ni) = (t / self.n_splits, t % self.n_splits);
        let r0 = mi * self.rows_per_block;
        let rows = r0..(r0 + self.rows_per_block).min(self.m);
        let per = self.npanels.div_ceil(self.n_splits);
        let panels = (ni * per).min(self.npanels)..((ni + 1) * per).min(self.npanels);
        (rows, panels)
    }
}

#[cfg(test)]
mod tests {
    use super::Split;

    /// Every (row, B panel) pair of the block belongs to exactly one task,
    /// row blocks are whole MR tiles (but the last), and there are at least
    /// as many tasks as threads whenever there is work enough to share.
    #[test]
    fn tasks_cover_the_block_once() {
        for (m, npanels, mr, mc, threads) in
            [(512, 32, 8, 336, 2), (254, 96, 8, 336, 2), (5, 12, 8, 336, 2), (1, 1, 8, 336, 4), (1000, 3, 6, 192, 3)]
        {
            let split = Split::new(m, npanels, mr, mc, threads);
            let mut seen = vec![0u32; m * npanels];
            for t in 0..split.tasks() {
                let (rows, panels) = split.task(t);
                assert!(rows.start.is_multiple_of(mr) && (rows.end == m || rows.end.is_multiple_of(mr)));
                for i in rows {
                    for q in panels.clone() {
                        seen[i * npanels + q] += 1;
                    }
                }
            }
            assert!(seen.iter().all(|&n| n == 1), "m={m} panels={npanels} threads={threads}");
            if m.div_ceil(mr) >= threads {
                assert!(split.tasks() >= threads, "m={m} panels={npanels} threads={threads}");
            }
        }
    }
}
