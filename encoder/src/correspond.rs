//! Keeping Gaussian identities across frames: when a writer reorders Gaussians between frames
//! (SOG sorts spatially every frame), match each Gaussian to the one it continues in the
//! previous frame, so one pixel layout serves the whole GOP and AV1's inter prediction works.

use glam::Vec3;
use rayon::prelude::*;
use splatcast_protocol::GaussianFrame;

/// Candidates considered per Gaussian before giving up on a one-to-one match.
const CANDIDATES: usize = 8;

/// How `next` lines up with `prev`.
#[derive(Clone, Debug, PartialEq)]
pub enum Correspondence {
    /// Same Gaussians, same order.
    Identity,
    /// Same Gaussians after reordering: `order[i]` is the index in `next` of prev's Gaussian `i`;
    /// `moved` counts those that are not at their own index.
    Reordered {
        /// Permutation into `next`.
        order: Vec<usize>,
        /// Gaussians whose index changed.
        moved: u32,
    },
    /// No reliable one-to-one match (or the counts differ): start a new GOP.
    None,
}

/// Uniform hash grid over points for nearest-neighbour queries.
struct Cells {
    origin: Vec3,
    size: f32,
    dims: [usize; 3],
    start: Vec<u32>,
    items: Vec<u32>,
}

impl Cells {
    fn new(points: &[Vec3]) -> Self {
        let (lo, hi) = points.iter().fold(
            (Vec3::splat(f32::MAX), Vec3::splat(f32::MIN)),
            |(l, h), p| (l.min(*p), h.max(*p)),
        );
        let extent = (hi - lo).max(Vec3::splat(1e-9));
        // About one point per cell for a volume, coarser for flat or sparse clouds: never more
        // than four cells per point, so building the grid stays linear in the point count.
        let n = points.len().max(1) as f32;
        let mut size = (extent.x * extent.y * extent.z / n)
            .cbrt()
            .max(extent.max_element() * 1e-6);
        let cells = |size: f32| ((extent / size).floor() + Vec3::ONE).to_array();
        while cells(size).iter().product::<f32>() > 4.0 * n + 64.0 {
            size *= 1.5;
        }
        let dims = cells(size).map(|d| d as usize);
        let cell_count = dims[0] * dims[1] * dims[2];
        let mut counts = vec![0u32; cell_count + 1];
        let cells: Vec<usize> = points
            .iter()
            .map(|p| Self::index(lo, size, dims, *p))
            .collect();
        cells.iter().for_each(|&c| counts[c + 1] += 1);
        for i in 1..counts.len() {
            counts[i] += counts[i - 1];
        }
        let mut fill = counts.clone();
        let mut items = vec![0u32; points.len()];
        for (i, &c) in cells.iter().enumerate() {
            items[fill[c] as usize] = i as u32;
            fill[c] += 1;
        }
        Self {
            origin: lo,
            size,
            dims,
            start: counts,
            items,
        }
    }

    fn coords(origin: Vec3, size: f32, dims: [usize; 3], p: Vec3) -> [usize; 3] {
        let c = ((p - origin) / size).floor();
        [0, 1, 2].map(|a| (c[a].max(0.0) as usize).min(dims[a] - 1))
    }

    fn index(origin: Vec3, size: f32, dims: [usize; 3], p: Vec3) -> usize {
        let c = Self::coords(origin, size, dims, p);
        (c[2] * dims[1] + c[1]) * dims[0] + c[0]
    }

    /// The `k` nearest points to `q` among the 3×3×3 cells around it, nearest first.
    fn nearest(&self, points: &[Vec3], q: Vec3, k: usize, out: &mut Vec<(f32, u32)>) {
        out.clear();
        let c = Self::coords(self.origin, self.size, self.dims, q);
        for z in c[2].saturating_sub(1)..=(c[2] + 1).min(self.dims[2] - 1) {
            for y in c[1].saturating_sub(1)..=(c[1] + 1).min(self.dims[1] - 1) {
                for x in c[0].saturating_sub(1)..=(c[0] + 1).min(self.dims[0] - 1) {
                    let cell = (z * self.dims[1] + y) * self.dims[0] + x;
                    for &i in &self.items[self.start[cell] as usize..self.start[cell + 1] as usize]
                    {
                        out.push((points[i as usize].distance_squared(q), i));
                    }
                }
            }
        }
        out.sort_unstable_by(|a, b| a.0.total_cmp(&b.0));
        out.truncate(k);
    }
}

/// Attribute differences that count as much as one spacing of position: colour (as displayed),
/// log-scale and opacity. Gaussians are matched on all of them, not on position alone, so a
/// fast-moving dense cloud is not rewired to whichever neighbour happens to be closest.
const COLOR_UNIT: f32 = 0.05;
const LOG_SCALE_UNIT: f32 = 0.3;
const OPACITY_UNIT: f32 = 0.1;
/// Matching replaces the input order only when it halves the total cost.
const REORDER_GAIN: f32 = 0.5;
/// A pairing is plausible when this share of its pairs costs less than `PLAUSIBLE_COST`.
const PLAUSIBLE_SHARE: f32 = 0.9;
const PLAUSIBLE_COST: f32 = 4.0;

/// Matching rounds after the first, each predicting where prev's Gaussians went from the last.
const MOTION_ROUNDS: usize = 2;

/// What a matching compares: prev's Gaussians at positions `from` (where they are predicted to
/// be in `next`) against `next`'s.
struct Pairing<'a> {
    prev: &'a GaussianFrame,
    next: &'a GaussianFrame,
    from: Vec<Vec3>,
    spacing: f32,
}

impl Pairing<'_> {
    /// Matching cost of prev Gaussian `i` continuing as next Gaussian `j`.
    fn cost(&self, i: usize, j: usize) -> f32 {
        self.from[i].distance_squared(self.next.positions[j]) / (self.spacing * self.spacing)
            + attribute_cost(self.prev, self.next, i, j)
    }
}

/// The colour, scale and opacity part of [`cost`].
fn attribute_cost(prev: &GaussianFrame, next: &GaussianFrame, i: usize, j: usize) -> f32 {
    use splatcast_protocol::gaussian::{SH_C0, sigmoid};
    let dc = ((prev.sh_dc[i] - next.sh_dc[j]) * (SH_C0 / COLOR_UNIT)).length_squared();
    let ds = ((prev.log_scales[i] - next.log_scales[j]) / LOG_SCALE_UNIT).length_squared();
    let da = ((sigmoid(prev.opacity_logits[i]) - sigmoid(next.opacity_logits[j])) / OPACITY_UNIT)
        .powi(2);
    dc + ds + da
}

/// The cost of keeping the input order, Gaussian by Gaussian, with each one's motion measured
/// against the mean motion of its nearest neighbours when that is smaller: a dense cloud that
/// moves coherently keeps its identities however far it moves per frame (it codes as smooth
/// displacement planes); a shuffle does not, since neighbours then move every which way.
fn identity_costs(prev: &GaussianFrame, next: &GaussianFrame, spacing: f32) -> Vec<f32> {
    let cells = Cells::new(&prev.positions);
    let mut found = Vec::new();
    (0..prev.len())
        .map(|i| {
            cells.nearest(
                &prev.positions,
                prev.positions[i],
                CANDIDATES + 1,
                &mut found,
            );
            let local = found
                .iter()
                .map(|&(_, j)| next.positions[j as usize] - prev.positions[j as usize])
                .sum::<Vec3>()
                / found.len().max(1) as f32;
            let own = next.positions[i] - prev.positions[i];
            let moved = own.length_squared().min((own - local).length_squared());
            moved / (spacing * spacing) + attribute_cost(prev, next, i, i)
        })
        .collect()
}

fn plausible(costs: impl Iterator<Item = f32>, n: usize) -> bool {
    costs.filter(|&c| c < PLAUSIBLE_COST).count() as f32 >= PLAUSIBLE_SHARE * n as f32
}

/// Median distance from a sample of Gaussians to their nearest other Gaussian.
fn typical_spacing(frame: &GaussianFrame) -> f32 {
    let cells = Cells::new(&frame.positions);
    let step = (frame.len() / 2000).max(1);
    let mut found = Vec::new();
    let mut d: Vec<f32> = frame
        .positions
        .iter()
        .step_by(step)
        .filter_map(|p| {
            cells.nearest(&frame.positions, *p, 2, &mut found);
            found.get(1).map(|(d, _)| d.sqrt())
        })
        .collect();
    d.sort_unstable_by(f32::total_cmp);
    d.get(d.len() / 2)
        .copied()
        .unwrap_or(1.0)
        .max(frame.extent() * 1e-4)
}

/// Lines `next` up with `prev`: keeps the input order when it is plausible, re-matches when a
/// one-to-one matching on position and attributes is much cheaper, gives up otherwise.
pub fn correspond(prev: &GaussianFrame, next: &GaussianFrame) -> Correspondence {
    let n = prev.len();
    if n != next.len() || n == 0 || prev.sh_degree != next.sh_degree {
        return Correspondence::None;
    }
    let spacing = typical_spacing(prev);
    let identity = identity_costs(prev, next, spacing);
    let identity_total: f32 = identity.iter().sum();
    if identity_total == 0.0 {
        return Correspondence::Identity;
    }
    let mut pairing = Pairing {
        prev,
        next,
        from: prev.positions.clone(),
        spacing,
    };
    let (mut order, mut total) = greedy_match(&pairing);
    let cells = Cells::new(&prev.positions);
    for _ in 0..MOTION_ROUNDS {
        pairing.from = predicted(prev, next, &order, &cells);
        (order, total) = greedy_match(&pairing);
    }
    let identity_ok = plausible(identity.iter().copied(), n);
    if total < REORDER_GAIN * identity_total || !identity_ok {
        let costs = order.iter().enumerate().map(|(i, &j)| pairing.cost(i, j));
        let moved = order.iter().enumerate().filter(|(i, j)| i != *j).count() as u32;
        match (plausible(costs, n), moved) {
            (false, _) => Correspondence::None,
            (true, 0) => Correspondence::Identity,
            (true, _) => Correspondence::Reordered { order, moved },
        }
    } else {
        Correspondence::Identity
    }
}

/// Below this many free Gaussians a matching round compares every pair, so it always finishes.
const EXHAUSTIVE: usize = 1024;

/// One-to-one matching, cheapest pair first: each prev Gaussian against its nearest candidates
/// in `next`; then, in rounds over the Gaussians still free, against the nearest free ones
/// (a conflict near a Gaussian leaves a free partner near it), so a shuffled cloud is matched
/// completely and locally. Returns the order and its total cost.
fn greedy_match(pairing: &Pairing) -> (Vec<usize>, f32) {
    let n = pairing.prev.len();
    let mut order = vec![usize::MAX; n];
    let mut taken = vec![false; n];
    let mut total = 0.0;
    loop {
        let free_prev: Vec<usize> = (0..n).filter(|&i| order[i] == usize::MAX).collect();
        if free_prev.is_empty() {
            break;
        }
        let free_next: Vec<usize> = (0..n).filter(|&j| !taken[j]).collect();
        let mut pairs = candidate_pairs(pairing, &free_prev, &free_next);
        pairs.par_sort_unstable_by(|a, b| a.0.total_cmp(&b.0));
        let mut progress = false;
        for (c, i, j) in pairs {
            let (i, j) = (i as usize, j as usize);
            if order[i] == usize::MAX && !taken[j] {
                order[i] = j;
                taken[j] = true;
                total += c;
                progress = true;
            }
        }
        if !progress {
            // No free Gaussian has a free one anywhere near: pair the rest as they come (the
            // plausibility check sees what they cost).
            for (i, j) in free_prev.into_iter().zip(free_next) {
                order[i] = j;
                total += pairing.cost(i, j);
            }
            break;
        }
    }
    (order, total)
}

/// Candidate pairs (cost, prev index, next index) between free Gaussians: every pair when few
/// are left, else each prev Gaussian's nearest free ones in `next`.
fn candidate_pairs(
    pairing: &Pairing,
    free_prev: &[usize],
    free_next: &[usize],
) -> Vec<(f32, u32, u32)> {
    let pair = |i: usize, j: usize| (pairing.cost(i, j), i as u32, j as u32);
    if free_prev.len() <= EXHAUSTIVE {
        return free_prev
            .iter()
            .flat_map(|&i| free_next.iter().map(move |&j| pair(i, j)))
            .collect();
    }
    let points: Vec<Vec3> = free_next
        .iter()
        .map(|&j| pairing.next.positions[j])
        .collect();
    let cells = Cells::new(&points);
    free_prev
        .par_iter()
        .map_init(
            || Vec::with_capacity(CANDIDATES),
            |found, &i| {
                cells.nearest(&points, pairing.from[i], CANDIDATES, found);
                found
                    .iter()
                    .map(|&(_, k)| pair(i, free_next[k as usize]))
                    .collect::<Vec<_>>()
            },
        )
        .flatten_iter()
        .collect()
}

/// Where prev's Gaussians are predicted to be in `next` given a matching: each one moved by the
/// per-axis median of the displacements of itself and its nearest neighbours, so a wrong pairing
/// (a swap with a neighbour) is outvoted by the coherent motion around it and the next round
/// compares Gaussians where they went, not where they were.
fn predicted(
    prev: &GaussianFrame,
    next: &GaussianFrame,
    order: &[usize],
    cells: &Cells,
) -> Vec<Vec3> {
    prev.positions
        .par_iter()
        .map_init(
            || (Vec::new(), Vec::with_capacity(CANDIDATES + 1)),
            |(found, axis), &p| {
                cells.nearest(&prev.positions, p, CANDIDATES + 1, found);
                let flow = |k: usize| next.positions[order[k]] - prev.positions[k];
                let median = Vec3::from_array([0, 1, 2].map(|c| {
                    axis.clear();
                    axis.extend(found.iter().map(|&(_, k)| flow(k as usize)[c]));
                    axis.sort_unstable_by(f32::total_cmp);
                    axis.get(axis.len() / 2).copied().unwrap_or(0.0)
                }));
                p + median
            },
        )
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use glam::Quat;

    fn cloud(n: usize, shift: f32) -> GaussianFrame {
        let mut f = GaussianFrame::with_capacity(n, 0);
        for i in 0..n {
            let p = Vec3::new((i % 17) as f32, (i / 17 % 13) as f32, (i / 221) as f32) * 0.1;
            f.positions.push(p + Vec3::splat(shift));
            f.rotations.push(Quat::IDENTITY);
            f.log_scales.push(Vec3::splat(-3.0));
            f.opacity_logits.push(0.0);
            f.sh_dc.push(Vec3::splat(i as f32));
        }
        f
    }

    #[test]
    fn recovers_a_shuffle_and_rejects_a_jump() {
        let prev = cloud(1000, 0.0);
        let next = cloud(1000, 0.003);
        assert_eq!(correspond(&prev, &next), Correspondence::Identity);
        let perm: Vec<usize> = (0..1000).map(|i| (i * 7919) % 1000).collect();
        let shuffled = next.permuted(&perm);
        match correspond(&prev, &shuffled) {
            Correspondence::Reordered { order, moved } => {
                assert!(moved > 900);
                assert_eq!(shuffled.permuted(&order), next);
            }
            other => panic!("{other:?}"),
        }
        // Fast motion of a whole cloud keeps the input order: re-matching would not pay.
        assert_eq!(
            correspond(&prev, &cloud(1000, 0.06)),
            Correspondence::Identity
        );
        // A dense cloud turning fast (its rim moves ~2.5 spacings a frame) keeps its order too.
        let turned = {
            let mut f = prev.clone();
            let centre = Vec3::new(0.8, 0.6, 0.2);
            let turn = Quat::from_rotation_z(0.3);
            f.positions
                .iter_mut()
                .for_each(|p| *p = centre + turn * (*p - centre));
            f
        };
        assert_eq!(correspond(&prev, &turned), Correspondence::Identity);
        // A different scene with the same count has no correspondence.
        let mut other = cloud(1000, 0.0);
        other.sh_dc.reverse();
        other
            .positions
            .iter_mut()
            .for_each(|p| *p = *p * 3.0 + Vec3::splat(5.0));
        assert_eq!(correspond(&prev, &other), Correspondence::None);
        assert_eq!(correspond(&prev, &cloud(999, 0.0)), Correspondence::None);
    }

    #[test]
    fn a_deforming_cloud_re_sorted_every_frame_is_matched_completely() {
        // A jittered lattice bending non-rigidly by up to 1.2 spacings, then shuffled: nearest
        // neighbours are often the wrong Gaussians and candidates conflict, so matching on
        // position alone pairs too many wrongly to be plausible (the first version found no
        // correspondence here); predicting each Gaussian's motion from its neighbours' matches
        // must recover nearly all identities, and leftovers must be paired, not given up on.
        let mut prev = cloud(4000, 0.0);
        for (i, p) in prev.positions.iter_mut().enumerate() {
            let h = (i as u32).wrapping_mul(2_654_435_761);
            *p += Vec3::new(
                (h & 255) as f32,
                (h >> 8 & 255) as f32,
                (h >> 16 & 255) as f32,
            ) / 255.0
                * 0.04;
        }
        let mut next = prev.clone();
        next.positions.iter_mut().for_each(|p| {
            *p += Vec3::new((p.y * 9.0).sin(), (p.z * 7.0).cos(), (p.x * 5.0).sin()) * 0.12
        });
        let perm: Vec<usize> = (0..4000).map(|i| (i * 7919 + 13) % 4000).collect();
        let shuffled = next.permuted(&perm);
        let Correspondence::Reordered { order, .. } = correspond(&prev, &shuffled) else {
            panic!("no correspondence");
        };
        let mut seen = vec![false; 4000];
        order.iter().for_each(|&j| seen[j] = true);
        assert!(seen.iter().all(|&s| s), "not one-to-one");
        let right = order
            .iter()
            .enumerate()
            .filter(|&(i, &j)| perm[j] == i)
            .count();
        assert!(right >= 3960, "{right} of 4000 matched to themselves");
    }
}
