//! nerfstudio / instant-ngp `transforms.json`: per-view intrinsics (shared or per frame), OpenCV
//! radial-tangential distortion (k1, k2, p1, p2) and camera-to-world matrices in the OpenGL
//! convention (x right, y up, z back).

use serde::Deserialize;

/// Why a transforms file cannot be used.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum TransformsError {
    /// Not JSON of the expected shape.
    #[error("not a transforms.json: {0}")]
    Json(String),
    /// A view lacks a value or has an impossible one.
    #[error("frame {frame}: {message}")]
    View {
        /// Index in `frames`.
        frame: usize,
        /// What is wrong.
        message: String,
    },
}

#[derive(Deserialize)]
struct File {
    camera_angle_x: Option<f64>,
    #[serde(flatten)]
    shared: Intrinsics,
    frames: Vec<Frame>,
}

#[derive(Deserialize, Default, Clone, Copy)]
struct Intrinsics {
    fl_x: Option<f64>,
    fl_y: Option<f64>,
    cx: Option<f64>,
    cy: Option<f64>,
    w: Option<f64>,
    h: Option<f64>,
    k1: Option<f64>,
    k2: Option<f64>,
    p1: Option<f64>,
    p2: Option<f64>,
}

#[derive(Deserialize)]
struct Frame {
    file_path: Option<String>,
    transform_matrix: [[f64; 4]; 4],
    #[serde(flatten)]
    own: Intrinsics,
}

/// One view as the file describes it.
#[derive(Clone, Debug, PartialEq)]
pub struct TransformsView {
    /// The image, relative to the file's folder, as written there.
    pub file_path: Option<String>,
    /// Image width in pixels.
    pub width: u32,
    /// Image height in pixels.
    pub height: u32,
    /// Focal lengths in pixels (x, y).
    pub focal: [f64; 2],
    /// Principal point with pixel centres at integers (the file's, which has them at
    /// half-integers, minus ½).
    pub principal: [f64; 2],
    /// OpenCV distortion k1, k2, p1, p2 (zeros when absent).
    pub distortion: [f64; 4],
    /// Camera-to-world, row-major, OpenGL axes.
    pub camera_to_world: [[f64; 4]; 4],
}

/// Parses the text of a transforms file.
pub fn parse_transforms(text: &str) -> Result<Vec<TransformsView>, TransformsError> {
    let file: File =
        serde_json::from_str(text).map_err(|e| TransformsError::Json(e.to_string()))?;
    let mut views = Vec::with_capacity(file.frames.len());
    for (i, f) in file.frames.iter().enumerate() {
        let fail = |message: &str| TransformsError::View {
            frame: i,
            message: message.to_owned(),
        };
        let (own, shared) = (f.own, file.shared);
        let pick = |a: Option<f64>, b: Option<f64>| a.or(b);
        let (w, h) = match (pick(own.w, shared.w), pick(own.h, shared.h)) {
            (Some(w), Some(h)) if (1.0..=16384.0).contains(&w) && (1.0..=16384.0).contains(&h) => {
                (w, h)
            }
            _ => return Err(fail("missing or invalid w/h (1 to 16384)")),
        };
        let fx = pick(own.fl_x, shared.fl_x)
            .or_else(|| file.camera_angle_x.map(|a| 0.5 * w / (0.5 * a).tan()))
            .ok_or_else(|| fail("no focal length (fl_x or camera_angle_x)"))?;
        let fy = pick(own.fl_y, shared.fl_y).unwrap_or(fx);
        let cx = pick(own.cx, shared.cx).unwrap_or(0.5 * w) - 0.5;
        let cy = pick(own.cy, shared.cy).unwrap_or(0.5 * h) - 0.5;
        let distortion = [
            pick(own.k1, shared.k1).unwrap_or(0.0),
            pick(own.k2, shared.k2).unwrap_or(0.0),
            pick(own.p1, shared.p1).unwrap_or(0.0),
            pick(own.p2, shared.p2).unwrap_or(0.0),
        ];
        let values = [fx, fy, cx, cy].into_iter().chain(distortion);
        if values.clone().any(|v| !v.is_finite()) || fx <= 0.0 || fy <= 0.0 {
            return Err(fail(
                "intrinsics must be finite with positive focal lengths",
            ));
        }
        if f.transform_matrix.iter().flatten().any(|v| !v.is_finite()) {
            return Err(fail("transform_matrix has a non-finite entry"));
        }
        views.push(TransformsView {
            file_path: f.file_path.clone(),
            width: w as u32,
            height: h as u32,
            focal: [fx, fy],
            principal: [cx, cy],
            distortion,
            camera_to_world: f.transform_matrix,
        });
    }
    Ok(views)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_and_per_frame_intrinsics() {
        let text = r#"{"camera_angle_x": 1.0, "w": 100, "h": 50, "k1": 0.1,
            "frames": [
              {"file_path": "a.png", "transform_matrix": [[1,0,0,0],[0,1,0,0],[0,0,1,2],[0,0,0,1]]},
              {"file_path": "b.png", "fl_x": 80, "cx": 40, "transform_matrix": [[1,0,0,0],[0,1,0,0],[0,0,1,3],[0,0,0,1]]}
            ]}"#;
        let v = parse_transforms(text).unwrap();
        assert_eq!(v.len(), 2);
        let f = 50.0 / 0.5f64.tan();
        assert!((v[0].focal[0] - f).abs() < 1e-9 && v[0].focal[1] == v[0].focal[0]);
        assert_eq!(v[0].principal, [49.5, 24.5]);
        assert_eq!(v[1].focal, [80.0, 80.0]);
        assert_eq!(v[1].principal[0], 39.5);
        assert_eq!(v[0].distortion, [0.1, 0.0, 0.0, 0.0]);
        assert!(matches!(
            parse_transforms("{}"),
            Err(TransformsError::Json(_))
        ));
        let no_size = r#"{"fl_x": 1, "frames": [{"transform_matrix": [[1,0,0,0],[0,1,0,0],[0,0,1,0],[0,0,0,1]]}]}"#;
        assert!(matches!(
            parse_transforms(no_size),
            Err(TransformsError::View { frame: 0, .. })
        ));
    }
}
