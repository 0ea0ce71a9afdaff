//! The Gaussians training starts from: the dataset's sparse points when it has them (COLMAP),
//! otherwise points drawn inside the training cameras' frusta, at depths around where the
//! cameras look. Every Gaussian starts round, its size set by the spacing of its three nearest
//! neighbours (as 3DGS does), scaled by `init_scale`.

use std::collections::HashMap;

use glam::{DMat3, DVec3, Quat, Vec3};
use splatcast_protocol::GaussianFrame;
use splatcast_protocol::gaussian::{SH_C0, logit, sh_rest_count};
use splatcast_shaders::Camera;
use splatcast_shaders::synthetic::Rng;

/// The point the cameras look at (least squares over their optical axes) and their mean
/// distance to it: the scene's centre and scale when nothing else is known.
pub fn focus(cameras: &[Camera]) -> (DVec3, f64) {
    let mut a = DMat3::ZERO;
    let mut b = DVec3::ZERO;
    for c in cameras {
        let o = c.position();
        let d = c.rotation().transpose() * DVec3::Z;
        let m = DMat3::IDENTITY - DMat3::from_cols(d * d.x, d * d.y, d * d.z);
        a += m;
        b += m * o;
    }
    let centre = if a.determinant().abs() > 1e-9 {
        a.inverse() * b
    } else {
        // Parallel axes (or one camera): one unit in front of the mean camera.
        let n = cameras.len().max(1) as f64;
        let forward: DVec3 = cameras
            .iter()
            .map(|c| c.rotation().transpose() * DVec3::Z)
            .sum();
        cameras.iter().map(|c| c.position()).sum::<DVec3>() / n + forward.normalize_or_zero()
    };
    let distance = cameras
        .iter()
        .map(|c| c.position().distance(centre))
        .sum::<f64>()
        / cameras.len().max(1) as f64;
    (centre, distance.max(1e-6))
}

/// How the first Gaussians look.
#[derive(Clone, Copy, Debug)]
pub struct Start {
    /// How many.
    pub count: usize,
    /// Highest SH degree (the higher coefficients start at zero).
    pub sh_degree: u8,
    /// Opacity of every Gaussian.
    pub opacity: f32,
    /// Size as a fraction of the neighbour spacing.
    pub scale: f32,
}

/// `start.count` Gaussians on `points` (position, colour 0–255; repeated with jitter when there
/// are fewer than wanted), or inside the frusta of `cameras` when there are none.
pub fn initial(
    points: &[(DVec3, [u8; 3])],
    cameras: &[Camera],
    start: Start,
    rng: &mut Rng,
) -> GaussianFrame {
    let n = start.count;
    let (_, distance) = focus(cameras);
    let mut positions = Vec::with_capacity(n);
    let mut colours = Vec::with_capacity(n);
    for i in 0..n {
        if points.is_empty() {
            positions.push(in_frustum(
                &cameras[rng.below(cameras.len())],
                distance,
                rng,
            ));
            colours.push(Vec3::new(rng.unit(), rng.unit(), rng.unit()));
        } else {
            let (p, c) = points[i % points.len()];
            let jitter = if i < points.len() {
                DVec3::ZERO
            } else {
                (DVec3::new(rng.unit() as f64, rng.unit() as f64, rng.unit() as f64)
                    - DVec3::splat(0.5))
                    * (0.01 * distance)
            };
            positions.push(p + jitter);
            colours.push(Vec3::new(c[0] as f32, c[1] as f32, c[2] as f32) / 255.0);
        }
    }
    let spacing = neighbour_spacing(&positions);
    let k = sh_rest_count(start.sh_degree);
    let mut f = GaussianFrame::with_capacity(n, start.sh_degree);
    for ((p, colour), s) in positions.iter().zip(colours).zip(spacing) {
        f.positions.push(p.as_vec3());
        f.rotations.push(Quat::IDENTITY);
        let size = (s * start.scale as f64).max(1e-7 * distance);
        f.log_scales.push(Vec3::splat(size.ln() as f32));
        f.opacity_logits.push(logit(start.opacity));
        f.sh_dc.push((colour - Vec3::splat(0.5)) / SH_C0);
        f.sh_rest.extend(std::iter::repeat_n(Vec3::ZERO, k));
    }
    f
}

/// A point seen by `camera`: a uniform pixel, at a depth log-uniform between half and twice the
/// distance to where the cameras look.
fn in_frustum(camera: &Camera, distance: f64, rng: &mut Rng) -> DVec3 {
    let u = rng.unit() as f64 * camera.width as f64;
    let v = rng.unit() as f64 * camera.height as f64;
    let depth = distance * 2f64.powf(rng.range(-1.0, 1.0) as f64);
    let ray = DVec3::new(
        (u - camera.cx) / camera.fx,
        (v - camera.cy) / camera.fy,
        1.0,
    );
    camera.position() + camera.rotation().transpose() * (ray * depth)
}

/// For each point, the root mean square distance to its three nearest neighbours (through a
/// hash grid sized for a few points per cell; lonely points fall back to the cell size).
pub fn neighbour_spacing(points: &[DVec3]) -> Vec<f64> {
    const NEIGHBOURS: usize = 3;
    let Some(first) = points.first() else {
        return Vec::new();
    };
    let (lo, hi) = points
        .iter()
        .fold((*first, *first), |(lo, hi), p| (lo.min(*p), hi.max(*p)));
    let extent = (hi - lo).max(DVec3::splat(1e-9));
    let cell = (extent.x * extent.y * extent.z * 4.0 / points.len() as f64)
        .cbrt()
        .max(extent.max_element() * 1e-6);
    let key = |p: DVec3| ((p - lo) / cell).floor().as_ivec3();
    let mut grid: HashMap<glam::IVec3, Vec<u32>> = HashMap::new();
    for (i, p) in points.iter().enumerate() {
        grid.entry(key(*p)).or_default().push(i as u32);
    }
    points
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let mut best = [f64::INFINITY; NEIGHBOURS];
            let c = key(*p);
            for dz in -1..=1 {
                for dy in -1..=1 {
                    for dx in -1..=1 {
                        let Some(cell_points) = grid.get(&(c + glam::IVec3::new(dx, dy, dz)))
                        else {
                            continue;
                        };
                        for &j in cell_points {
                            if j as usize == i {
                                continue;
                            }
                            let d2 = p.distance_squared(points[j as usize]);
                            if d2 < best[NEIGHBOURS - 1] {
                                best[NEIGHBOURS - 1] = d2;
                                best.sort_by(f64::total_cmp);
                            }
                        }
                    }
                }
            }
            let known: Vec<f64> = best.into_iter().filter(|d| d.is_finite()).collect();
            if known.is_empty() {
                cell
            } else {
                (known.iter().sum::<f64>() / known.len() as f64).sqrt()
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spacing_of_a_lattice_is_its_pitch() {
        let mut points = Vec::new();
        for z in 0..10 {
            for y in 0..10 {
                for x in 0..10 {
                    points.push(DVec3::new(x as f64, y as f64, z as f64) * 0.5);
                }
            }
        }
        for s in neighbour_spacing(&points) {
            assert!((s - 0.5).abs() < 1e-9, "{s}");
        }
    }

    #[test]
    fn frustum_points_are_seen_by_their_camera() {
        let cameras = [
            Camera::look_at(
                DVec3::new(0.0, 0.0, -4.0),
                DVec3::ZERO,
                DVec3::Y,
                60.0,
                64,
                48,
            ),
            Camera::look_at(
                DVec3::new(4.0, 0.0, 0.0),
                DVec3::ZERO,
                DVec3::Y,
                60.0,
                64,
                48,
            ),
        ];
        let (centre, distance) = focus(&cameras);
        assert!(centre.length() < 1e-9 && (distance - 4.0).abs() < 1e-9);
        let mut rng = Rng::new(3);
        let f = initial(
            &[],
            &cameras,
            Start {
                count: 500,
                sh_degree: 1,
                opacity: 0.5,
                scale: 0.1,
            },
            &mut rng,
        );
        assert_eq!(f.len(), 500);
        let seen = |camera: &Camera, p: DVec3| {
            let t = camera.world_to_camera.transform_point3(p);
            let u = camera.fx * t.x / t.z + camera.cx;
            let v = camera.fy * t.y / t.z + camera.cy;
            (1.99..8.01).contains(&t.z) && (-1e-6..64.0).contains(&u) && (-1e-6..48.0).contains(&v)
        };
        for p in &f.positions {
            assert!(cameras.iter().any(|c| seen(c, p.as_dvec3())), "{p} unseen");
        }
        assert!(f.log_scales.iter().all(|s| s.is_finite()));
    }
}
