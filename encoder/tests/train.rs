//! Training from posed photos: a known scene rendered from a ring of cameras into a
//! transforms.json dataset, learnt back from random Gaussians; held-out views must come close.

use std::path::Path;

use glam::{DMat4, DVec3, DVec4, Quat, Vec3};
use splatcast_encoder::datasets::Dataset;
use splatcast_encoder::train::{Event, TrainOptions, train};
use splatcast_protocol::GaussianFrame;
use splatcast_protocol::gaussian::{SH_C0, logit};
use splatcast_shaders::{Camera, Gpu, Renderer, render_frame};

const SIZE: u32 = 40;

fn truth() -> GaussianFrame {
    let mut rng = splatcast_shaders::synthetic::Rng::new(99u64);
    let mut next = move || rng.unit();
    let mut f = GaussianFrame::with_capacity(120, 0);
    for _ in 0..120 {
        f.positions
            .push((Vec3::new(next(), next(), next()) * 2.0 - Vec3::ONE) * 0.5);
        f.rotations
            .push(Quat::from_xyzw(next(), next(), next(), next() + 0.5).normalize());
        f.log_scales.push(Vec3::splat((0.08 + 0.05 * next()).ln()));
        f.opacity_logits.push(logit(0.6 + 0.35 * next()));
        f.sh_dc
            .push((Vec3::new(next(), next(), next()) - Vec3::splat(0.5)) / SH_C0);
    }
    f
}

/// Writes the photos and a transforms.json for cameras on a ring.
fn write_dataset(dir: &Path) {
    let gpu = Gpu::with_backends(wgpu::Backends::GL).unwrap();
    let renderer = Renderer::new(&gpu);
    let frame = truth();
    let mut frames = Vec::new();
    for i in 0..10 {
        let a = i as f64 * std::f64::consts::TAU / 10.0;
        let eye = DVec3::new(2.2 * a.sin(), -0.6, -2.2 * a.cos());
        let camera = Camera::look_at(eye, DVec3::ZERO, DVec3::NEG_Y, 45.0, SIZE, SIZE);
        let image = render_frame(&gpu, &renderer, &frame, &camera, DVec3::ZERO).unwrap();
        let name = format!("view_{i:02}.png");
        let file = std::fs::File::create(dir.join(&name)).unwrap();
        let mut enc = png::Encoder::new(std::io::BufWriter::new(file), SIZE, SIZE);
        enc.set_color(png::ColorType::Rgb);
        enc.set_depth(png::BitDepth::Eight);
        enc.write_header()
            .unwrap()
            .write_image_data(&image.to_rgb8())
            .unwrap();
        let c2w = camera.world_to_camera.inverse()
            * DMat4::from_diagonal(DVec4::new(1.0, -1.0, -1.0, 1.0));
        let rows: Vec<[f64; 4]> = (0..4).map(|r| c2w.row(r).to_array()).collect();
        frames.push(serde_json::json!({"file_path": name, "transform_matrix": rows}));
        if i == 0 {
            assert_eq!(camera.cx, (SIZE as f64 - 1.0) / 2.0);
        }
    }
    let fl = Camera::look_at(DVec3::Z, DVec3::ZERO, DVec3::NEG_Y, 45.0, SIZE, SIZE).fx;
    let json = serde_json::json!({
        "fl_x": fl, "fl_y": fl, "cx": SIZE as f64 / 2.0, "cy": SIZE as f64 / 2.0,
        "w": SIZE, "h": SIZE, "frames": frames,
    });
    std::fs::write(dir.join("transforms.json"), json.to_string()).unwrap();
}

#[test]
fn learns_a_known_scene_from_its_photos() {
    let dir = tempfile::tempdir().unwrap();
    write_dataset(dir.path());
    let dataset = Dataset::open(dir.path(), 5).unwrap();
    let options = |iterations| TrainOptions {
        iterations,
        max_gaussians: 400,
        sh_degree: 0,
        ..TrainOptions::default()
    };
    let (_, before) = train(&dataset, &options(1), |_| {}).unwrap();
    let (mut reports, mut checkpoints) = (Vec::new(), 0);
    let (trained, after) = train(
        &dataset,
        &TrainOptions {
            checkpoint_every: 300,
            ..options(600)
        },
        |e| match e {
            Event::Progress(p) => reports.push(p),
            Event::Checkpoint(_, f) => {
                assert_eq!(f.len(), 400);
                checkpoints += 1;
            }
        },
    )
    .unwrap();
    assert_eq!(checkpoints, 2);
    assert_eq!(trained.len(), 400);
    assert_eq!(after.len(), 2, "views 0 and 5 held out");
    let mean = |s: &[splatcast_encoder::train::ViewScore]| {
        s.iter().map(|v| v.psnr).sum::<f64>() / s.len() as f64
    };
    let (b, a) = (mean(&before), mean(&after));
    eprintln!("held-out PSNR {b:.2} dB -> {a:.2} dB; reports {reports:?}");
    assert!(a > b + 8.0 && a > 20.0, "held-out PSNR {b:.2} -> {a:.2} dB");
    assert!(reports.last().unwrap().loss < reports[0].loss, "loss falls");

    // The PLY the CLI writes renders as the trainer saw it (what `splatcast render` shows).
    let reloaded =
        splatcast_protocol::formats::ply::read(&splatcast_protocol::formats::ply::write(&trained))
            .unwrap();
    let view = dataset
        .split(splatcast_encoder::datasets::Split::Test)
        .next()
        .unwrap();
    let (camera, _) = view.load().unwrap();
    let gpu = Gpu::with_backends(wgpu::Backends::GL).unwrap();
    let image = render_frame(&gpu, &Renderer::new(&gpu), &reloaded, &camera, DVec3::ZERO).unwrap();
    let got: Vec<[f32; 3]> = image.rgba.iter().map(|p| [p[0], p[1], p[2]]).collect();
    let seen: Vec<[f32; 3]> = after[0]
        .render
        .data
        .chunks(3)
        .map(|p| [p[0], p[1], p[2]].map(|c| c as f32 / 255.0))
        .collect();
    let psnr = splatcast_shaders::metrics::psnr(&got, &seen);
    assert!(
        psnr > 45.0,
        "reloaded PLY renders at {psnr:.1} dB of the trainer's view"
    );
}
