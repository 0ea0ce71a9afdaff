//! Attribute errors between two sequences of frames with the same Gaussians in the same order,
//! in natural units, before a renderer exists to measure image quality.

use splatcast_protocol::GaussianFrame;
use splatcast_protocol::gaussian::{SH_C0, orientation_error_degrees, sigmoid};

/// Root-mean-square errors per attribute over a sequence.
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
            let dp = (reference.positions[i] - decoded.positions[i]).length() as f64 / extent;
            self.position_max_rel = self.position_max_rel.max(dp);
            add(0, dp * dp, 1);
            let angle = orientation_error_degrees(reference.rotations[i], decoded.rotations[i]);
            add(1, angle * angle, 1);
            let ds = (reference.log_scales[i] - decoded.log_scales[i]).length_squared() as f64;
            add(2, ds, 3);
            let da =
                (sigmoid(reference.opacity_logits[i]) - sigmoid(decoded.opacity_logits[i])) as f64;
            add(3, da * da, 1);
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
