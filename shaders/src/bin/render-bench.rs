//! Render speed: frames/s of the GPU renderer for the donut (or any PLY given) and generated
//! clouds of 100k, 500k and 1M Gaussians at 1920×1080 and 1280×720, with GPU time split into
//! project / depth sort / bin + tile sort / rasterize when the adapter has timestamps. Tile pairs
//! are the most any view of the orbit wanted (the buffers are sized for it).
//!
//! `cargo run --release -p splatcast-shaders --bin render-bench -- [--frames N] [PLY ...]`

use std::path::PathBuf;

use anyhow::{Context, Result};
use glam::{DVec3, Vec3};
use splatcast_protocol::{GaussianFrame, formats};
use splatcast_shaders::renderer::{PHASES, Timestamps};
use splatcast_shaders::{Camera, Gpu, GpuGaussians, Renderer, synthetic};

struct Row {
    scene: String,
    gaussians: usize,
    size: (u32, u32),
    fps: f64,
    phases: Option<[f64; 4]>,
    pairs: u32,
}

fn bench(
    gpu: &Gpu,
    renderer: &Renderer,
    name: &str,
    frame: &GaussianFrame,
    size: (u32, u32),
    frames: usize,
) -> Result<Row> {
    let (centre, radius) = synthetic::framing(frame);
    let gaussians = GpuGaussians::upload(gpu, frame)?;
    let camera_at = |i: usize| {
        let a = i as f64 * 0.01;
        let eye = centre + DVec3::new(a.sin(), -0.35, -a.cos()) * 2.5 * radius;
        Camera::look_at(eye, centre, DVec3::NEG_Y, 50.0, size.0, size.1)
    };
    // Renders round the orbit size the intersection buffers for its widest view (a trained
    // scene's pair count changes a lot with the view).
    let mut buffers = None;
    let mut pairs = 0;
    for i in (0..frames.max(1)).step_by(10) {
        renderer.render(gpu, &gaussians, &mut buffers, &camera_at(i), Vec3::ZERO)?;
        let b = buffers.as_ref().context("buffers")?;
        pairs = pairs.max(renderer.pairs_wanted(gpu, b)?);
    }
    let mut b = buffers.context("buffers")?;
    if pairs as u64 * 5 / 4 > b.capacity() as u64 {
        b = renderer.buffers(
            gpu,
            &gaussians,
            size.0,
            size.1,
            (pairs as u64 * 3 / 2) as u32,
        )?;
    }
    let timestamps = Timestamps::new(gpu);
    let mut phases = [0.0; 4];
    let samples = 10;
    if let Some(t) = &timestamps {
        for i in 0..samples {
            renderer.set_view(gpu, &b, &camera_at(i), Vec3::ZERO)?;
            let mut encoder = gpu.device.create_command_encoder(&Default::default());
            renderer.encode(&mut encoder, &b, Some(t));
            gpu.queue.submit([encoder.finish()]);
            let p = t.read(gpu)?;
            for (acc, v) in phases.iter_mut().zip(p) {
                *acc += v / samples as f64;
            }
        }
    }
    let fps = renderer.frames_per_second(gpu, &b, frames as u32, |i| camera_at(i as usize))?;
    Ok(Row {
        scene: name.to_owned(),
        gaussians: frame.len(),
        size,
        fps,
        phases: timestamps.is_some().then_some(phases),
        pairs,
    })
}

fn main() -> Result<()> {
    let mut frames = 300;
    let mut plys: Vec<PathBuf> = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--frames" => frames = args.next().context("--frames N")?.parse()?,
            _ => plys.push(a.into()),
        }
    }
    let gpu = Gpu::new()?;
    let renderer = Renderer::new(&gpu);
    println!("adapter: {}", gpu.describe());
    let mut scenes: Vec<(String, GaussianFrame)> = Vec::new();
    for p in &plys {
        let name = p
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("scene")
            .to_owned();
        scenes.push((
            name,
            formats::load(p).with_context(|| p.display().to_string())?,
        ));
    }
    for n in [100_000, 500_000, 1_000_000] {
        scenes.push((format!("cloud {}k", n / 1000), synthetic::cloud(n)));
    }
    println!(
        "| scene | Gaussians | size | frames/s | ms/frame | tile pairs | {} |",
        PHASES.map(|p| format!("{p} ms")).join(" | ")
    );
    println!(
        "|---|---:|---|---:|---:|---:|{}",
        "---:|".repeat(PHASES.len())
    );
    for (name, frame) in &scenes {
        for size in [(1920, 1080), (1280, 720)] {
            let r = bench(&gpu, &renderer, name, frame, size, frames)?;
            let phases = r
                .phases
                .map(|p| p.map(|v| format!("{v:.3}")).join(" | "))
                .unwrap_or_else(|| vec!["–"; PHASES.len()].join(" | "));
            println!(
                "| {} | {} | {}x{} | {:.0} | {:.3} | {} | {} |",
                r.scene,
                r.gaussians,
                r.size.0,
                r.size.1,
                r.fps,
                1000.0 / r.fps,
                r.pairs,
                phases
            );
        }
    }
    Ok(())
}
