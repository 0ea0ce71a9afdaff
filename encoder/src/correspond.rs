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

/// A k-d tree over points for nearest-neighbour queries: exact whatever the density, so a
/// galaxy's dense core and its sparse rim cost the same per query (a uniform grid sized for one
/// of them is slow for the other).
struct KdTree {
    /// The points in tree order: each node's points are a contiguous range, halved per level.
    points: Vec<Vec3>,
    /// Input index of each point in tree order.
    index: Vec<u32>,
    /// Split axis and value of inner node `i` (children `2i + 1`, `2i + 2`), heap-ordered.
    splits: Vec<(u8, f32)>,
}

/// Points per leaf: scanned linearly.
const LEAF: usize = 8;

impl KdTree {
    fn new(points: &[Vec3]) -> Self {
        let mut tree = Self {
            points: Vec::new(),
            index: Vec::new(),
            splits: Vec::new(),
        };
        let mut order: Vec<(Vec3, u32)> = points.iter().copied().zip(0..).collect();
        tree.build(&mut order, 0);
        (tree.points, tree.index) = order.into_iter().unzip();
        tree
    }

    /// Splits `range` at its median along its widest axis, recursively (median splits keep the
    /// tree balanced, so node ranges follow from halving alone).
    fn build(&mut self, range: &mut [(Vec3, u32)], node: usize) {
        if range.len() <= LEAF {
            return;
        }
        let (lo, hi) = range.iter().fold(
            (Vec3::splat(f32::MAX), Vec3::splat(f32::MIN)),
            |(l, h), (p, _)| (l.min(*p), h.max(*p)),
        );
        let axis = (hi - lo).max_position();
        let mid = range.len() / 2;
        range.select_nth_unstable_by(mid, |a, b| a.0[axis].total_cmp(&b.0[axis]));
        if self.splits.len() <= node {
            self.splits.resize(node + 1, (0, 0.0));
        }
        self.splits[node] = (axis as u8, range[mid].0[axis]);
        let (left, right) = range.split_at_mut(mid);
        self.build(left, 2 * node + 1);
        self.build(right, 2 * node + 2);
    }

    /// The `k` nearest points to `q` as (squared distance, input index), nearest first.
    fn nearest(&self, q: Vec3, k: usize, out: &mut Vec<(f32, u32)>) {
        out.clear();
        if k > 0 {
            self.search(0, 0, self.points.len(), q, k, out);
        }
    }

    fn search(
        &self,
        node: usize,
        lo: usize,
        hi: usize,
        q: Vec3,
        k: usize,
        out: &mut Vec<(f32, u32)>,
    ) {
        if hi - lo <= LEAF {
            for t in lo..hi {
                let d = self.points[t].distance_squared(q);
                if out.len() == k {
                    if d >= out[k - 1].0 {
                        continue;
                    }
                    out.pop();
                }
                let at = out.partition_point(|&(e, _)| e <= d);
                out.insert(at, (d, self.index[t]));
            }
            return;
        }
        let (axis, split) = self.splits[node];
        let mid = lo + (hi - lo) / 2;
        let gap = q[axis as usize] - split;
        let near_first = [(2 * node + 1, lo, mid), (2 * node + 2, mid, hi)];
        let [first, second] = if gap < 0.0 {
            near_first
        } else {
            [near_first[1], near_first[0]]
        };
        self.search(first.0, first.1, first.2, q, k, out);
        if out.len() < k || gap * gap < out[k - 1].0 {
            self.search(second.0, second.1, second.2, q, k, out);
        }
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
fn identity_costs(
    prev: &GaussianFrame,
    next: &GaussianFrame,
    near: &Neighbourhoods,
    spacing: f32,
) -> Vec<f32> {
    (0..prev.len())
        .into_par_iter()
        .map(|i| {
            let found = near.of(i);
            let local = found
                .iter()
                .map(|&j| next.positions[j as usize] - prev.positions[j as usize])
                .sum::<Vec3>()
                / found.len().max(1) as f32;
            let own = next.positions[i] - prev.positions[i];
            let moved = own.length_squared().min((own - local).length_squared());
            moved / (spacing * spacing) + attribute_cost(prev, next, i, i)
        })
        .collect()
}

/// Each Gaussian's nearest Gaussians in its own frame (itself included), found once per frame
/// pair: the identity costs and every motion prediction look at the same neighbourhoods.
struct Neighbourhoods {
    stride: usize,
    index: Vec<u32>,
}

impl Neighbourhoods {
    fn new(tree: &KdTree, points: &[Vec3]) -> Self {
        let stride = (CANDIDATES + 1).min(points.len());
        let index = points
            .par_iter()
            .map_init(Vec::new, |found, &p| {
                tree.nearest(p, stride, found);
                found.iter().map(|&(_, j)| j).collect::<Vec<_>>()
            })
            .flatten_iter()
            .collect();
        Self { stride, index }
    }

    fn of(&self, i: usize) -> &[u32] {
        &self.index[i * self.stride..(i + 1) * self.stride]
    }
}

fn plausible(costs: impl Iterator<Item = f32>, n: usize) -> bool {
    costs.filter(|&c| c < PLAUSIBLE_COST).count() as f32 >= PLAUSIBLE_SHARE * n as f32
}

/// Median distance from a sample of Gaussians to their nearest other Gaussian.
fn typical_spacing(frame: &GaussianFrame, tree: &KdTree) -> f32 {
    let step = (frame.len() / 2000).max(1);
    let mut found = Vec::new();
    let mut d: Vec<f32> = frame
        .positions
        .iter()
        .step_by(step)
        .filter_map(|p| {
            tree.nearest(*p, 2, &mut found);
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
///
/// When the input order is plausible for most Gaussians (a writer that keeps identities), only
/// the few it does not explain are re-matched, among themselves: the common case costs one
/// neighbour query per Gaussian instead of a whole matching.
pub fn correspond(prev: &GaussianFrame, next: &GaussianFrame) -> Correspondence {
    let n = prev.len();
    if n != next.len() || n == 0 || prev.sh_degree != next.sh_degree {
        return Correspondence::None;
    }
    let tree = KdTree::new(&prev.positions);
    let spacing = typical_spacing(prev, &tree);
    let near = Neighbourhoods::new(&tree, &prev.positions);
    let identity = identity_costs(prev, next, &near, spacing);
    if identity.iter().sum::<f32>() == 0.0 {
        return Correspondence::Identity;
    }
    let mut pairing = Pairing {
        prev,
        next,
        from: prev.positions.clone(),
        spacing,
    };
    let identity_ok = plausible(identity.iter().copied(), n);
    if identity_ok {
        // Where each Gaussian goes if the input order holds, from the motion around it.
        let in_place: Vec<usize> = (0..n).collect();
        pairing.from = predicted(prev, next, &in_place, &near);
        let suspect = unsettled(&pairing, &identity);
        let count = suspect.iter().filter(|&&s| s).count();
        if count == 0 {
            return Correspondence::Identity;
        }
        if count as f32 <= UNSETTLED_SHARE * n as f32 {
            let (order, total) = greedy_match(&pairing, &suspect);
            let before: f32 = (0..n).filter(|&i| suspect[i]).map(|i| identity[i]).sum();
            if total >= REORDER_GAIN * before {
                return Correspondence::Identity;
            }
            return settle(&pairing, order);
        }
        pairing.from = prev.positions.clone();
    }
    let everyone = vec![true; n];
    let (mut order, mut total) = greedy_match(&pairing, &everyone);
    for _ in 0..MOTION_ROUNDS {
        pairing.from = predicted(prev, next, &order, &near);
        (order, total) = greedy_match(&pairing, &everyone);
    }
    if identity_ok && total >= REORDER_GAIN * identity.iter().sum::<f32>() {
        return Correspondence::Identity;
    }
    settle(&pairing, order)
}

/// The verdict on a matching: plausible or not, and whether it moves anyone.
fn settle(pairing: &Pairing, order: Vec<usize>) -> Correspondence {
    let n = order.len();
    let costs = order.iter().enumerate().map(|(i, &j)| pairing.cost(i, j));
    let moved = order.iter().enumerate().filter(|(i, j)| i != *j).count() as u32;
    match (plausible(costs, n), moved) {
        (false, _) => Correspondence::None,
        (true, 0) => Correspondence::Identity,
        (true, _) => Correspondence::Reordered { order, moved },
    }
}

/// Re-matching only the unsettled Gaussians is trusted when they are at most this share.
const UNSETTLED_SHARE: f32 = 0.01;

/// Gaussians whose input order is in doubt: costly to keep, or with a cheaper partner than
/// their own index among the nearest Gaussians of `next` to where they are predicted to be. A
/// writer that keeps identities leaves almost none; one that re-sorts spatially leaves many
/// (neighbours swap indices), and then the whole frame is matched.
fn unsettled(pairing: &Pairing, identity: &[f32]) -> Vec<bool> {
    let tree = KdTree::new(&pairing.next.positions);
    (0..identity.len())
        .into_par_iter()
        .map_init(Vec::new, |found, i| {
            if identity[i] >= PLAUSIBLE_COST {
                return true;
            }
            tree.nearest(pairing.from[i], CANDIDATES, found);
            let own = pairing.cost(i, i);
            !found.iter().any(|&(_, j)| j as usize == i)
                || found
                    .iter()
                    .any(|&(_, j)| pairing.cost(i, j as usize) < own)
        })
        .collect()
}

/// Below this many free Gaussians a matching round compares every pair, so it always finishes.
const EXHAUSTIVE: usize = 1024;

/// One-to-one matching, cheapest pair first: each prev Gaussian against its nearest candidates
/// in `next`; then, in rounds over the Gaussians still free, against the nearest free ones
/// (a conflict near a Gaussian leaves a free partner near it), so a shuffled cloud is matched
/// completely and locally. Gaussians not in `open` keep their index. Returns the order and the
/// total cost of the open ones' pairs.
fn greedy_match(pairing: &Pairing, open: &[bool]) -> (Vec<usize>, f32) {
    let n = pairing.prev.len();
    let mut order: Vec<usize> = (0..n)
        .map(|i| if open[i] { usize::MAX } else { i })
        .collect();
    let mut taken: Vec<bool> = open.iter().map(|&o| !o).collect();
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
    let tree = KdTree::new(&points);
    free_prev
        .par_iter()
        .map_init(
            || Vec::with_capacity(CANDIDATES),
            |found, &i| {
                tree.nearest(pairing.from[i], CANDIDATES, found);
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
    near: &Neighbourhoods,
) -> Vec<Vec3> {
    prev.positions
        .par_iter()
        .enumerate()
        .map_init(
            || Vec::with_capacity(CANDIDATES + 1),
            |axis, (i, &p)| {
                let flow = |k: usize| next.positions[order[k]] - prev.positions[k];
                let median = Vec3::from_array([0, 1, 2].map(|c| {
                    axis.clear();
                    axis.extend(near.of(i).iter().map(|&k| flow(k as usize)[c]));
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
    fn a_few_swapped_gaussians_are_rematched_and_the_rest_keep_their_index() {
        let prev = cloud(2000, 0.0);
        let next = cloud(2000, 0.004);
        let mut perm: Vec<usize> = (0..2000).collect();
        for k in 0..10 {
            perm.swap(k * 97, 1999 - k * 131);
        }
        let swapped = next.permuted(&perm);
        match correspond(&prev, &swapped) {
            Correspondence::Reordered { order, moved } => {
                assert_eq!(moved, 20);
                assert_eq!(swapped.permuted(&order), next);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn neighbours_swapping_indices_under_small_motion_are_matched_not_kept() {
        // Like a spatially re-sorted writer (SOG): neighbours trade indices while the cloud
        // moves a fraction of a spacing, so keeping the input order looks cheap (each Gaussian
        // lands one spacing off, among look-alikes) but is wrong for most of them.
        let mut prev = cloud(3978, 0.0);
        for i in 0..prev.len() {
            prev.sh_dc[i] = prev.positions[i] * 0.1;
        }
        let mut next = prev.clone();
        next.positions
            .iter_mut()
            .for_each(|p| *p += Vec3::new((p.y * 9.0).sin(), (p.z * 7.0).cos(), 0.0) * 0.02);
        // Pairs of x-neighbours in each row of 17 trade places (the last of a row stays): 234 rows.
        let perm: Vec<usize> = (0..3978)
            .map(|i| match i % 17 {
                16 => i,
                x => i - x + (x ^ 1),
            })
            .collect();
        let swapped = next.permuted(&perm);
        let Correspondence::Reordered { order, .. } = correspond(&prev, &swapped) else {
            panic!("kept the input order");
        };
        let right = order
            .iter()
            .enumerate()
            .filter(|&(i, &j)| perm[j] == i)
            .count();
        assert!(right >= 3940, "{right} of 3978 matched to themselves");
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
