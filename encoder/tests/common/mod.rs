//! A multi-view video rendered here for the learnt encoder's tests: a known scene whose one
//! part moves, filmed by a ring of cameras (two held out) in the N3DV / LLFF layout.
// Each test binary uses its own part of this module.
#![allow(dead_code)]

use std::path::Path;

use glam::{DVec3, Quat, Vec3};
use splatcast_protocol::GaussianFrame;
use splatcast_protocol::gaussian::{SH_C0, logit};
use splatcast_shaders::{Camera, Gpu, Renderer, render_frame};

pub const SIZE: u32 = 40;
pub const FRAMES: usize = 5;
pub const CAMERAS: usize = 10;

/// 120 Gaussians; the first 30 (a block on one side) slide along x over the frames.
pub fn truth(t: usize) -> GaussianFrame {
    let mut rng = splatcast_shaders::synthetic::Rng::new(99u64);
    let mut next = move || rng.unit();
    let mut f = GaussianFrame::with_capacity(120, 0);
    for i in 0..120 {
        let mut p = (Vec3::new(next(), next(), next()) * 2.0 - Vec3::ONE) * 0.5;
        if i < 30 {
            p = p * 0.4 + Vec3::new(-0.3 + 0.06 * t as f32, 0.0, 0.0);
        }
        f.positions.push(p);
        f.rotations
            .push(Quat::from_xyzw(next(), next(), next(), next() + 0.5).normalize());
        f.log_scales.push(Vec3::splat((0.08 + 0.05 * next()).ln()));
        f.opacity_logits.push(logit(0.6 + 0.35 * next()));
        let colour = if i < 30 {
            Vec3::new(0.9, 0.2, 0.1)
        } else {
            Vec3::new(next(), next(), next())
        };
        f.sh_dc.push((colour - Vec3::splat(0.5)) / SH_C0);
    }
    f
}

pub fn ring(i: usize) -> Camera {
    let a = i as f64 * std::f64::consts::TAU / CAMERAS as f64;
    let eye = DVec3::new(2.2 * a.sin(), -0.6, -2.2 * a.cos());
    Camera::look_at(eye, DVec3::ZERO, DVec3::NEG_Y, 45.0, SIZE, SIZE)
}

pub fn write_png(path: &Path, rgb: &[u8]) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let file = std::fs::File::create(path).unwrap();
    let mut enc = png::Encoder::new(std::io::BufWriter::new(file), SIZE, SIZE);
    enc.set_color(png::ColorType::Rgb);
    enc.set_depth(png::BitDepth::Eight);
    enc.write_header().unwrap().write_image_data(rgb).unwrap();
}

/// `poses_bounds.npy` for `cameras` (LLFF columns: down, right, back, centre, h w f).
pub fn poses_bounds(cameras: &[Camera]) -> Vec<u8> {
    let mut values = Vec::new();
    for c in cameras {
        let c2w = c.world_to_camera.inverse();
        let (x, y, z) = (
            c2w.x_axis.truncate(),
            c2w.y_axis.truncate(),
            c2w.z_axis.truncate(),
        );
        let columns = [
            y,
            x,
            -z,
            c.position(),
            DVec3::new(c.height as f64, c.width as f64, c.fx),
        ];
        for row in 0..3 {
            values.extend(columns.iter().map(|col| col[row]));
        }
        values.extend([0.5, 9.0]);
    }
    splatcast_protocol::llff::write_npy(cameras.len(), 17, &values)
}

/// Renders the video: cameras 1 and 6 in `heldout/`, the rest in the root, N3DV layout.
pub fn write_video(root: &Path) {
    let gpu = Gpu::with_backends(wgpu::Backends::GL).unwrap();
    let renderer = Renderer::new(&gpu);
    let held = |i: usize| i == 1 || i == 6;
    for t in 0..FRAMES {
        let frame = truth(t);
        for i in 0..CAMERAS {
            let image = render_frame(&gpu, &renderer, &frame, &ring(i), DVec3::ZERO).unwrap();
            let dir = if held(i) {
                root.join("heldout")
            } else {
                root.to_owned()
            };
            write_png(&dir.join(format!("cam{i:02}/{t:04}.png")), &image.to_rgb8());
        }
    }
    let (train, test): (Vec<usize>, Vec<usize>) = (0..CAMERAS).partition(|&i| !held(i));
    let cams = |list: &[usize]| list.iter().map(|&i| ring(i)).collect::<Vec<_>>();
    std::fs::write(root.join("poses_bounds.npy"), poses_bounds(&cams(&train))).unwrap();
    std::fs::write(
        root.join("heldout/poses_bounds.npy"),
        poses_bounds(&cams(&test)),
    )
    .unwrap();
    std::fs::write(root.join("capture.json"), r#"{"fps": 10}"#).unwrap();
}
