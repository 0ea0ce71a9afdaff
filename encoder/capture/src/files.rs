//! What a synthetic capture writes, in the layouts trainers read: N3DV / LLFF (per-camera frame
//! folders `cam00/0000.png` …, `poses_bounds.npy`), a nerfstudio `transforms.json` per frame
//! (`frames/0000/transforms.json`, images referenced by relative path), optional alpha masks
//! (`masks/cam00/0000.png`), and the ground truth the cameras can be checked with (joint
//! positions per frame, `joints/0000.json`). Held-out cameras get the same layout in `heldout/`.

use glam::Vec3;
use serde_json::json;
use splatcast_protocol::llff::write_npy;

use crate::rig::RigCamera;

/// `poses_bounds.npy` for `cameras`: per camera the 3×5 matrix (columns down, right, back,
/// centre, height-width-focal) row by row, then the near and far scene depths.
pub fn poses_bounds(cameras: &[&RigCamera], near: f32, far: f32) -> Vec<u8> {
    let mut values = Vec::with_capacity(cameras.len() * 17);
    for c in cameras {
        let columns = [
            -c.rotation.y_axis,
            c.rotation.x_axis,
            c.rotation.z_axis,
            c.position,
            Vec3::new(c.height as f32, c.width as f32, c.focal),
        ];
        for row in 0..3 {
            values.extend(columns.iter().map(|col| col[row] as f64));
        }
        values.extend([near as f64, far as f64]);
    }
    write_npy(cameras.len(), 17, &values)
}

/// A nerfstudio `transforms.json` for frame `frame` of `cameras`, written in
/// `frames/NNNN/` with images at `../../<cam>/NNNN.png` (principal point at the image centre in
/// the format's pixel-corner convention; camera-to-world in OpenGL axes).
pub fn transforms_json(cameras: &[&RigCamera], frame: usize) -> String {
    let Some(first) = cameras.first() else {
        return json!({ "frames": [] }).to_string();
    };
    let frames: Vec<_> = cameras
        .iter()
        .map(|c| {
            let (r, t) = (c.rotation, c.position);
            let matrix: Vec<[f32; 4]> = (0..3)
                .map(|row| [r.x_axis[row], r.y_axis[row], r.z_axis[row], t[row]])
                .chain([[0.0, 0.0, 0.0, 1.0]])
                .collect();
            json!({
                "file_path": format!("../../{}/{frame:04}.png", c.name),
                "transform_matrix": matrix,
            })
        })
        .collect();
    serde_json::to_string_pretty(&json!({
        "camera_model": "OPENCV",
        "fl_x": first.focal,
        "fl_y": first.focal,
        "cx": 0.5 * first.width as f32,
        "cy": 0.5 * first.height as f32,
        "w": first.width,
        "h": first.height,
        "frames": frames,
    }))
    .expect("plain JSON values")
}

/// Joint names and world positions at one frame, as JSON.
pub fn joints_json(time: f32, joints: &[(String, Vec3)]) -> String {
    let list: Vec<_> = joints
        .iter()
        .map(|(name, p)| json!({ "name": name, "position": [p.x, p.y, p.z] }))
        .collect();
    serde_json::to_string_pretty(&json!({ "time": time, "joints": list }))
        .expect("plain JSON values")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rig::{Layout, Rig};
    use splatcast_protocol::llff::parse_poses_bounds;
    use splatcast_protocol::transforms::parse_transforms;

    fn cameras() -> Vec<RigCamera> {
        Rig {
            layout: Layout::Dome,
            count: 5,
            held_out: 0,
            radius: 3.0,
            height: 0.0,
            look_at: Vec3::new(0.0, 1.0, 0.0),
            fov_y: 40.0,
            width: 80,
            height_px: 60,
        }
        .cameras()
    }

    /// A point through the parsed OpenCV pose (x right, y down, z forward) and focal length.
    fn opencv_project(c2w: [[f64; 4]; 3], f: f64, w: f64, h: f64, p: Vec3) -> [f64; 2] {
        let d = [
            p.x as f64 - c2w[0][3],
            p.y as f64 - c2w[1][3],
            p.z as f64 - c2w[2][3],
        ];
        // Camera coordinates: R^T d.
        let local: Vec<f64> = (0..3)
            .map(|col| (0..3).map(|row| c2w[row][col] * d[row]).sum())
            .collect();
        [
            f * local[0] / local[2] + 0.5 * w - 0.5,
            f * local[1] / local[2] + 0.5 * h - 0.5,
        ]
    }

    #[test]
    fn poses_bounds_round_trip_to_the_same_projection() {
        let cams = cameras();
        let refs: Vec<&RigCamera> = cams.iter().collect();
        let parsed = parse_poses_bounds(&poses_bounds(&refs, 0.5, 9.0)).unwrap();
        let probe = Vec3::new(0.3, 1.2, -0.1);
        for (c, p) in cams.iter().zip(&parsed) {
            assert_eq!((p.width, p.height, p.near, p.far), (80.0, 60.0, 0.5, 9.0));
            let got = opencv_project(p.camera_to_world, p.focal, p.width, p.height, probe);
            let ([u, v], _) = c.project(probe).unwrap();
            assert!((got[0] - u as f64).abs() < 1e-3 && (got[1] - v as f64).abs() < 1e-3);
        }
    }

    #[test]
    fn transforms_json_round_trips_through_the_parser() {
        let cams = cameras();
        let refs: Vec<&RigCamera> = cams.iter().collect();
        let views = parse_transforms(&transforms_json(&refs, 7)).unwrap();
        assert_eq!(views.len(), 5);
        assert_eq!(views[2].file_path.as_deref(), Some("../../cam02/0007.png"));
        let probe = Vec3::new(-0.2, 0.8, 0.4);
        for (c, v) in cams.iter().zip(&views) {
            let m = v.camera_to_world;
            // OpenGL axes to OpenCV: flip y and z.
            let c2w: [[f64; 4]; 3] =
                std::array::from_fn(|row| [m[row][0], -m[row][1], -m[row][2], m[row][3]]);
            let got = opencv_project(c2w, v.focal[0], 80.0, 60.0, probe);
            let ([u, vv], _) = c.project(probe).unwrap();
            assert!((got[0] - u as f64).abs() < 1e-3 && (got[1] - vv as f64).abs() < 1e-3);
            assert_eq!(v.principal, [39.5, 29.5]);
        }
    }
}
