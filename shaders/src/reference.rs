//! CPU reference renderer, in f64: exactly the math the WGSL kernels must reproduce.
//!
//! Per Gaussian: camera-space centre, EWA projection of the 3D covariance through the local
//! affine approximation of the pinhole (Zwicker et al.), a 0.3-pixel low-pass, and
//! view-dependent SH colour. The footprint is the 3σ ellipse, shrunk where opacity makes the
//! edge fall below 1/255 anyway; tiles are binned by the ellipse's tight bounding box. Per pixel:
//! Gaussians front to back by depth (f32 depth with the low 8 mantissa bits dropped, ties in
//! input order — the GPU's 24-bit sort key), α = min(0.99, opacity · exp(−½ dᵀ Σ⁻¹ d)), skipped
//! outside the 3σ ellipse or below 1/255, compositing stopped once transmittance would drop
//! below 1e-4.

use glam::{DMat3, DQuat, DVec2, DVec3};
use splatcast_protocol::GaussianFrame;
use splatcast_protocol::gaussian::sigmoid;

use crate::camera::{Camera, CameraError};
use crate::sh;

/// Gaussians closer to the camera plane than this (camera-space z) are not drawn.
pub const NEAR: f64 = 0.01;
/// Variance added to the projected covariance (pixels²): each splat covers at least a pixel.
pub const LOW_PASS: f64 = 0.3;
/// The Jacobian is evaluated at most this far outside the frustum (× the half field of view),
/// which keeps huge off-screen Gaussians from exploding.
pub const FRUSTUM_CLAMP: f64 = 1.3;
/// Splats whose screen variance exceeds this (pixels², σ = 10⁶ px) are culled: nothing real is
/// that large, and f32 determinants of such covariances overflow.
pub const MAX_VARIANCE: f64 = 1e12;
/// Pixels farther than this many σ from the centre are not touched.
pub const CUTOFF_SIGMA: f64 = 3.0;
/// Contributions below this alpha are skipped.
pub const MIN_ALPHA: f64 = 1.0 / 255.0;
/// Largest alpha of one splat.
pub const MAX_ALPHA: f64 = 0.99;
/// Compositing stops when transmittance would fall below this.
pub const MIN_TRANSMITTANCE: f64 = 1e-4;

/// One Gaussian after projection.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Splat {
    /// Centre in pixels.
    pub mean: DVec2,
    /// Inverse of the 2D covariance: (a, b, c) of [[a, b], [b, c]].
    pub conic: [f64; 3],
    /// Half-size of the footprint's bounding box in pixels (x, y).
    pub extent: DVec2,
    /// Camera-space depth.
    pub depth: f64,
    /// Opacity after the sigmoid.
    pub opacity: f64,
    /// View-dependent colour.
    pub color: DVec3,
}

/// A rendered image: colour over the background, accumulated alpha and expected depth.
#[derive(Clone, Debug, PartialEq)]
pub struct Image {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Linear RGB per pixel, raster order.
    pub rgb: Vec<DVec3>,
    /// Accumulated alpha (1 − final transmittance).
    pub alpha: Vec<f64>,
    /// Alpha-weighted depth (not normalised by alpha).
    pub depth: Vec<f64>,
}

/// Projects Gaussian `i` of `frame`; `None` if it is culled or degenerate.
pub fn project(frame: &GaussianFrame, i: usize, camera: &Camera) -> Option<Splat> {
    let p = frame.positions[i].as_dvec3();
    let t = camera.world_to_camera.transform_point3(p);
    if !t.is_finite() || t.z <= NEAR {
        return None;
    }
    let q = frame.rotations[i].as_dquat();
    let q = if q.length_squared() > 1e-24 && q.is_finite() {
        q.normalize()
    } else {
        DQuat::IDENTITY
    };
    let scale = frame.log_scales[i].as_dvec3().exp();
    let m = DMat3::from_quat(q) * DMat3::from_diagonal(scale);
    let sigma = m * m.transpose();

    let [lim_x, lim_y] = camera.frustum_limits();
    let tx = (t.x / t.z).clamp(-lim_x, lim_x) * t.z;
    let ty = (t.y / t.z).clamp(-lim_y, lim_y) * t.z;
    let j = DMat3::from_cols(
        DVec3::new(camera.fx / t.z, 0.0, 0.0),
        DVec3::new(0.0, camera.fy / t.z, 0.0),
        DVec3::new(
            -camera.fx * tx / (t.z * t.z),
            -camera.fy * ty / (t.z * t.z),
            0.0,
        ),
    );
    let t_mat = j * camera.rotation();
    let cov = t_mat * sigma * t_mat.transpose();
    let (a, b, c) = (
        cov.x_axis.x + LOW_PASS,
        cov.y_axis.x,
        cov.y_axis.y + LOW_PASS,
    );
    let det = a * c - b * b;
    if det <= 0.0 || !det.is_finite() || a > MAX_VARIANCE || c > MAX_VARIANCE {
        return None;
    }
    let opacity = sigmoid(frame.opacity_logits[i]) as f64;
    if opacity.is_nan() || opacity < MIN_ALPHA {
        return None;
    }
    // Beyond k σ even the peak opacity falls below 1/255.
    let k = CUTOFF_SIGMA.min((2.0 * (opacity / MIN_ALPHA).ln()).max(0.0).sqrt());
    let extent = DVec2::new(k * a.sqrt(), k * c.sqrt());
    let mean = DVec2::new(
        camera.fx * t.x / t.z + camera.cx,
        camera.fy * t.y / t.z + camera.cy,
    );
    let (w, h) = (camera.width as f64, camera.height as f64);
    if mean.x + extent.x < -0.5
        || mean.y + extent.y < -0.5
        || mean.x - extent.x > w - 0.5
        || mean.y - extent.y > h - 0.5
    {
        return None;
    }
    let k = frame.rest_per_gaussian();
    let rest: Vec<DVec3> = frame.sh_rest[i * k..(i + 1) * k]
        .iter()
        .map(|v| v.as_dvec3())
        .collect();
    let dir = (p - camera.position()).normalize_or_zero();
    let color = sh::color(frame.sh_dc[i].as_dvec3(), &rest, dir);
    let splat = Splat {
        mean,
        conic: [c / det, -b / det, a / det],
        extent,
        depth: t.z,
        opacity,
        color,
    };
    (splat.mean.is_finite() && splat.color.is_finite() && opacity.is_finite()).then_some(splat)
}

/// The depth sort key: f32 depth bits without the low 8 mantissa bits (positive depths order
/// like their bits; 24 bits sort in 6 radix passes instead of 8).
pub fn depth_key(depth: f64) -> u32 {
    (depth as f32).to_bits() >> 8
}

/// Renders `frame` from `camera` over `background`.
pub fn render(
    frame: &GaussianFrame,
    camera: &Camera,
    background: DVec3,
) -> Result<Image, CameraError> {
    camera.validate()?;
    let mut splats: Vec<Splat> = (0..frame.len())
        .filter_map(|i| project(frame, i, camera))
        .collect();
    splats.sort_by_key(|s| depth_key(s.depth));
    let (w, h) = (camera.width as usize, camera.height as usize);
    let mut image = Image {
        width: camera.width,
        height: camera.height,
        rgb: vec![DVec3::ZERO; w * h],
        alpha: vec![0.0; w * h],
        depth: vec![0.0; w * h],
    };
    let mut transmittance = vec![1.0f64; w * h];
    let mut done = vec![false; w * h];
    for s in &splats {
        let x0 = (s.mean.x - s.extent.x).floor().max(0.0) as usize;
        let y0 = (s.mean.y - s.extent.y).floor().max(0.0) as usize;
        let x1 = ((s.mean.x + s.extent.x).ceil().max(0.0) as usize).min(w - 1);
        let y1 = ((s.mean.y + s.extent.y).ceil().max(0.0) as usize).min(h - 1);
        for y in y0..=y1 {
            for x in x0..=x1 {
                let p = y * w + x;
                if done[p] {
                    continue;
                }
                let d = DVec2::new(x as f64, y as f64) - s.mean;
                let power = -0.5 * (s.conic[0] * d.x * d.x + s.conic[2] * d.y * d.y)
                    - s.conic[1] * d.x * d.y;
                if !(-0.5 * CUTOFF_SIGMA * CUTOFF_SIGMA..=0.0).contains(&power) {
                    continue;
                }
                let alpha = (s.opacity * power.exp()).min(MAX_ALPHA);
                if alpha < MIN_ALPHA {
                    continue;
                }
                let next = transmittance[p] * (1.0 - alpha);
                if next < MIN_TRANSMITTANCE {
                    done[p] = true;
                    continue;
                }
                let weight = alpha * transmittance[p];
                image.rgb[p] += s.color * weight;
                image.depth[p] += s.depth * weight;
                transmittance[p] = next;
            }
        }
    }
    for (p, t) in transmittance.iter().enumerate() {
        image.rgb[p] += background * *t;
        image.alpha[p] = 1.0 - t;
    }
    Ok(image)
}

#[cfg(test)]
mod tests {
    use super::*;
    use glam::{Quat, Vec3};
    use splatcast_protocol::gaussian::{SH_C0, logit};

    fn one(
        position: Vec3,
        log_scale: Vec3,
        rotation: Quat,
        color: Vec3,
        opacity: f32,
    ) -> GaussianFrame {
        let mut f = GaussianFrame::with_capacity(1, 0);
        f.positions.push(position);
        f.rotations.push(rotation);
        f.log_scales.push(log_scale);
        f.opacity_logits.push(logit(opacity));
        f.sh_dc.push((color - Vec3::splat(0.5)) / SH_C0);
        f
    }

    fn camera() -> Camera {
        Camera::look_at(
            DVec3::new(0.0, 0.0, -4.0),
            DVec3::ZERO,
            DVec3::NEG_Y,
            40.0,
            33,
            33,
        )
    }

    #[test]
    fn centred_gaussian_peaks_at_the_principal_point_and_is_symmetric() {
        let f = one(
            Vec3::ZERO,
            Vec3::splat(-2.0),
            Quat::IDENTITY,
            Vec3::new(1.0, 0.2, 0.0),
            0.8,
        );
        let img = render(&f, &camera(), DVec3::ZERO).unwrap();
        let at = |x: usize, y: usize| img.rgb[y * 33 + x];
        let centre = at(16, 16);
        assert!(
            (img.alpha[16 * 33 + 16] - 0.8).abs() < 0.01,
            "{}",
            img.alpha[16 * 33 + 16]
        );
        assert!((centre.x - 0.8).abs() < 0.01 && (centre.y - 0.16).abs() < 0.01);
        for (dx, dy) in [(3usize, 0usize), (0, 5), (4, 4)] {
            let a = at(16 + dx, 16 + dy);
            let b = at(16 - dx, 16 - dy);
            assert!((a - b).length() < 1e-12 && a.x < centre.x);
        }
        assert_eq!(img.alpha[0], 0.0, "corners stay background");
    }

    #[test]
    fn nearer_gaussian_occludes() {
        let mut f = one(
            Vec3::new(0.0, 0.0, 1.0),
            Vec3::splat(-1.0),
            Quat::IDENTITY,
            Vec3::new(0.0, 0.0, 1.0),
            0.99,
        );
        let near = one(
            Vec3::new(0.0, 0.0, -1.0),
            Vec3::splat(-1.0),
            Quat::IDENTITY,
            Vec3::new(1.0, 0.0, 0.0),
            0.99,
        );
        f.push_from(&near, 0);
        let c = render(&f, &camera(), DVec3::ZERO).unwrap().rgb[16 * 33 + 16];
        assert!(c.x > 0.95 && c.z < 0.05, "{c:?}");
    }

    #[test]
    fn anisotropic_gaussian_is_elongated_along_its_axis() {
        // Long along world x, rotated 90° about the view axis: long along image y.
        let f = one(
            Vec3::ZERO,
            Vec3::new(-0.5, -3.0, -3.0),
            Quat::from_rotation_z(std::f32::consts::FRAC_PI_2),
            Vec3::ONE,
            0.9,
        );
        let img = render(&f, &camera(), DVec3::ZERO).unwrap();
        assert!(img.alpha[26 * 33 + 16] > 0.1 && img.alpha[16 * 33 + 26] < 0.01);
    }

    #[test]
    fn degenerate_gaussians_and_cameras() {
        let mut f = one(
            Vec3::ZERO,
            Vec3::splat(-40.0),
            Quat::from_xyzw(0.0, 0.0, 0.0, 0.0),
            Vec3::ONE,
            1.0,
        );
        let huge = one(
            Vec3::ZERO,
            Vec3::splat(30.0),
            Quat::from_xyzw(3.0, 0.0, 0.0, 1.0),
            Vec3::ONE,
            0.5,
        );
        let behind = one(
            Vec3::new(0.0, 0.0, -10.0),
            Vec3::ZERO,
            Quat::IDENTITY,
            Vec3::ONE,
            1.0,
        );
        f.push_from(&huge, 0);
        f.push_from(&behind, 0);
        let img = render(&f, &camera(), DVec3::splat(0.25)).unwrap();
        assert!(img.rgb.iter().all(|c| c.is_finite()) && img.alpha.iter().all(|a| a.is_finite()));
        let mut bad = camera();
        bad.fx = f64::NAN;
        assert_eq!(render(&f, &bad, DVec3::ZERO), Err(CameraError::Intrinsics));
    }
}
