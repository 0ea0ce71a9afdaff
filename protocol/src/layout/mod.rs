//! Where each Gaussian lives in the attribute planes of a group of pictures.
//!
//! One pixel per Gaussian, fixed for the whole GOP, on the smallest block-aligned grid that fits.
//! Gaussians are ordered along a 3D Morton curve, laid onto the grid along a 2D curve that keeps
//! curve neighbours adjacent, then refined with PLAS-style local reassignments so that every
//! attribute plane is smooth — which is what lets AV1's intra tools work on them.

mod grid;
mod plas;

pub use grid::Grid;
pub use plas::refine;

use glam::Vec3;

/// Pixel assignment of a GOP: which Gaussian (by index into the keyframe) sits in each pixel.
#[derive(Clone, Debug, PartialEq)]
pub struct Layout {
    /// The plane size.
    pub grid: Grid,
    /// For each pixel in raster order, the Gaussian there, or `None` for padding.
    pub slots: Vec<Option<u32>>,
}

impl Layout {
    /// Gaussian indices in raster order of their pixels: the order decoders produce.
    pub fn coded_order(&self) -> Vec<usize> {
        self.slots.iter().flatten().map(|&g| g as usize).collect()
    }

    /// Occupancy bitmap, one bit per pixel in raster order (LSB first), as side data stores it.
    pub fn occupancy(&self) -> Vec<u8> {
        let mut bits = vec![0u8; self.slots.len().div_ceil(8)];
        for (i, s) in self.slots.iter().enumerate() {
            if s.is_some() {
                bits[i / 8] |= 1 << (i % 8);
            }
        }
        bits
    }

    /// For each pixel, the nearest occupied pixel in raster order (itself when occupied), used
    /// to fill padding with neighbouring values so padding costs no bits.
    pub fn padding_source(&self) -> Vec<usize> {
        let mut src = vec![0usize; self.slots.len()];
        let mut last = self.slots.iter().position(Option::is_some).unwrap_or(0);
        for (i, s) in self.slots.iter().enumerate() {
            if s.is_some() {
                last = i;
            }
            src[i] = last;
        }
        src
    }
}

/// Builds the layout of a keyframe on `grid` (which must hold every Gaussian): Morton order,
/// laid along the grid's curve, then refined on `features` (row-major,
/// `features.len() / positions.len()` values per Gaussian, normalised so one unit means the same
/// everywhere).
pub fn build(positions: &[Vec3], features: &[f32], grid: Grid, refine_passes: usize) -> Layout {
    assert!(
        grid.pixels() >= positions.len(),
        "grid too small for the GOP"
    );
    let order = morton_order(positions);
    let curve = grid.curve();
    let mut slots = vec![None; grid.pixels()];
    for (&g, &pixel) in order.iter().zip(&curve) {
        slots[pixel] = Some(g as u32);
    }
    let mut layout = Layout { grid, slots };
    refine(&mut layout, features, refine_passes);
    layout
}

/// Indices of `positions` sorted by their 3D Morton code over the bounding box.
pub fn morton_order(positions: &[Vec3]) -> Vec<usize> {
    let Some(first) = positions.first() else {
        return Vec::new();
    };
    let (lo, hi) = positions
        .iter()
        .fold((*first, *first), |(l, h), p| (l.min(*p), h.max(*p)));
    let scale = (hi - lo).max(Vec3::splat(1e-12)).recip() * 1023.0;
    let mut keyed: Vec<(u32, usize)> = positions
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let q = ((*p - lo) * scale)
                .round()
                .clamp(Vec3::ZERO, Vec3::splat(1023.0));
            (morton3(q.x as u32, q.y as u32, q.z as u32), i)
        })
        .collect();
    keyed.sort_unstable();
    keyed.into_iter().map(|(_, i)| i).collect()
}

/// Interleaves three 10-bit coordinates.
fn morton3(x: u32, y: u32, z: u32) -> u32 {
    fn spread(mut v: u32) -> u32 {
        v &= 0x3ff;
        v = (v | (v << 16)) & 0x0300_00ff;
        v = (v | (v << 8)) & 0x0300_f00f;
        v = (v | (v << 4)) & 0x030c_30c3;
        (v | (v << 2)) & 0x0924_9249
    }
    spread(x) | (spread(y) << 1) | (spread(z) << 2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn morton_interleaves() {
        assert_eq!(morton3(1, 0, 0), 1);
        assert_eq!(morton3(0, 1, 0), 2);
        assert_eq!(morton3(0, 0, 1), 4);
        assert_eq!(morton3(3, 0, 0), 0b1001);
    }

    #[test]
    fn layout_places_every_gaussian_once() {
        let positions: Vec<Vec3> = (0..1000)
            .map(|i| Vec3::new((i % 10) as f32, (i / 10 % 10) as f32, (i / 100) as f32))
            .collect();
        let features: Vec<f32> = positions.iter().flat_map(|p| p.to_array()).collect();
        let layout = build(&positions, &features, Grid::for_count(1000), 2);
        let mut seen = layout.coded_order();
        assert_eq!(seen.len(), 1000);
        seen.sort_unstable();
        assert!(seen.iter().enumerate().all(|(i, &g)| i == g));
        let ones: u32 = layout.occupancy().iter().map(|b| b.count_ones()).sum();
        assert_eq!(ones, 1000);
    }
}
