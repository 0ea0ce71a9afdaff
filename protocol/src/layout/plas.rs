//! PLAS-style refinement (after Parallel Linear Assignment Sorting, used by Self-Organizing
//! Gaussians and PlayCanvas SOG): repeatedly blur the feature image and, inside small random
//! groups of pixels, reassign Gaussians to the pixels whose blurred target they match best.
//! Coarse radii untangle large structures, fine radii smooth local detail.

use super::Layout;

/// Blur radii, coarse to fine. The Morton curve already orders the large scale; measured on
/// random correlated clouds, wider radii only add noise that the fine passes must undo.
const RADII: [usize; 3] = [4, 2, 1];
/// Pixels per reassignment group: 4 gives 24 permutations to try exhaustively.
const GROUP: usize = 4;

/// Refines `layout` in place so neighbouring pixels hold Gaussians with similar `features`
/// (`features.len() / gaussian_count` values per Gaussian). Deterministic.
pub fn refine(layout: &mut Layout, features: &[f32], passes_per_radius: usize) {
    let n = layout.slots.iter().flatten().count();
    if n < 2 || passes_per_radius == 0 {
        return;
    }
    let dims = features.len() / n;
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    let perms = permutations();
    let (w, h) = (layout.grid.width, layout.grid.height);
    for &radius in RADII.iter().filter(|&&r| r * 2 <= w.max(h)) {
        for _ in 0..passes_per_radius {
            let target = blurred(layout, features, dims, radius);
            let tile = (2 * radius).max(2);
            let (ox, oy) = (rng.below(tile), rng.below(tile));
            let mut members = Vec::with_capacity(tile * tile);
            for ty in (0..h + tile).step_by(tile) {
                for tx in (0..w + tile).step_by(tile) {
                    members.clear();
                    for y in ty.saturating_sub(oy)..(ty + tile).saturating_sub(oy).min(h) {
                        for x in tx.saturating_sub(ox)..(tx + tile).saturating_sub(ox).min(w) {
                            let p = y * w + x;
                            if layout.slots[p].is_some() {
                                members.push(p);
                            }
                        }
                    }
                    rng.shuffle(&mut members);
                    for group in members.chunks_exact(GROUP) {
                        reassign(layout, features, dims, &target, group, &perms);
                    }
                }
            }
        }
    }
}

/// Puts the group's Gaussians on the group's pixels in the order closest to the targets.
fn reassign(
    layout: &mut Layout,
    features: &[f32],
    dims: usize,
    target: &[f32],
    group: &[usize],
    perms: &[[usize; GROUP]],
) {
    let gaussians: Vec<u32> = group
        .iter()
        .map(|&p| layout.slots[p].expect("occupied"))
        .collect();
    let mut cost = [[0.0f32; GROUP]; GROUP];
    for (a, &g) in gaussians.iter().enumerate() {
        let f = &features[g as usize * dims..(g as usize + 1) * dims];
        for (b, &p) in group.iter().enumerate() {
            let t = &target[p * dims..(p + 1) * dims];
            cost[a][b] = f.iter().zip(t).map(|(x, y)| (x - y) * (x - y)).sum();
        }
    }
    let total = |perm: &[usize; GROUP]| (0..GROUP).map(|a| cost[a][perm[a]]).sum::<f32>();
    let best = perms
        .iter()
        .min_by(|a, b| total(a).total_cmp(&total(b)))
        .expect("24 permutations");
    for (a, &g) in gaussians.iter().enumerate() {
        layout.slots[group[best[a]]] = Some(g);
    }
}

/// Box-blurred feature image over occupied pixels (separable running sums).
fn blurred(layout: &Layout, features: &[f32], dims: usize, radius: usize) -> Vec<f32> {
    let (w, h) = (layout.grid.width, layout.grid.height);
    let stride = dims + 1; // features plus an occupancy weight
    let mut img = vec![0.0f32; w * h * stride];
    for (p, slot) in layout.slots.iter().enumerate() {
        if let Some(g) = slot {
            let g = *g as usize;
            img[p * stride..p * stride + dims].copy_from_slice(&features[g * dims..(g + 1) * dims]);
            img[p * stride + dims] = 1.0;
        }
    }
    let horizontal = box_pass(&img, w, h, stride, radius, true);
    let both = box_pass(&horizontal, w, h, stride, radius, false);
    let mut out = vec![0.0f32; w * h * dims];
    for p in 0..w * h {
        let weight = both[p * stride + dims].max(1e-6);
        for d in 0..dims {
            out[p * dims + d] = both[p * stride + d] / weight;
        }
    }
    out
}

fn box_pass(img: &[f32], w: usize, h: usize, stride: usize, r: usize, along_x: bool) -> Vec<f32> {
    let mut out = vec![0.0f32; img.len()];
    let (lines, len) = if along_x { (h, w) } else { (w, h) };
    let at = |line: usize, i: usize| if along_x { line * w + i } else { i * w + line };
    let mut acc = vec![0.0f32; stride];
    for line in 0..lines {
        acc.iter_mut().for_each(|a| *a = 0.0);
        for i in 0..r.min(len) {
            let p = at(line, i) * stride;
            acc.iter_mut()
                .zip(&img[p..p + stride])
                .for_each(|(a, v)| *a += v);
        }
        for i in 0..len {
            if i + r < len {
                let p = at(line, i + r) * stride;
                acc.iter_mut()
                    .zip(&img[p..p + stride])
                    .for_each(|(a, v)| *a += v);
            }
            if i > r {
                let p = at(line, i - r - 1) * stride;
                acc.iter_mut()
                    .zip(&img[p..p + stride])
                    .for_each(|(a, v)| *a -= v);
            }
            let o = at(line, i) * stride;
            out[o..o + stride].copy_from_slice(&acc);
        }
    }
    out
}

fn permutations() -> Vec<[usize; GROUP]> {
    let mut out = Vec::with_capacity(24);
    for a in 0..4 {
        for b in 0..4 {
            for c in 0..4 {
                let d = 6usize.wrapping_sub(a + b + c);
                if a != b && b != c && a != c && d < 4 && d != a && d != b && d != c {
                    out.push([a, b, c, d]);
                }
            }
        }
    }
    out
}

/// Small deterministic generator: layouts must not depend on the run.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            let j = self.below(i + 1);
            v.swap(i, j);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Grid, build};
    use super::*;
    use glam::Vec3;

    /// Sum of squared feature differences between horizontally and vertically adjacent pixels.
    fn roughness(layout: &Layout, features: &[f32], dims: usize) -> f32 {
        let Grid {
            width: w,
            height: h,
        } = layout.grid;
        let f = |p: usize| {
            layout.slots[p].map(|g| &features[g as usize * dims..(g as usize + 1) * dims])
        };
        let mut sum = 0.0;
        for y in 0..h {
            for x in 0..w {
                for q in [
                    (x + 1 < w).then(|| y * w + x + 1),
                    (y + 1 < h).then(|| (y + 1) * w + x),
                ] {
                    if let (Some(a), Some(b)) = (f(y * w + x), q.and_then(f)) {
                        sum += a.iter().zip(b).map(|(u, v)| (u - v) * (u - v)).sum::<f32>();
                    }
                }
            }
        }
        sum
    }

    #[test]
    fn refinement_smooths_planes() {
        let mut rng = XorShift(7);
        let n = 3000;
        let positions: Vec<Vec3> = (0..n)
            .map(|_| {
                Vec3::new(
                    rng.below(1000) as f32,
                    rng.below(1000) as f32,
                    rng.below(1000) as f32,
                ) / 1000.0
            })
            .collect();
        // Colour correlates with position plus noise, like real scenes.
        let features: Vec<f32> = positions
            .iter()
            .flat_map(|p| [p.x, p.y, p.z, p.x * p.y + rng.below(100) as f32 / 500.0])
            .collect();
        let grid = Grid::for_count(n);
        let morton_only = build(&positions, &features, grid, 0);
        let refined = build(&positions, &features, grid, 4);
        let (a, b) = (
            roughness(&morton_only, &features, 4),
            roughness(&refined, &features, 4),
        );
        assert!(b < 0.6 * a, "refined {b} vs Morton {a}");
        assert_eq!(permutations().len(), 24);
    }
}
