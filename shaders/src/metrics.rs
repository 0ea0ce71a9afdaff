//! Image quality metrics on linear RGB images in [0, 1]: PSNR and SSIM with the usual 11×11
//! Gaussian window (σ = 1.5, C1 = 0.01², C2 = 0.03²), as 3DGS papers report them. This is also the
//! CPU reference for the trainer's fused SSIM kernel.

/// SSIM window radius (11×11 window).
const RADIUS: usize = 5;
/// SSIM window standard deviation.
const SIGMA: f64 = 1.5;
const C1: f64 = 0.01 * 0.01;
const C2: f64 = 0.03 * 0.03;

/// Mean squared error over all channels of two equally sized RGB images (values clamped to [0, 1]).
pub fn mse(a: &[[f32; 3]], b: &[[f32; 3]]) -> f64 {
    assert_eq!(a.len(), b.len(), "images differ in size");
    let sum: f64 = a
        .iter()
        .zip(b)
        .flat_map(|(p, q)| {
            p.iter()
                .zip(q)
                .map(|(x, y)| (clamp(*x) - clamp(*y)).powi(2))
        })
        .sum();
    sum / (3 * a.len().max(1)) as f64
}

/// PSNR in dB for peak 1; identical images give 100 dB rather than infinity.
pub fn psnr(a: &[[f32; 3]], b: &[[f32; 3]]) -> f64 {
    psnr_from_mse(mse(a, b))
}

/// PSNR in dB of a mean squared error (capped at 100 dB).
pub fn psnr_from_mse(mse: f64) -> f64 {
    if mse <= 1e-10 {
        100.0
    } else {
        -10.0 * mse.log10()
    }
}

fn clamp(v: f32) -> f64 {
    if v.is_nan() {
        0.0
    } else {
        v.clamp(0.0, 1.0) as f64
    }
}

fn window() -> [f64; 2 * RADIUS + 1] {
    let mut w = [0.0; 2 * RADIUS + 1];
    for (i, v) in w.iter_mut().enumerate() {
        let d = i as f64 - RADIUS as f64;
        *v = (-d * d / (2.0 * SIGMA * SIGMA)).exp();
    }
    let sum: f64 = w.iter().sum();
    w.map(|v| v / sum)
}

/// Separable Gaussian filter with the window renormalised at the borders ("same" size output).
fn blur(src: &[f64], width: usize, height: usize, w: &[f64]) -> Vec<f64> {
    let r = RADIUS as isize;
    let pass = |src: &[f64], horizontal: bool| -> Vec<f64> {
        let mut out = vec![0.0; src.len()];
        for y in 0..height {
            for x in 0..width {
                let (mut acc, mut norm) = (0.0, 0.0);
                for k in -r..=r {
                    let (sx, sy) = if horizontal {
                        (x as isize + k, y as isize)
                    } else {
                        (x as isize, y as isize + k)
                    };
                    if sx < 0 || sy < 0 || sx >= width as isize || sy >= height as isize {
                        continue;
                    }
                    let wk = w[(k + r) as usize];
                    acc += wk * src[sy as usize * width + sx as usize];
                    norm += wk;
                }
                out[y * width + x] = acc / norm;
            }
        }
        out
    };
    pass(&pass(src, true), false)
}

/// Mean SSIM over pixels and the three channels.
pub fn ssim(a: &[[f32; 3]], b: &[[f32; 3]], width: usize, height: usize) -> f64 {
    assert_eq!(a.len(), width * height, "image a size");
    assert_eq!(b.len(), width * height, "image b size");
    if a.is_empty() {
        return 1.0;
    }
    let w = window();
    let mut total = 0.0;
    for c in 0..3 {
        let x: Vec<f64> = a.iter().map(|p| clamp(p[c])).collect();
        let y: Vec<f64> = b.iter().map(|p| clamp(p[c])).collect();
        let product =
            |p: &[f64], q: &[f64]| -> Vec<f64> { p.iter().zip(q).map(|(u, v)| u * v).collect() };
        let mx = blur(&x, width, height, &w);
        let my = blur(&y, width, height, &w);
        let sxx = blur(&product(&x, &x), width, height, &w);
        let syy = blur(&product(&y, &y), width, height, &w);
        let sxy = blur(&product(&x, &y), width, height, &w);
        for i in 0..x.len() {
            let (vx, vy, cxy) = (
                sxx[i] - mx[i] * mx[i],
                syy[i] - my[i] * my[i],
                sxy[i] - mx[i] * my[i],
            );
            total += ((2.0 * mx[i] * my[i] + C1) * (2.0 * cxy + C2))
                / ((mx[i] * mx[i] + my[i] * my[i] + C1) * (vx + vy + C2));
        }
    }
    total / (3 * a.len()) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn noise(n: usize, seed: u32) -> Vec<[f32; 3]> {
        let mut s = seed;
        (0..n)
            .map(|_| {
                std::array::from_fn(|_| {
                    s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                    (s >> 8) as f32 / (1u32 << 24) as f32
                })
            })
            .collect()
    }

    #[test]
    fn identical_images_score_perfectly_and_noise_does_not() {
        let a = noise(32 * 24, 1);
        assert_eq!(psnr(&a, &a), 100.0);
        assert!((ssim(&a, &a, 32, 24) - 1.0).abs() < 1e-12);
        let b = noise(32 * 24, 2);
        assert!(ssim(&a, &b, 32, 24) < 0.1);
        assert!(psnr(&a, &b) < 10.0);
    }

    #[test]
    fn psnr_of_a_known_offset() {
        let a = vec![[0.5f32; 3]; 100];
        let b = vec![[0.6f32; 3]; 100];
        assert!((psnr(&a, &b) - 20.0).abs() < 1e-4);
        // A constant offset keeps structure: SSIM drops only through the luminance term.
        let s = ssim(&a, &b, 10, 10);
        let want = (2.0 * 0.5 * 0.6 + C1) / (0.25 + 0.36 + C1);
        assert!((s - want).abs() < 1e-5, "{s} vs {want}");
    }
}
