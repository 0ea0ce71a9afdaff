//! The Gaussian frame model: one frame of N 3D Gaussians as structure-of-arrays.
//!
//! Values are stored in the parameterisation trainers optimise (log-scale, opacity logit, SH
//! coefficients), which is also what the Inria PLY layout stores, so readers and writers convert
//! only at their own boundaries.

use glam::{Quat, Vec3};

/// Zeroth-order spherical-harmonic basis constant: colour = 0.5 + SH_C0 * f_dc.
pub const SH_C0: f32 = 0.282_094_8;

/// Highest spherical-harmonic degree any format here carries.
pub const MAX_SH_DEGREE: u8 = 3;

/// Number of non-DC SH coefficients per colour channel for a degree (0, 3, 8 or 15).
pub const fn sh_rest_count(degree: u8) -> usize {
    let d = degree as usize;
    (d + 1) * (d + 1) - 1
}

/// SH degree whose rest-coefficient count per channel is `count`, if any.
pub fn sh_degree_for_rest(count: usize) -> Option<u8> {
    (0..=MAX_SH_DEGREE).find(|&d| sh_rest_count(d) == count)
}

/// One frame of 3D Gaussians.
///
/// Every per-Gaussian vector has the same length; `sh_rest` holds `sh_rest_count(sh_degree)`
/// RGB coefficients per Gaussian, coefficient-major (`sh_rest[i * K + k]`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct GaussianFrame {
    /// Centres in world units.
    pub positions: Vec<Vec3>,
    /// Orientations (not necessarily normalised, as trainers write them).
    pub rotations: Vec<Quat>,
    /// Natural log of the per-axis standard deviations.
    pub log_scales: Vec<Vec3>,
    /// Opacity before the sigmoid.
    pub opacity_logits: Vec<f32>,
    /// DC spherical-harmonic coefficient per colour channel.
    pub sh_dc: Vec<Vec3>,
    /// Higher-order SH coefficients, `sh_rest_count(sh_degree)` per Gaussian.
    pub sh_rest: Vec<Vec3>,
    /// Spherical-harmonic degree, 0 to 3.
    pub sh_degree: u8,
}

/// Why a frame is not a valid set of Gaussians.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum FrameError {
    /// Attribute vectors disagree in length.
    #[error("attribute arrays disagree in length ({0})")]
    Inconsistent(&'static str),
    /// A value is NaN or infinite.
    #[error("Gaussian {index} has a non-finite {attribute}")]
    NonFinite {
        /// Which Gaussian.
        index: usize,
        /// Which attribute.
        attribute: &'static str,
    },
    /// The SH degree is outside 0..=3.
    #[error("SH degree {0} is not supported (0 to 3)")]
    ShDegree(u8),
}

impl GaussianFrame {
    /// An empty frame with room for `n` Gaussians of the given SH degree.
    pub fn with_capacity(n: usize, sh_degree: u8) -> Self {
        Self {
            positions: Vec::with_capacity(n),
            rotations: Vec::with_capacity(n),
            log_scales: Vec::with_capacity(n),
            opacity_logits: Vec::with_capacity(n),
            sh_dc: Vec::with_capacity(n),
            sh_rest: Vec::with_capacity(n * sh_rest_count(sh_degree)),
            sh_degree,
        }
    }

    /// Number of Gaussians.
    pub fn len(&self) -> usize {
        self.positions.len()
    }

    /// True when the frame holds no Gaussian.
    pub fn is_empty(&self) -> bool {
        self.positions.is_empty()
    }

    /// Rest coefficients per Gaussian for this frame's degree.
    pub fn rest_per_gaussian(&self) -> usize {
        sh_rest_count(self.sh_degree)
    }

    /// Checks lengths, SH degree and that every value is finite.
    pub fn validate(&self) -> Result<(), FrameError> {
        self.validate_shape()?;
        for index in 0..self.len() {
            if let Some(attribute) = self.non_finite(index) {
                return Err(FrameError::NonFinite { index, attribute });
            }
        }
        Ok(())
    }

    /// Drops the Gaussians that hold a NaN or infinite value (real captures have a few) and
    /// says how many went; a frame whose arrays disagree is left for [`Self::validate`] to
    /// refuse.
    pub fn retain_finite(&mut self) -> usize {
        if self.validate_shape().is_err() {
            return 0;
        }
        let keep: Vec<bool> = (0..self.len())
            .map(|i| self.non_finite(i).is_none())
            .collect();
        let dropped = keep.iter().filter(|k| !**k).count();
        if dropped > 0 {
            fn filter<T>(values: &mut Vec<T>, keep: &[bool]) {
                let mut flags = keep.iter();
                values.retain(|_| *flags.next().unwrap_or(&false));
            }
            filter(&mut self.positions, &keep);
            filter(&mut self.rotations, &keep);
            filter(&mut self.log_scales, &keep);
            filter(&mut self.opacity_logits, &keep);
            filter(&mut self.sh_dc, &keep);
            let k = self.rest_per_gaussian();
            let expanded: Vec<bool> = keep
                .iter()
                .flat_map(|&k_| std::iter::repeat_n(k_, k))
                .collect();
            filter(&mut self.sh_rest, &expanded);
        }
        dropped
    }

    /// Array lengths against each other and the SH degree.
    fn validate_shape(&self) -> Result<(), FrameError> {
        if self.sh_degree > MAX_SH_DEGREE {
            return Err(FrameError::ShDegree(self.sh_degree));
        }
        let n = self.len();
        let lens = [
            (self.rotations.len(), "rotations"),
            (self.log_scales.len(), "scales"),
            (self.opacity_logits.len(), "opacities"),
            (self.sh_dc.len(), "sh_dc"),
        ];
        for (len, what) in lens {
            if len != n {
                return Err(FrameError::Inconsistent(what));
            }
        }
        if self.sh_rest.len() != n * self.rest_per_gaussian() {
            return Err(FrameError::Inconsistent("sh_rest"));
        }
        Ok(())
    }

    /// The first attribute of Gaussian `i` holding a NaN or infinite value.
    fn non_finite(&self, i: usize) -> Option<&'static str> {
        let k = self.rest_per_gaussian();
        let checks = [
            (self.positions[i].is_finite(), "position"),
            (self.rotations[i].is_finite(), "rotation"),
            (self.log_scales[i].is_finite(), "scale"),
            (self.opacity_logits[i].is_finite(), "opacity"),
            (self.sh_dc[i].is_finite(), "colour"),
            (
                self.sh_rest[i * k..(i + 1) * k]
                    .iter()
                    .all(|c| c.is_finite()),
                "SH coefficient",
            ),
        ];
        checks.iter().find(|(ok, _)| !ok).map(|(_, what)| *what)
    }

    /// Appends Gaussian `i` of `other` (same SH degree) to this frame.
    pub fn push_from(&mut self, other: &GaussianFrame, i: usize) {
        let k = other.rest_per_gaussian();
        self.positions.push(other.positions[i]);
        self.rotations.push(other.rotations[i]);
        self.log_scales.push(other.log_scales[i]);
        self.opacity_logits.push(other.opacity_logits[i]);
        self.sh_dc.push(other.sh_dc[i]);
        self.sh_rest
            .extend_from_slice(&other.sh_rest[i * k..(i + 1) * k]);
    }

    /// The frame with Gaussians taken in the order `order` (indices into `self`).
    pub fn permuted(&self, order: &[usize]) -> GaussianFrame {
        let mut out = GaussianFrame::with_capacity(order.len(), self.sh_degree);
        for &i in order {
            out.push_from(self, i);
        }
        out
    }

    /// Axis-aligned bounds of the centres, or `None` for an empty frame.
    pub fn bounds(&self) -> Option<(Vec3, Vec3)> {
        let first = *self.positions.first()?;
        Some(
            self.positions
                .iter()
                .fold((first, first), |(lo, hi), p| (lo.min(*p), hi.max(*p))),
        )
    }

    /// Largest side of the bounding box (1 for an empty or single-point frame), the unit in
    /// which position errors are reported.
    pub fn extent(&self) -> f32 {
        match self.bounds() {
            Some((lo, hi)) if (hi - lo).max_element() > 0.0 => (hi - lo).max_element(),
            _ => 1.0,
        }
    }
}

/// Logistic sigmoid, mapping an opacity logit to [0, 1].
pub fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

/// Inverse of [`sigmoid`], clamped so 0 and 1 stay finite.
pub fn logit(p: f32) -> f32 {
    let p = p.clamp(1e-6, 1.0 - 1e-6);
    (p / (1.0 - p)).ln()
}

/// Normalised quaternion with w ≥ 0 (q and -q are the same rotation); identity if degenerate.
pub fn canonical_rotation(q: Quat) -> Quat {
    let len = q.length();
    if !len.is_finite() || len < 1e-12 {
        return Quat::IDENTITY;
    }
    let q = q / len;
    if q.w < 0.0 { -q } else { q }
}

/// The four rotations that give a Gaussian the same covariance: an ellipsoid is symmetric under
/// a half turn about each of its own axes, so `q`, `q·x̂`, `q·ŷ`, `q·ẑ` (and their negatives)
/// all describe the same Gaussian.
pub fn equivalent_rotations(q: Quat) -> [Quat; 4] {
    [
        q,
        q * Quat::from_xyzw(1.0, 0.0, 0.0, 0.0),
        q * Quat::from_xyzw(0.0, 1.0, 0.0, 0.0),
        q * Quat::from_xyzw(0.0, 0.0, 1.0, 0.0),
    ]
}

/// A representative of the rotation's covariance class: of the equivalent rotations, the one
/// closest to identity (largest |w|), with w ≥ 0. Neighbours with similar shapes then get
/// similar quaternions, which keeps rotation planes smooth.
pub fn canonical_orientation(q: Quat) -> Quat {
    let q = canonical_rotation(q);
    let best = equivalent_rotations(q)
        .into_iter()
        .max_by(|a, b| a.w.abs().total_cmp(&b.w.abs()))
        .expect("four candidates");
    if best.w < 0.0 { -best } else { best }
}

/// The equivalent rotation of `q` (sign included) closest to `reference`, so a Gaussian's
/// quaternion changes smoothly over time.
pub fn closest_orientation(q: Quat, reference: Quat) -> Quat {
    let q = canonical_rotation(q);
    let best = equivalent_rotations(q)
        .into_iter()
        .max_by(|a, b| a.dot(reference).abs().total_cmp(&b.dot(reference).abs()))
        .expect("four candidates");
    if best.dot(reference) < 0.0 {
        -best
    } else {
        best
    }
}

/// Angle in degrees between the shapes two rotations give (the smallest over the equivalent
/// rotations): the rotation error that matters for rendering.
pub fn orientation_error_degrees(a: Quat, b: Quat) -> f64 {
    let a = canonical_rotation(a);
    let dot = closest_orientation(b, a).dot(a).abs().min(1.0) as f64;
    2.0 * dot.acos().to_degrees()
}

/// A robust centre and radius of a point set: the per-axis median, and the 90th percentile of
/// the distance to it (stray Gaussians far away do not push a camera out). Non-finite points
/// are ignored; an empty set gives the unit sphere.
pub fn robust_bounds(positions: impl Iterator<Item = Vec3>) -> (Vec3, f32) {
    let finite: Vec<Vec3> = positions.filter(|p| p.is_finite()).collect();
    if finite.is_empty() {
        return (Vec3::ZERO, 1.0);
    }
    let median = |axis: usize| {
        let mut v: Vec<f32> = finite.iter().map(|p| p[axis]).collect();
        let mid = v.len() / 2;
        *v.select_nth_unstable_by(mid, f32::total_cmp).1
    };
    let centre = Vec3::new(median(0), median(1), median(2));
    let mut d: Vec<f32> = finite.iter().map(|p| p.distance(centre)).collect();
    let at = (d.len() * 9 / 10).min(d.len() - 1);
    let radius = *d.select_nth_unstable_by(at, f32::total_cmp).1;
    (centre, if radius > 1e-6 { radius } else { 1.0 })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny() -> GaussianFrame {
        let mut f = GaussianFrame::with_capacity(2, 1);
        for i in 0..2 {
            f.positions.push(Vec3::splat(i as f32));
            f.rotations.push(Quat::IDENTITY);
            f.log_scales.push(Vec3::splat(-2.0));
            f.opacity_logits.push(0.5);
            f.sh_dc.push(Vec3::ONE);
            f.sh_rest.extend([Vec3::ZERO; 3]);
        }
        f
    }

    #[test]
    fn retain_finite_drops_whole_gaussians() {
        let mut f = GaussianFrame::with_capacity(3, 1);
        for i in 0..3 {
            let t = i as f32;
            f.positions.push(Vec3::splat(t));
            f.rotations.push(Quat::IDENTITY);
            f.log_scales.push(Vec3::splat(-t));
            f.opacity_logits.push(t);
            f.sh_dc.push(Vec3::splat(t));
            f.sh_rest
                .extend((0..3).map(|c| Vec3::splat(10.0 * t + c as f32)));
        }
        f.log_scales[1].y = f32::INFINITY;
        assert_eq!(f.retain_finite(), 1);
        f.validate().unwrap();
        assert_eq!(f.len(), 2);
        assert_eq!(f.positions[1], Vec3::splat(2.0));
        assert_eq!(f.sh_rest[3], Vec3::splat(20.0));
        assert_eq!(f.retain_finite(), 0);
    }

    #[test]
    fn validate_catches_nan_and_lengths() {
        let mut f = tiny();
        assert_eq!(f.validate(), Ok(()));
        f.log_scales[1].y = f32::NAN;
        assert_eq!(
            f.validate(),
            Err(FrameError::NonFinite {
                index: 1,
                attribute: "scale"
            })
        );
        let mut g = tiny();
        g.sh_rest.pop();
        assert_eq!(g.validate(), Err(FrameError::Inconsistent("sh_rest")));
    }

    #[test]
    fn sh_counts_and_logit_roundtrip() {
        assert_eq!(
            (0..=3).map(sh_rest_count).collect::<Vec<_>>(),
            vec![0, 3, 8, 15]
        );
        assert_eq!(sh_degree_for_rest(15), Some(3));
        assert_eq!(sh_degree_for_rest(4), None);
        for x in [-5.0f32, -0.3, 0.0, 2.0] {
            assert!((logit(sigmoid(x)) - x).abs() < 1e-4);
        }
        let q = canonical_rotation(Quat::from_xyzw(0.0, 0.0, 0.0, -2.0));
        assert_eq!(q, Quat::IDENTITY);
    }

    #[test]
    fn equivalent_rotations_share_the_covariance() {
        let q = Quat::from_euler(glam::EulerRot::XYZ, 0.3, -1.2, 2.0);
        let s = glam::Mat3::from_diagonal(Vec3::new(0.1, 0.5, 2.0));
        let cov = |r: Quat| {
            let m = glam::Mat3::from_quat(r) * s;
            m * m.transpose()
        };
        for r in equivalent_rotations(q) {
            assert!((cov(r) - cov(q)).abs_diff_eq(glam::Mat3::ZERO, 1e-5));
        }
        let c = canonical_orientation(q);
        assert!((cov(c) - cov(q)).abs_diff_eq(glam::Mat3::ZERO, 1e-5));
        assert!(c.w >= 0.5, "largest |w| of four is at least 1/2");
        assert!(orientation_error_degrees(q, -c) < 1e-2);
        assert!(
            (orientation_error_degrees(q, q * Quat::from_rotation_z(0.1)) - 0.1f64.to_degrees())
                .abs()
                < 0.05
        );
    }
}
