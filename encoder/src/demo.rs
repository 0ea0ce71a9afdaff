//! The embedded demo scene: a procedural, deterministic dynamic Gaussian scene (a spiral galaxy
//! with differential rotation around a pulsing core), so the demo needs no data files.

use glam::{Quat, Vec3};
use splatcast_protocol::GaussianFrame;
use splatcast_protocol::gaussian::{SH_C0, logit, sh_rest_count};

/// Small deterministic generator for the scene's random placement.
struct Lcg(u64);

impl Lcg {
    fn unit(&mut self) -> f32 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        ((self.0 >> 40) as f32) / (1u64 << 24) as f32
    }
}

/// Frame `t` (at `fps`) of a galaxy of `n` Gaussians with SH degree 1.
pub fn galaxy_frame(n: usize, t: usize, fps: f64) -> GaussianFrame {
    let time = t as f32 / fps as f32;
    let degree = 1;
    let k = sh_rest_count(degree);
    let mut rng = Lcg(0x5eed);
    let mut f = GaussianFrame::with_capacity(n, degree);
    for i in 0..n {
        let (u, v, w) = (rng.unit(), rng.unit(), rng.unit());
        let core = i % 5 == 0;
        let (position, color, size) = if core {
            // Pulsing core: a ball whose radius breathes.
            let r = 0.25 * u.cbrt() * (1.0 + 0.15 * (2.0 * time + 3.0 * v).sin());
            let (theta, phi) = (v * std::f32::consts::TAU, (2.0 * w - 1.0).acos());
            let p = Vec3::new(phi.sin() * theta.cos(), phi.cos(), phi.sin() * theta.sin()) * r;
            (p, Vec3::new(1.0, 0.85, 0.55), 0.02)
        } else {
            // Three spiral arms; inner stars orbit faster (differential rotation).
            let arm = (i % 3) as f32 * std::f32::consts::TAU / 3.0;
            let r = 0.3 + 1.7 * u;
            let angle = arm + 2.2 * r.ln() + 0.4 * (v - 0.5) + time * 0.6 / r;
            let height = 0.08 * (w - 0.5) * (2.0 - r * 0.5);
            let p = Vec3::new(r * angle.cos(), height, r * angle.sin());
            let c = Vec3::new(0.4 + 0.3 * u, 0.5 + 0.2 * v, 1.0 - 0.3 * u);
            (p, c, 0.012 + 0.01 * u)
        };
        f.positions.push(position);
        f.rotations
            .push(Quat::from_rotation_y(v * 6.0 + time * 0.5) * Quat::from_rotation_x(w));
        f.log_scales
            .push(Vec3::new(size, size * 0.6, size * 1.4).map(|s| s.ln()));
        let twinkle = 0.75 + 0.2 * (3.0 * time + 20.0 * u).sin();
        f.opacity_logits.push(logit(twinkle));
        f.sh_dc.push((color - Vec3::splat(0.5)) / SH_C0);
        f.sh_rest
            .extend((0..k).map(|c| Vec3::splat(0.05 * (c as f32 + 1.0) * (u - 0.5))));
    }
    f
}

/// Frame `t` of the galaxy as it stands at time 0, moved rigidly: turning about its axis at
/// `turn_rate` rad/s and drifting up and down. Every Gaussian moves every frame, coherently, as a
/// captured subject does between frames — the benchmark stream for playback, where the demo's
/// shearing spiral arms would measure a worst case instead. At 0.06 rad/s the rim of a
/// 100k-Gaussian galaxy moves less than the Gaussian spacing per frame at 30 fps; at 0.35 about
/// two spacings.
pub fn drifting_frame(n: usize, t: usize, fps: f64, turn_rate: f32) -> GaussianFrame {
    let time = t as f32 / fps as f32;
    let turn = Quat::from_rotation_y(turn_rate * time);
    let shift = Vec3::new(0.0, 0.5 * turn_rate * (0.8 * time).sin(), 0.0);
    let mut f = galaxy_frame(n, 0, fps);
    for p in &mut f.positions {
        *p = turn * *p + shift;
    }
    for q in &mut f.rotations {
        *q = (turn * *q).normalize();
    }
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_valid_deterministic_and_moving() {
        let a = galaxy_frame(500, 3, 30.0);
        assert_eq!(a.validate(), Ok(()));
        assert_eq!(a, galaxy_frame(500, 3, 30.0));
        let b = galaxy_frame(500, 4, 30.0);
        let moved = a
            .positions
            .iter()
            .zip(&b.positions)
            .filter(|(p, q)| p != q)
            .count();
        assert!(moved > 400);
    }
}
