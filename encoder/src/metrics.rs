//! Attribute errors between two sequences of frames with the same Gaussians in the same order,
//! in natural units, before a renderer exists to measure image quality.
//!
//! Only Gaussians the renderer can show (reference opacity ≥ 1/255) count, except for opacity
//! itself, which counts every Gaussian: the codec's ranges follow visible Gaussians and clamp
//! transparent ones, whose other values then change without any pixel changing.

use splatcast_protocol::GaussianFrame;
use splatcast_protocol::gaussian::{SH_C0, orientation_error_degrees, sigmoid};

/// Opacity below which a Gaussian adds less than half a level to an 8-bit pixel: invisible.
const VISIBLE: f32 = 1.0 / 255.0;

/// Root-mean-square errors per attribute over a sequence (see the module note on which
/// Gaussians count).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct AttributeErrors {
    /// Position RMSE divided by the reference's bounding-box extent.
    pub position_rel: f64,
    /// Largest position error divided by the extent.
    pub position_max_rel: f64,
    /// Rotation RMSE in degrees, between the shapes (rotations that give the same covariance
    /// count as equal).
    pub rotation_deg: f64,
    /// Log-scale RMSE (natural-log units).
    pub log_scale: f64,
    /// Opacity RMSE after the sigmoid, in [0, 1].
    pub opacity: f64,
    /// DC colour RMSE as displayed colour (SH_C0 · Δf_dc), in [0, 1].
    pub color: f64,
    /// Higher-order SH RMSE (coefficient units).
    pub sh_rest: f64,
}

/// Accumulates squared errors frame by frame.
#[derive(Default)]
pub struct ErrorAccumulator {
    sums: [f64; 6],
    counts: [u64; 6],
    position_max_rel: f64,
}

impl ErrorAccumulator {
    /// Adds one frame pair (same length and order).
    pub fn add(&mut self, reference: &GaussianFrame, decoded: &GaussianFrame) {
        let extent = reference.extent() as f64;
        let mut add = |slot: usize, sq: f64, n: u64| {
            self.sums[slot] += sq;
            self.counts[slot] += n;
        };
        let k = reference.rest_per_gaussian();
        for i in 0..reference.len().min(decoded.len()) {
            let da =
                (sigmoid(reference.opacity_logits[i]) - sigmoid(decoded.opacity_logits[i])) as f64;
            add(3, da * da, 1);
            if sigmoid(reference.opacity_logits[i]) < VISIBLE {
                continue;
            }
            let dp = (reference.positions[i] - decoded.positions[i]).length() as f64 / extent;
            self.position_max_rel = self.position_max_rel.max(dp);
            add(0, dp * dp, 1);
            let angle = orientation_error_degrees(reference.rotations[i], decoded.rotations[i]);
            add(1, angle * angle, 1);
            let ds = (reference.log_scales[i] - decoded.log_scales[i]).length_squared() as f64;
            add(2, ds, 3);
            let dc = ((reference.sh_dc[i] - decoded.sh_dc[i]) * SH_C0).length_squared() as f64;
            add(4, dc, 3);
            if k > 0 && decoded.sh_rest.len() == reference.sh_rest.len() {
                let d: f64 = (0..k)
                    .map(|c| {
                        (reference.sh_rest[i * k + c] - decoded.sh_rest[i * k + c]).length_squared()
                            as f64
                    })
                    .sum();
                add(5, d, 3 * k as u64);
            }
        }
    }

    /// The errors so far.
    pub fn finish(&self) -> AttributeErrors {
        let rms = |i: usize| {
            if self.counts[i] == 0 {
                0.0
            } else {
                (self.sums[i] / self.counts[i] as f64).sqrt()
            }
        };
        AttributeErrors {
            position_rel: rms(0),
            position_max_rel: self.position_max_rel,
            rotation_deg: rms(1),
            log_scale: rms(2),
            opacity: rms(3),
            color: rms(4),
            sh_rest: rms(5),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use glam::{Quat, Vec3};
    use splatcast_protocol::gaussian::logit;

    use super::*;

    /// A frame of unit Gaussians at x = 0, 1, 2, … with these opacities.
    pub(crate) fn frame(opacities: &[f32]) -> GaussianFrame {
        let mut f = GaussianFrame::with_capacity(opacities.len(), 0);
        for (i, &o) in opacities.iter().enumerate() {
            f.positions.push(Vec3::new(i as f32, 0.0, 0.0));
            f.rotations.push(Quat::IDENTITY);
            f.log_scales.push(Vec3::ZERO);
            f.opacity_logits.push(logit(o));
            f.sh_dc.push(Vec3::ZERO);
        }
        f
    }

    #[test]
    fn transparent_gaussians_count_only_for_opacity() {
        let reference = frame(&[0.9, 0.9, 0.001]);
        let mut decoded = reference.clone();
        // The transparent one is clamped far away and made slightly less transparent.
        decoded.positions[2] = Vec3::splat(1e3);
        decoded.log_scales[2] = Vec3::splat(5.0);
        decoded.opacity_logits[2] = logit(0.003);
        let mut acc = ErrorAccumulator::default();
        acc.add(&reference, &decoded);
        let e = acc.finish();
        assert_eq!(
            (e.position_rel, e.position_max_rel, e.log_scale),
            (0.0, 0.0, 0.0)
        );
        assert!(
            e.opacity > 1e-3,
            "opacity counts every Gaussian: {}",
            e.opacity
        );
        // A visible Gaussian's error does count.
        decoded.positions[0].x += 0.2;
        let mut acc = ErrorAccumulator::default();
        acc.add(&reference, &decoded);
        assert!(acc.finish().position_max_rel > 0.09);
    }
}
