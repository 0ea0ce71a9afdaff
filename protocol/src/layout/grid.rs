//! Plane sizes and the 2D curve that lays a 1D order onto them.

/// Side of the blocks plane sizes are aligned to (AV1's smallest transform-friendly block).
pub const BLOCK: usize = 8;
/// Smallest plane side; keeps encoders away from degenerate frame sizes.
const MIN_SIDE: usize = 16;

/// Size of one attribute plane in pixels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Grid {
    /// Columns.
    pub width: usize,
    /// Rows.
    pub height: usize,
}

impl Grid {
    /// The smallest block-aligned grid holding `n` pixels with sides within a factor of two of
    /// each other, preferring the squarer of equal sizes.
    pub fn for_count(n: usize) -> Self {
        let n = n.max(1);
        let mut best: Option<Grid> = None;
        let side = (n as f64).sqrt().ceil() as usize;
        let lo = (side * 7 / 10).max(MIN_SIDE).div_ceil(BLOCK) * BLOCK;
        let hi = (side * 14 / 10).max(MIN_SIDE).div_ceil(BLOCK) * BLOCK;
        for width in (lo..=hi).step_by(BLOCK) {
            let height = n.div_ceil(width).max(MIN_SIDE).div_ceil(BLOCK) * BLOCK;
            let g = Grid { width, height };
            let better = match best {
                None => true,
                Some(b) => {
                    g.pixels() < b.pixels()
                        || (g.pixels() == b.pixels()
                            && g.width.abs_diff(g.height) < b.width.abs_diff(b.height))
                }
            };
            if better {
                best = Some(g);
            }
        }
        best.expect("the width range is never empty")
    }

    /// Pixels in the grid.
    pub fn pixels(&self) -> usize {
        self.width * self.height
    }

    /// Pixel indices (raster) in curve order: 8×8 blocks visited in a serpentine over block
    /// rows, each block in Z order (mirrored on leftward rows), so consecutive curve positions
    /// are never more than a block apart.
    pub fn curve(&self) -> Vec<usize> {
        let (bw, bh) = (self.width / BLOCK, self.height / BLOCK);
        let mut out = Vec::with_capacity(self.pixels());
        for by in 0..bh {
            for i in 0..bw {
                let bx = if by % 2 == 0 { i } else { bw - 1 - i };
                for z in 0..BLOCK * BLOCK {
                    let (dx, dy) = deinterleave(z);
                    let dx = if by % 2 == 0 { dx } else { BLOCK - 1 - dx };
                    out.push((by * BLOCK + dy) * self.width + bx * BLOCK + dx);
                }
            }
        }
        out
    }
}

fn deinterleave(z: usize) -> (usize, usize) {
    let (mut x, mut y) = (0, 0);
    for bit in 0..3 {
        x |= ((z >> (2 * bit)) & 1) << bit;
        y |= ((z >> (2 * bit + 1)) & 1) << bit;
    }
    (x, y)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grid_is_small_and_aligned() {
        let g = Grid::for_count(4225);
        assert_eq!(g.pixels(), 4480, "{g:?}");
        assert!(g.width.max(g.height) <= 2 * g.width.min(g.height));
        assert!(g.width.is_multiple_of(BLOCK) && g.height.is_multiple_of(BLOCK));
        let g = Grid::for_count(45_624);
        assert!(
            g.pixels() >= 45_624 && g.pixels() < 45_624 + 2 * 8 * 220,
            "{g:?}"
        );
        assert_eq!(
            Grid::for_count(1),
            Grid {
                width: 16,
                height: 16
            }
        );
    }

    #[test]
    fn curve_is_a_permutation_of_neighbours() {
        let g = Grid {
            width: 24,
            height: 16,
        };
        let c = g.curve();
        let mut s = c.clone();
        s.sort_unstable();
        assert!(s.iter().enumerate().all(|(i, &p)| i == p));
        for w in c.windows(2) {
            let (ax, ay) = (w[0] % 24, w[0] / 24);
            let (bx, by) = (w[1] % 24, w[1] / 24);
            assert!(ax.abs_diff(bx) <= 7 && ay.abs_diff(by) <= 7);
        }
    }
}
