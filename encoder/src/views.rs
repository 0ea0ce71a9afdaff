//! Cameras to render from: orbits around a scene, rings for evaluation, and the views of a
//! nerfstudio / instant-ngp `transforms.json`.

use std::path::{Path, PathBuf};

use glam::{DMat4, DVec3, Vec3};
use splatcast_protocol::transforms;
use splatcast_shaders::Camera;

/// Why cameras cannot be made.
#[derive(Debug, thiserror::Error)]
pub enum ViewError {
    /// Unparseable orbit or size specification.
    #[error("{0}")]
    Spec(String),
    /// The transforms file could not be read or parsed.
    #[error("{path}: {message}")]
    Transforms {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

/// The world direction shown as up: 3DGS scenes from COLMAP are usually −y.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Up {
    /// +x
    #[value(name = "+x")]
    PosX,
    /// −x
    #[value(name = "-x")]
    NegX,
    /// +y
    #[value(name = "+y")]
    PosY,
    /// −y (COLMAP / 3DGS captures)
    #[value(name = "-y")]
    NegY,
    /// +z (Blender, many LiDAR scenes)
    #[value(name = "+z")]
    PosZ,
    /// −z
    #[value(name = "-z")]
    NegZ,
}

impl Up {
    /// The unit vector.
    pub fn vector(self) -> DVec3 {
        match self {
            Up::PosX => DVec3::X,
            Up::NegX => DVec3::NEG_X,
            Up::PosY => DVec3::Y,
            Up::NegY => DVec3::NEG_Y,
            Up::PosZ => DVec3::Z,
            Up::NegZ => DVec3::NEG_Z,
        }
    }
}

/// A camera on a sphere around a scene: angles in degrees, distance in scene radii.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Orbit {
    /// Angle around the up axis.
    pub azimuth: f64,
    /// Angle above the horizontal plane.
    pub elevation: f64,
    /// Distance from the centre in scene radii.
    pub distance: f64,
    /// Vertical field of view.
    pub fov: f64,
}

impl Default for Orbit {
    fn default() -> Self {
        Self {
            azimuth: 0.0,
            elevation: 20.0,
            distance: 2.5,
            fov: 50.0,
        }
    }
}

impl Orbit {
    /// Parses `AZIMUTH,ELEVATION[,DISTANCE[,FOV]]` (degrees, scene radii, degrees).
    pub fn parse(spec: &str) -> Result<Self, ViewError> {
        let bad = || {
            ViewError::Spec(format!(
                "camera '{spec}': expected AZIMUTH,ELEVATION[,DISTANCE[,FOV]]"
            ))
        };
        let values: Vec<f64> = spec
            .split(',')
            .map(|v| v.trim().parse::<f64>().map_err(|_| bad()))
            .collect::<Result<_, _>>()?;
        if !(2..=4).contains(&values.len()) || values.iter().any(|v| !v.is_finite()) {
            return Err(bad());
        }
        let mut orbit = Orbit {
            azimuth: values[0],
            elevation: values[1],
            ..Orbit::default()
        };
        if let Some(d) = values.get(2) {
            orbit.distance = *d;
        }
        if let Some(f) = values.get(3) {
            orbit.fov = *f;
        }
        if orbit.distance <= 0.0
            || !(1.0..179.0).contains(&orbit.fov)
            || orbit.elevation.abs() >= 90.0
        {
            return Err(ViewError::Spec(format!(
                "camera '{spec}': distance must be positive, fov in [1, 179), elevation within ±90"
            )));
        }
        Ok(orbit)
    }

    /// The camera for a scene with this centre and radius.
    pub fn camera(&self, centre: Vec3, radius: f32, up: Up, width: u32, height: u32) -> Camera {
        let up_v = up.vector();
        // Any axis orthogonal to up serves as azimuth zero.
        let side = if up_v.x.abs() > 0.5 {
            DVec3::Y
        } else {
            DVec3::X
        };
        let forward0 = up_v.cross(side).normalize();
        let right0 = forward0.cross(up_v);
        let (az, el) = (self.azimuth.to_radians(), self.elevation.to_radians());
        let dir = (forward0 * az.cos() + right0 * az.sin()) * el.cos() + up_v * el.sin();
        let target = centre.as_dvec3();
        let eye = target + dir * self.distance * radius as f64;
        Camera::look_at(eye, target, up_v, self.fov, width, height)
    }
}

/// `count` cameras evenly around the scene at the orbit's elevation and distance.
pub fn ring(
    orbit: Orbit,
    count: usize,
    centre: Vec3,
    radius: f32,
    up: Up,
    width: u32,
    height: u32,
) -> Vec<Camera> {
    (0..count)
        .map(|i| {
            Orbit {
                azimuth: orbit.azimuth + 360.0 * i as f64 / count as f64,
                ..orbit
            }
            .camera(centre, radius, up, width, height)
        })
        .collect()
}

/// Parses `WIDTHxHEIGHT`.
pub fn parse_size(spec: &str) -> Result<(u32, u32), ViewError> {
    let bad = || {
        ViewError::Spec(format!(
            "size '{spec}': expected WIDTHxHEIGHT, 1 to 16384 each"
        ))
    };
    let (w, h) = spec.split_once(['x', 'X']).ok_or_else(bad)?;
    let (w, h): (u32, u32) = (
        w.trim().parse().map_err(|_| bad())?,
        h.trim().parse().map_err(|_| bad())?,
    );
    if !(1..=16384).contains(&w) || !(1..=16384).contains(&h) {
        return Err(bad());
    }
    Ok((w, h))
}

/// One view of a transforms file: its pinhole camera and image path. Lens distortion is not
/// applied here (renders are pinhole); the trainer undistorts the photos instead.
#[derive(Clone, Debug)]
pub struct TransformsView {
    /// The camera at the file's resolution.
    pub camera: Camera,
    /// The parsed view, distortion included.
    pub view: transforms::TransformsView,
}

/// Reads a nerfstudio / instant-ngp `transforms.json` into our OpenCV-convention cameras.
pub fn read_transforms(path: &Path) -> Result<Vec<TransformsView>, ViewError> {
    let fail = |message: String| ViewError::Transforms {
        path: path.to_owned(),
        message,
    };
    let text = std::fs::read_to_string(path).map_err(|e| fail(e.to_string()))?;
    let parsed = transforms::parse_transforms(&text).map_err(|e| fail(e.to_string()))?;
    let gl_to_cv = DMat4::from_diagonal(glam::DVec4::new(1.0, -1.0, -1.0, 1.0));
    parsed
        .into_iter()
        .enumerate()
        .map(|(i, view)| {
            let c2w = DMat4::from_cols_array_2d(&view.camera_to_world).transpose();
            let c2w = orthonormalized(c2w).ok_or_else(|| {
                fail(format!(
                    "frame {i}: transform_matrix is not a rotation plus translation"
                ))
            })?;
            let camera = Camera {
                fx: view.focal[0],
                fy: view.focal[1],
                cx: view.principal[0],
                cy: view.principal[1],
                width: view.width,
                height: view.height,
                world_to_camera: (c2w * gl_to_cv).inverse(),
            };
            camera
                .validate()
                .map_err(|e| fail(format!("frame {i}: {e}")))?;
            Ok(TransformsView { camera, view })
        })
        .collect()
}

/// The pose with its rotation snapped to the nearest rotation (polar decomposition by Newton
/// iteration): exported poses carry rounding of ~1e-5. `None` when it is no rotation at all.
pub(crate) fn orthonormalized(pose: DMat4) -> Option<DMat4> {
    let mut r = glam::DMat3::from_mat4(pose);
    let close = (r * r.transpose()).abs_diff_eq(glam::DMat3::IDENTITY, 1e-2)
        && (r.determinant() - 1.0).abs() < 1e-2;
    if !close {
        return None;
    }
    for _ in 0..8 {
        r = (r + r.inverse().transpose()) * 0.5;
    }
    let mut out = DMat4::from_mat3(r);
    out.w_axis = pose.w_axis;
    Some(out)
}

/// `camera` re-rendered at `width`×`height` (intrinsics scaled).
pub fn resized(camera: &Camera, width: u32, height: u32) -> Camera {
    let (sx, sy) = (
        width as f64 / camera.width as f64,
        height as f64 / camera.height as f64,
    );
    Camera {
        fx: camera.fx * sx,
        fy: camera.fy * sy,
        cx: (camera.cx + 0.5) * sx - 0.5,
        cy: (camera.cy + 0.5) * sy - 0.5,
        width,
        height,
        ..*camera
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orbit_looks_at_the_centre_with_up_up() {
        let centre = Vec3::new(1.0, 2.0, 3.0);
        for up in [Up::NegY, Up::PosZ, Up::PosX] {
            let cam = Orbit::parse("30,20,3")
                .unwrap()
                .camera(centre, 2.0, up, 64, 48);
            assert!(cam.validate().is_ok());
            let c = cam.world_to_camera.transform_point3(centre.as_dvec3());
            assert!(c.x.abs() < 1e-9 && c.y.abs() < 1e-9 && (c.z - 6.0).abs() < 1e-9);
            // A point above the centre appears above it in the image (smaller y).
            let above = cam
                .world_to_camera
                .transform_point3(centre.as_dvec3() + up.vector());
            assert!(above.y < 0.0, "{up:?}");
        }
        assert!(
            Orbit::parse("1").is_err()
                && Orbit::parse("0,95").is_err()
                && Orbit::parse("0,0,-1").is_err()
        );
        assert_eq!(parse_size("640x480").unwrap(), (640, 480));
        assert!(parse_size("0x5").is_err() && parse_size("abc").is_err());
    }

    #[test]
    fn fox_transforms_give_valid_cameras_facing_the_scene() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../shared/data/mv_fox_instant_ngp/transforms.json");
        let views = read_transforms(&path).unwrap();
        assert_eq!(views.len(), 67);
        assert_eq!((views[0].camera.width, views[0].camera.height), (540, 960));
        // The cameras look inwards: the mean of camera centres projects in front of most of them.
        let centre: DVec3 =
            views.iter().map(|v| v.camera.position()).sum::<DVec3>() / views.len() as f64;
        let facing = views
            .iter()
            .filter(|v| v.camera.world_to_camera.transform_point3(centre).z > 0.0)
            .count();
        assert!(facing > 60, "{facing}");
    }
}
