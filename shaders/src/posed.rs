//! Cameras from posed captures: the views of a nerfstudio / instant-ngp `transforms.json` in
//! our OpenCV convention — shared by the CLI's renders and the player's headless mode, so both
//! see a scene from exactly the same cameras.

use std::path::{Path, PathBuf};

use glam::DMat4;
use splatcast_protocol::transforms;

use crate::Camera;

/// A transforms file that cannot be read or does not describe cameras.
#[derive(Debug, thiserror::Error)]
#[error("{}: {message}", path.display())]
pub struct TransformsError {
    /// The file.
    pub path: PathBuf,
    /// What is wrong.
    pub message: String,
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
pub fn read_transforms(path: &Path) -> Result<Vec<TransformsView>, TransformsError> {
    let fail = |message: String| TransformsError {
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
pub fn orthonormalized(pose: DMat4) -> Option<DMat4> {
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
