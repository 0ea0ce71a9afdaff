//! The pinhole camera every renderer here uses (OpenCV convention: x right, y down, z forward;
//! pixel (i, j) has its centre at (i, j) in the intrinsics' coordinates).

use glam::{DMat3, DMat4, DVec3};

/// A pinhole camera with a world-to-camera pose.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Camera {
    /// Focal length in pixels, x.
    pub fx: f64,
    /// Focal length in pixels, y.
    pub fy: f64,
    /// Principal point, x (pixels).
    pub cx: f64,
    /// Principal point, y (pixels).
    pub cy: f64,
    /// Image width in pixels.
    pub width: u32,
    /// Image height in pixels.
    pub height: u32,
    /// World-to-camera rigid transform.
    pub world_to_camera: DMat4,
}

/// Why a camera cannot render.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum CameraError {
    /// Zero or absurd image size.
    #[error("image size {0}x{1} is invalid (1 to 16384 per side)")]
    Size(u32, u32),
    /// Non-positive or non-finite focal length or principal point.
    #[error("intrinsics must be finite with positive focal lengths")]
    Intrinsics,
    /// The pose is not a finite rigid transform.
    #[error("world-to-camera pose is not a rotation plus translation")]
    Pose,
}

impl Camera {
    /// A camera at `eye` looking at `target` with the world direction `up` shown up in the image,
    /// with a vertical field of view.
    pub fn look_at(
        eye: DVec3,
        target: DVec3,
        up: DVec3,
        fov_y_degrees: f64,
        width: u32,
        height: u32,
    ) -> Self {
        let forward = (target - eye).normalize();
        let right = forward.cross(up).normalize();
        let down = forward.cross(right);
        let rotation = DMat3::from_cols(right, down, forward).transpose();
        let world_to_camera = DMat4::from_mat3(rotation) * DMat4::from_translation(-eye);
        let fy = 0.5 * height as f64 / (0.5 * fov_y_degrees.to_radians()).tan();
        Self {
            fx: fy,
            fy,
            cx: 0.5 * (width as f64 - 1.0),
            cy: 0.5 * (height as f64 - 1.0),
            width,
            height,
            world_to_camera,
        }
    }

    /// The same camera at `width`×`height`: intrinsics scaled about pixel centres, so the
    /// picture covers the same view at another resolution.
    pub fn resized(&self, width: u32, height: u32) -> Camera {
        let (sx, sy) = (
            width as f64 / self.width as f64,
            height as f64 / self.height as f64,
        );
        Camera {
            fx: self.fx * sx,
            fy: self.fy * sy,
            cx: (self.cx + 0.5) * sx - 0.5,
            cy: (self.cy + 0.5) * sy - 0.5,
            width,
            height,
            ..*self
        }
    }

    /// Checks the camera can render.
    pub fn validate(&self) -> Result<(), CameraError> {
        if !(1..=16384).contains(&self.width) || !(1..=16384).contains(&self.height) {
            return Err(CameraError::Size(self.width, self.height));
        }
        let intrinsics = [self.fx, self.fy, self.cx, self.cy];
        if !intrinsics.iter().all(|v| v.is_finite()) || self.fx <= 0.0 || self.fy <= 0.0 {
            return Err(CameraError::Intrinsics);
        }
        let r = self.rotation();
        let orthonormal = (r * r.transpose()).abs_diff_eq(DMat3::IDENTITY, 1e-6)
            && (r.determinant() - 1.0).abs() < 1e-6;
        if !self.world_to_camera.is_finite() || !orthonormal {
            return Err(CameraError::Pose);
        }
        Ok(())
    }

    /// Where the projection's Jacobian is clamped, in x/z and y/z: 1.3 × the half field of view
    /// (keeps huge off-screen Gaussians from exploding).
    pub fn frustum_limits(&self) -> [f64; 2] {
        [
            crate::reference::FRUSTUM_CLAMP * 0.5 * self.width as f64 / self.fx,
            crate::reference::FRUSTUM_CLAMP * 0.5 * self.height as f64 / self.fy,
        ]
    }

    /// The rotation part of the pose.
    pub fn rotation(&self) -> DMat3 {
        DMat3::from_mat4(self.world_to_camera)
    }

    /// Camera centre in world coordinates.
    pub fn position(&self) -> DVec3 {
        self.world_to_camera.inverse().transform_point3(DVec3::ZERO)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn look_at_puts_the_target_at_the_principal_point() {
        let cam = Camera::look_at(
            DVec3::new(0.0, -1.0, -3.0),
            DVec3::ZERO,
            DVec3::NEG_Y,
            60.0,
            64,
            48,
        );
        assert_eq!(cam.validate(), Ok(()));
        let p = cam.world_to_camera.transform_point3(DVec3::ZERO);
        assert!(p.x.abs() < 1e-12 && p.y.abs() < 1e-12 && p.z > 0.0);
        assert!((cam.position() - DVec3::new(0.0, -1.0, -3.0)).length() < 1e-12);
        let mut bad = cam;
        bad.width = 0;
        assert_eq!(bad.validate(), Err(CameraError::Size(0, 48)));
    }
}
