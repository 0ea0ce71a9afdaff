//! Real spherical harmonics up to degree 3 in the convention of 3D Gaussian Splatting (the
//! basis signs and constants trained PLY files assume).

use glam::DVec3;

const C0: f64 = 0.282_094_791_773_878_14;
const C1: f64 = 0.488_602_511_902_919_9;
const C2: [f64; 5] = [
    1.092_548_430_592_079_2,
    -1.092_548_430_592_079_2,
    0.315_391_565_252_520_05,
    -1.092_548_430_592_079_2,
    0.546_274_215_296_039_6,
];
const C3: [f64; 7] = [
    -0.590_043_589_926_643_5,
    2.890_611_442_640_554,
    -0.457_045_799_464_465_8,
    0.373_176_332_590_115_4,
    -0.457_045_799_464_465_8,
    1.445_305_721_320_277,
    -0.590_043_589_926_643_5,
];

/// The 16 basis values for unit direction `d` (fewer are used at lower degrees).
pub fn basis(d: DVec3) -> [f64; 16] {
    let (x, y, z) = (d.x, d.y, d.z);
    let (xx, yy, zz) = (x * x, y * y, z * z);
    [
        C0,
        -C1 * y,
        C1 * z,
        -C1 * x,
        C2[0] * x * y,
        C2[1] * y * z,
        C2[2] * (2.0 * zz - xx - yy),
        C2[3] * x * z,
        C2[4] * (xx - yy),
        C3[0] * y * (3.0 * xx - yy),
        C3[1] * x * y * z,
        C3[2] * y * (4.0 * zz - xx - yy),
        C3[3] * z * (2.0 * zz - 3.0 * xx - 3.0 * yy),
        C3[4] * x * (4.0 * zz - xx - yy),
        C3[5] * z * (xx - yy),
        C3[6] * x * (xx - 3.0 * yy),
    ]
}

/// Colour seen from direction `d` (unit, from the camera towards the Gaussian): DC plus the
/// `rest` coefficients (degree given by their count), offset by 0.5 and clamped at 0.
pub fn color(dc: DVec3, rest: &[DVec3], d: DVec3) -> DVec3 {
    let b = basis(d);
    let mut c = dc * b[0];
    for (k, coeff) in rest.iter().enumerate().take(15) {
        c += *coeff * b[k + 1];
    }
    (c + DVec3::splat(0.5)).max(DVec3::ZERO)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basis_is_orthonormal_on_the_sphere() {
        // Monte-Carlo-free check: a Fibonacci sphere integrates low-degree products accurately.
        let n = 20_000;
        let mut gram = [[0.0f64; 16]; 16];
        for i in 0..n {
            let z = 1.0 - (2.0 * i as f64 + 1.0) / n as f64;
            let r = (1.0 - z * z).sqrt();
            let phi = i as f64 * std::f64::consts::PI * (3.0 - 5f64.sqrt());
            let b = basis(DVec3::new(r * phi.cos(), r * phi.sin(), z));
            for (row, ba) in gram.iter_mut().zip(b) {
                for (cell, bc) in row.iter_mut().zip(b) {
                    *cell += ba * bc * 4.0 * std::f64::consts::PI / n as f64;
                }
            }
        }
        for (a, row) in gram.iter().enumerate() {
            for (c, value) in row.iter().enumerate() {
                let expected = if a == c { 1.0 } else { 0.0 };
                assert!((value - expected).abs() < 2e-3, "({a},{c}) = {value}");
            }
        }
    }

    #[test]
    fn dc_only_colour_is_direction_independent() {
        let dc = DVec3::new(1.0, -1.0, 0.0);
        let a = color(dc, &[], DVec3::X);
        let b = color(dc, &[], DVec3::new(0.0, 0.6, 0.8));
        assert_eq!(a, b);
        assert!((a.x - (0.5 + C0)).abs() < 1e-15 && a.y == 0.5 - C0 && a.z == 0.5);
    }
}
