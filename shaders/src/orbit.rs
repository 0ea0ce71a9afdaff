//! Cameras on a sphere around a scene, as the `splatcast render` CLI and the player's orbit
//! controls both describe them: one definition, so the two agree to the pixel.

use glam::{DVec3, Vec3};

use crate::Camera;

/// An orbit or up-axis specification that does not parse.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct OrbitError(pub String);

/// The world direction shown as up: 3DGS scenes from COLMAP are usually −y.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Up {
    /// +x
    PosX,
    /// −x
    NegX,
    /// +y
    PosY,
    /// −y (COLMAP / 3DGS captures)
    NegY,
    /// +z (Blender, many LiDAR scenes)
    PosZ,
    /// −z
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
    pub fn parse(spec: &str) -> Result<Self, OrbitError> {
        let bad = || {
            OrbitError(format!(
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
            return Err(OrbitError(format!(
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

impl std::str::FromStr for Up {
    type Err = OrbitError;

    fn from_str(s: &str) -> Result<Self, OrbitError> {
        Ok(match s {
            "+x" | "x" => Up::PosX,
            "-x" => Up::NegX,
            "+y" | "y" => Up::PosY,
            "-y" => Up::NegY,
            "+z" | "z" => Up::PosZ,
            "-z" => Up::NegZ,
            _ => {
                return Err(OrbitError(format!(
                    "up '{s}': expected one of +x -x +y -y +z -z"
                )));
            }
        })
    }
}
