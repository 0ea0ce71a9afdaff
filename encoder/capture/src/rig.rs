//! Virtual camera rigs for synthetic captures: cameras on a ring or a dome around a subject,
//! all looking at one point, plus held-out cameras placed between them. Poses are in the glTF /
//! bevy convention (y up, the camera looks down its −z axis); `poses_bounds.npy` and
//! `transforms.json` conversions live with the writers.

use glam::{Mat3, Vec3};

/// Where the cameras stand.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    /// Evenly around a horizontal circle at one height.
    Ring,
    /// Spread evenly over the upper hemisphere (a Fibonacci spiral), from just above the
    /// subject's centre up to 75° elevation.
    Dome,
}

/// A rig: layout, size, optics.
#[derive(Clone, Debug)]
pub struct Rig {
    /// Ring or dome.
    pub layout: Layout,
    /// Training cameras.
    pub count: usize,
    /// Held-out cameras (placed between the training ones).
    pub held_out: usize,
    /// Distance from the look-at point (ring: horizontal radius).
    pub radius: f32,
    /// Ring: camera height above the look-at point.
    pub height: f32,
    /// The point every camera looks at.
    pub look_at: Vec3,
    /// Vertical field of view in degrees.
    pub fov_y: f32,
    /// Image width in pixels.
    pub width: u32,
    /// Image height in pixels.
    pub height_px: u32,
}

/// One camera of a rig.
#[derive(Clone, Debug, PartialEq)]
pub struct RigCamera {
    /// Folder name (`cam00`, …).
    pub name: String,
    /// Camera centre.
    pub position: Vec3,
    /// Camera-to-world rotation: columns right, up, back.
    pub rotation: Mat3,
    /// Focal length in pixels (square pixels, principal point at the image centre).
    pub focal: f32,
    /// Image width in pixels.
    pub width: u32,
    /// Image height in pixels.
    pub height: u32,
    /// Whether it is held out of training.
    pub held_out: bool,
}

impl RigCamera {
    /// Where `p` lands in the image (pixel centres at integer coordinates, as OpenCV and the
    /// trainer count them) and its depth; `None` behind the camera.
    pub fn project(&self, p: Vec3) -> Option<([f32; 2], f32)> {
        let local = self.rotation.transpose() * (p - self.position);
        let depth = -local.z;
        if depth <= 0.0 {
            return None;
        }
        let u = self.focal * local.x / depth + 0.5 * self.width as f32 - 0.5;
        let v = -self.focal * local.y / depth + 0.5 * self.height as f32 - 0.5;
        Some(([u, v], depth))
    }
}

/// A rotation whose −z looks from `eye` to `target`, x level with the ground (y up); straight
/// up or down falls back to looking along −z.
fn looking_at(eye: Vec3, target: Vec3) -> Mat3 {
    let back = (eye - target).normalize_or(Vec3::Z);
    let right = Vec3::Y.cross(back).try_normalize().unwrap_or(Vec3::X);
    let up = back.cross(right);
    Mat3::from_cols(right, up, back)
}

impl Rig {
    /// The focal length in pixels of every camera.
    pub fn focal(&self) -> f32 {
        0.5 * self.height_px as f32 / (0.5 * self.fov_y.to_radians()).tan()
    }

    /// Training cameras first (`cam00` …), then held-out ones, numbered on.
    pub fn cameras(&self) -> Vec<RigCamera> {
        let training = self.positions(self.count, 0.0);
        // Held-out cameras sit halfway between training ones (ring) or on a shifted spiral.
        let held = self.positions(self.held_out, 0.5);
        training
            .into_iter()
            .map(|p| (p, false))
            .chain(held.into_iter().map(|p| (p, true)))
            .enumerate()
            .map(|(i, (position, held_out))| RigCamera {
                name: format!("cam{i:02}"),
                position,
                rotation: looking_at(position, self.look_at),
                focal: self.focal(),
                width: self.width,
                height: self.height_px,
                held_out,
            })
            .collect()
    }

    fn positions(&self, n: usize, offset: f32) -> Vec<Vec3> {
        let golden = std::f32::consts::PI * (3.0 - 5f32.sqrt());
        (0..n)
            .map(|i| {
                let k = i as f32 + offset;
                match self.layout {
                    Layout::Ring => {
                        let a = std::f32::consts::TAU * k / n.max(1) as f32;
                        self.look_at
                            + Vec3::new(self.radius * a.sin(), self.height, self.radius * a.cos())
                    }
                    Layout::Dome => {
                        // Elevation from 5° to 75°, even in area; azimuth by the golden angle.
                        let (lo, hi) = (5f32.to_radians().sin(), 75f32.to_radians().sin());
                        let s = lo + (hi - lo) * (k + 0.5) / (n as f32 + offset);
                        let elevation = s.asin();
                        let a = golden * k + offset;
                        self.look_at
                            + self.radius
                                * Vec3::new(elevation.cos() * a.sin(), s, elevation.cos() * a.cos())
                    }
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rig(layout: Layout) -> Rig {
        Rig {
            layout,
            count: 12,
            held_out: 3,
            radius: 4.0,
            height: 1.0,
            look_at: Vec3::new(0.5, 1.0, -0.25),
            fov_y: 50.0,
            width: 96,
            height_px: 64,
        }
    }

    #[test]
    fn every_camera_sees_the_look_at_point_in_the_image_centre() {
        for layout in [Layout::Ring, Layout::Dome] {
            let r = rig(layout);
            let cameras = r.cameras();
            assert_eq!(cameras.len(), 15);
            assert_eq!(cameras.iter().filter(|c| c.held_out).count(), 3);
            for c in &cameras {
                let ([u, v], depth) = c.project(r.look_at).unwrap();
                assert!(
                    (u - 47.5).abs() < 1e-3 && (v - 31.5).abs() < 1e-3,
                    "{u} {v}"
                );
                assert!(depth > 0.0);
                assert!((c.rotation.determinant() - 1.0).abs() < 1e-5);
                // Level cameras: right has no vertical component.
                assert!(c.rotation.x_axis.y.abs() < 1e-6);
            }
        }
    }

    #[test]
    fn a_point_above_the_target_is_up_in_the_image() {
        let r = rig(Layout::Ring);
        let c = &r.cameras()[0];
        let ([_, v], _) = c.project(r.look_at + Vec3::Y * 0.5).unwrap();
        assert!(v < 31.5);
        // The vertical field of view spans the image height.
        let half = (25f32).to_radians().tan();
        let d = (c.position - r.look_at).length();
        let up = c.rotation.y_axis;
        let ([_, top], _) = c.project(r.look_at + up * half * d).unwrap();
        assert!((top + 0.5).abs() < 1e-2, "{top}");
    }
}
