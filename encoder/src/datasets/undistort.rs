//! OpenCV's radial-tangential lens model (k1, k2, p1, p2): the largest all-valid pinhole view of
//! the same size (`getOptimalNewCameraMatrix` with alpha 0) and resampling photos onto it, so the
//! trainer's pinhole renderer sees what the lens saw.

use glam::DVec2;
use splatcast_shaders::Camera;

use super::RgbImage;

/// k1, k2, p1, p2.
pub type Distortion = [f64; 4];

/// Normalised undistorted coordinates → distorted ones.
pub fn distort(p: DVec2, d: Distortion) -> DVec2 {
    let [k1, k2, p1, p2] = d;
    let r2 = p.length_squared();
    let radial = 1.0 + k1 * r2 + k2 * r2 * r2;
    DVec2::new(
        p.x * radial + 2.0 * p1 * p.x * p.y + p2 * (r2 + 2.0 * p.x * p.x),
        p.y * radial + p1 * (r2 + 2.0 * p.y * p.y) + 2.0 * p2 * p.x * p.y,
    )
}

/// Inverse of [`distort`] by fixed-point iteration (converged to ~1e-12 for lenses like the fox's).
pub fn undistort_point(q: DVec2, d: Distortion) -> DVec2 {
    undistort_iterated(q, d, 50)
}

/// OpenCV's `undistortPoints` iteration, `rounds` times (its default is 5).
fn undistort_iterated(q: DVec2, d: Distortion, rounds: usize) -> DVec2 {
    let [k1, k2, p1, p2] = d;
    let mut p = q;
    for _ in 0..rounds {
        let r2 = p.length_squared();
        let radial = 1.0 + k1 * r2 + k2 * r2 * r2;
        let delta = DVec2::new(
            2.0 * p1 * p.x * p.y + p2 * (r2 + 2.0 * p.x * p.x),
            p1 * (r2 + 2.0 * p.y * p.y) + 2.0 * p2 * p.x * p.y,
        );
        p = (q - delta) / radial;
    }
    p
}

/// The pinhole that shows the largest rectangle every pixel of which the lens saw, at the same
/// image size: OpenCV's inner rectangle from a 9 × 9 grid of points undistorted with its 5
/// default iterations, alpha 0 — the same numbers as `cv::getOptimalNewCameraMatrix`.
pub fn optimal_pinhole(camera: &Camera, d: Distortion) -> Camera {
    const N: usize = 9;
    let (w, h) = (camera.width as f64, camera.height as f64);
    let (mut x0, mut x1, mut y0, mut y1) = (f64::MIN, f64::MAX, f64::MIN, f64::MAX);
    for j in 0..N {
        for i in 0..N {
            let pixel = DVec2::new(
                i as f64 * (w - 1.0) / (N - 1) as f64,
                j as f64 * (h - 1.0) / (N - 1) as f64,
            );
            let q = (pixel - DVec2::new(camera.cx, camera.cy)) / DVec2::new(camera.fx, camera.fy);
            let p = undistort_iterated(q, d, 5);
            if i == 0 {
                x0 = x0.max(p.x);
            }
            if i == N - 1 {
                x1 = x1.min(p.x);
            }
            if j == 0 {
                y0 = y0.max(p.y);
            }
            if j == N - 1 {
                y1 = y1.min(p.y);
            }
        }
    }
    let fx = (w - 1.0) / (x1 - x0);
    let fy = (h - 1.0) / (y1 - y0);
    Camera {
        fx,
        fy,
        cx: -fx * x0,
        cy: -fy * y0,
        ..*camera
    }
}

/// Resamples `image`, taken by `from` through a lens with `d`, onto the pinhole `to` (bilinear;
/// pixels whose source falls outside the photo are black, which alpha 0 avoids).
pub fn undistort(image: &RgbImage, from: &Camera, d: Distortion, to: &Camera) -> RgbImage {
    let (w, h) = (to.width as usize, to.height as usize);
    let mut data = vec![0u8; w * h * 3];
    for y in 0..h {
        for x in 0..w {
            let p = DVec2::new((x as f64 - to.cx) / to.fx, (y as f64 - to.cy) / to.fy);
            let q = distort(p, d);
            let s = DVec2::new(from.fx * q.x + from.cx, from.fy * q.y + from.cy);
            let at = (y * w + x) * 3;
            data[at..at + 3].copy_from_slice(&image.bilinear(s));
        }
    }
    RgbImage {
        width: to.width,
        height: to.height,
        data,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use glam::DMat4;

    /// The fox's lens, with the principal point in our convention (pixel centres at integers).
    fn fox() -> (Camera, Distortion) {
        let camera = Camera {
            fx: 687.76,
            fy: 687.245,
            cx: 277.279 - 0.5,
            cy: 482.634 - 0.5,
            width: 540,
            height: 960,
            world_to_camera: DMat4::IDENTITY,
        };
        (camera, [0.0578421, -0.0805099, -0.000980296, 0.00015575])
    }

    #[test]
    fn optimal_pinhole_matches_opencv() {
        // cv2.getOptimalNewCameraMatrix(K, dist, (540, 960), 0) with opencv-python-headless 4.x.
        let (camera, d) = fox();
        let k = optimal_pinhole(&camera, d);
        for (got, want) in [
            (k.fx, 695.3793945273),
            (k.fy, 693.6107775336),
            (k.cx, 276.8785509765),
            (k.cy, 481.1988011693),
        ] {
            assert!((got - want).abs() < 2e-3, "{got} vs {want}");
        }
        // cv2.initUndistortRectifyMap: where output pixels sample the photo.
        for ((x, y), (sx, sy)) in [
            ((100.0, 200.0), (100.159035, 200.64772)),
            ((0.0, 0.0), (1.5554006, 2.4004397)),
            ((539.0, 959.0), (537.08527, 956.94403)),
        ] {
            let q = distort(DVec2::new((x - k.cx) / k.fx, (y - k.cy) / k.fy), d);
            let s = DVec2::new(camera.fx * q.x + camera.cx, camera.fy * q.y + camera.cy);
            assert!(
                (s.x - sx).abs() < 2e-3 && (s.y - sy).abs() < 2e-3,
                "{s:?} vs ({sx}, {sy})"
            );
        }
    }

    #[test]
    fn undistorting_a_distorted_pattern_recovers_the_pinhole_view() {
        let (camera, d) = fox();
        let k = optimal_pinhole(&camera, d);
        // A smooth pattern over normalised coordinates.
        let pattern = |p: DVec2| -> [u8; 3] {
            let v = |f: f64| (127.5 + 120.0 * f.sin()).round() as u8;
            [v(9.0 * p.x), v(7.0 * p.y), v(5.0 * (p.x + p.y))]
        };
        let render = |cam: &Camera, lens: bool| {
            let mut data = Vec::with_capacity(cam.width as usize * cam.height as usize * 3);
            for y in 0..cam.height {
                for x in 0..cam.width {
                    let q = DVec2::new((x as f64 - cam.cx) / cam.fx, (y as f64 - cam.cy) / cam.fy);
                    data.extend(pattern(if lens { undistort_point(q, d) } else { q }));
                }
            }
            RgbImage {
                width: cam.width,
                height: cam.height,
                data,
            }
        };
        let photo = render(&camera, true);
        let want = render(&k, false);
        let got = undistort(&photo, &camera, d, &k);
        let mse = got
            .data
            .iter()
            .zip(&want.data)
            .map(|(a, b)| (*a as f64 - *b as f64).powi(2))
            .sum::<f64>()
            / got.data.len() as f64;
        let psnr = 10.0 * (255.0f64 * 255.0 / mse).log10();
        assert!(psnr > 38.0, "{psnr:.1} dB");
        // Alpha 0: every output pixel has a source inside the photo (no black border).
        let corners = [0usize, 539, 959 * 540, 959 * 540 + 539];
        assert!(
            corners
                .iter()
                .all(|&c| got.data[3 * c..3 * c + 3] != [0, 0, 0])
        );
    }
}
