//! Generated scenes and the deterministic random source behind them (benchmarks, tests,
//! initialisation): same seed, same Gaussians, on every machine.

use glam::{DVec3, Quat, Vec3};
use splatcast_protocol::GaussianFrame;

/// A small, fast, deterministic random source (xorshift64); not for anything secret.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator for `seed` (any value; zero is remapped).
    pub fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 40) as f32 / (1u64 << 24) as f32
    }

    /// Uniform in [lo, hi).
    pub fn range(&mut self, lo: f32, hi: f32) -> f32 {
        lo + (hi - lo) * self.unit()
    }

    /// Uniform index below `n` (0 when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        ((self.unit() as f64 * n as f64) as usize).min(n.saturating_sub(1))
    }
}

/// A ball of `n` Gaussians with SH degree 3, sized so the screen coverage per Gaussian stays
/// similar as `n` grows (σ ∝ n^(-1/3)): about 9 tiles per Gaussian at 1080p for 100k.
pub fn cloud(n: usize) -> GaussianFrame {
    let mut rng = Rng::new(1);
    let mut next = move || rng.unit();
    let sigma = (0.015 * (1e5 / n as f64).cbrt()).ln() as f32;
    let mut f = GaussianFrame::with_capacity(n, 3);
    while f.len() < n {
        let p = Vec3::new(next(), next(), next()) * 2.0 - Vec3::ONE;
        if p.length() > 1.0 {
            continue;
        }
        f.positions.push(p);
        f.rotations.push(
            Quat::from_xyzw(next() - 0.5, next() - 0.5, next() - 0.5, next() - 0.5).normalize(),
        );
        f.log_scales
            .push(Vec3::new(next(), next(), next()) * 1.0 - Vec3::splat(0.5 - sigma));
        f.opacity_logits.push(next() * 6.0 - 2.0);
        f.sh_dc
            .push(Vec3::new(next(), next(), next()) * 3.0 - Vec3::splat(1.5));
        for _ in 0..15 {
            f.sh_rest
                .push((Vec3::new(next(), next(), next()) - Vec3::splat(0.5)) * 0.2);
        }
    }
    f
}

/// The benchmarks' camera framing of a scene: the mean position and the 90th percentile of the
/// distance to it.
pub fn framing(frame: &GaussianFrame) -> (DVec3, f64) {
    let n = frame.len().max(1) as f64;
    let centre = frame.positions.iter().map(|p| p.as_dvec3()).sum::<DVec3>() / n;
    let mut d: Vec<f64> = frame
        .positions
        .iter()
        .map(|p| p.as_dvec3().distance(centre))
        .collect();
    d.sort_by(f64::total_cmp);
    (
        centre,
        d.get(d.len() * 9 / 10).copied().unwrap_or(1.0).max(1e-3),
    )
}
