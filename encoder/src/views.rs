//! Cameras to render from: orbits around a scene, rings for evaluation, and the views of a
//! nerfstudio / instant-ngp `transforms.json`.

use std::path::{Path, PathBuf};

use glam::Vec3;
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

pub use splatcast_shaders::orbit::{Orbit, Up};

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

pub use splatcast_shaders::posed::{TransformsView, orthonormalized};

/// Reads a nerfstudio / instant-ngp `transforms.json` (see [`splatcast_shaders::posed`]).
pub fn read_transforms(path: &Path) -> Result<Vec<TransformsView>, ViewError> {
    splatcast_shaders::posed::read_transforms(path).map_err(|e| ViewError::Transforms {
        path: path.to_owned(),
        message: e.message,
    })
}

/// `camera` re-rendered at `width`×`height` (intrinsics scaled).
pub fn resized(camera: &Camera, width: u32, height: u32) -> Camera {
    camera.resized(width, height)
}

#[cfg(test)]
mod tests {
    use glam::DVec3;

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
