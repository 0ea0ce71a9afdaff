//! Training-step speed: milliseconds per step of the trainer's GPU work — render, loss, backward
//! (with workgroup atomics alone, and summed over subgroups where the device has them), Adam —
//! for trained scenes given as files (PLY, SPZ, …) and generated clouds of 100k and 300k Gaussians,
//! at the fox photos' 540×960 and at 1080p. Each row adds one stage to the step, so the
//! differences are the stages' costs. Trained scenes cost more than clouds of the same size:
//! larger, overlapping Gaussians make more tile pairs.
//!
//! `cargo run --release -p splatcast-shaders --bin train-bench -- [--steps N] [SCENE ...]`

use anyhow::{Context, Result};
use glam::{DVec3, Vec3};
use splatcast_protocol::{GaussianFrame, formats};
use splatcast_shaders::backward::Backward;
use splatcast_shaders::loss::Loss;
use splatcast_shaders::optimizer::{Adam, Exploration, LearningRates};
use splatcast_shaders::{Camera, Gpu, GpuGaussians, Renderer, synthetic};

/// The trainer's regularisers and noise, switched on so their cost counts.
const EXPLORE: Exploration = Exploration {
    opacity_reg: 1e-7,
    scale_reg: 1e-7,
    noise: 1e-3,
};

/// How much of a training step runs.
#[derive(Clone, Copy, PartialEq)]
enum Stages {
    Render,
    Loss,
    Backward { subgroups: bool },
    Step { subgroups: bool },
}

impl Stages {
    fn name(self) -> &'static str {
        match self {
            Stages::Render => "render",
            Stages::Loss => "+ loss",
            Stages::Backward { subgroups: false } => "+ backward (atomics)",
            Stages::Backward { subgroups: true } => "+ backward (subgroups)",
            Stages::Step { subgroups: false } => "+ Adam = step (atomics)",
            Stages::Step { subgroups: true } => "+ Adam = step (subgroups)",
        }
    }

    fn subgroups(self) -> Option<bool> {
        match self {
            Stages::Backward { subgroups } | Stages::Step { subgroups } => Some(subgroups),
            _ => None,
        }
    }
}

/// Milliseconds per step of `stages` over `steps` steps, views circling the cloud.
fn bench(
    gpu: &Gpu,
    frame: &GaussianFrame,
    size: (u32, u32),
    stages: Stages,
    steps: u32,
    backward: &[Backward; 2],
) -> Result<f64> {
    let (centre, radius) = synthetic::framing(frame);
    let camera_at = |i: u32| {
        let a = i as f64 * 0.05;
        let eye = centre + DVec3::new(a.sin(), -0.35, -a.cos()) * 2.5 * radius;
        Camera::look_at(eye, centre, DVec3::NEG_Y, 50.0, size.0, size.1)
    };
    let renderer = Renderer::new(gpu);
    let loss = Loss::new(gpu);
    let gaussians = GpuGaussians::upload(gpu, frame)?;
    let mut buffers = None;
    // The target: the cloud seen from a little further round, so every gradient is non-zero.
    let target = renderer.render(gpu, &gaussians, &mut buffers, &camera_at(7), Vec3::ZERO)?;
    let photo: Vec<[f32; 3]> = target.rgba.iter().map(|p| [p[0], p[1], p[2]]).collect();
    let r = buffers.context("made by render")?;
    // Room for every view of the circle.
    let r = renderer.buffers(gpu, &gaussians, size.0, size.1, r.capacity() * 2)?;
    let l = loss.buffers(gpu, &r)?;
    loss.set_target(gpu, &l, &photo)?;
    let param_grads = Backward::param_grads(gpu, &gaussians)?;
    let pass = backward[usize::from(stages.subgroups().unwrap_or(false))].buffers(
        gpu,
        &r,
        &gaussians,
        &l.grad,
        &param_grads,
    )?;
    let mut adam = Adam::new(gpu, &gaussians, &param_grads)?;
    let wait = || {
        gpu.device
            .poll(wgpu::PollType::wait_indefinitely())
            .context("waiting for the GPU")
    };
    let mut run = |first: u32, count: u32| -> Result<()> {
        for i in first..first + count {
            renderer.set_view(gpu, &r, &camera_at(i), Vec3::ZERO)?;
            let mut encoder = gpu.device.create_command_encoder(&Default::default());
            renderer.encode(&mut encoder, &r, None);
            if stages != Stages::Render {
                loss.encode(&mut encoder, &l);
            }
            if let Some(subgroups) = stages.subgroups() {
                backward[usize::from(subgroups)].encode(&mut encoder, &pass);
            }
            if let Stages::Step { .. } = stages {
                adam.encode(gpu, &mut encoder, &LearningRates::default(), 45, &EXPLORE);
            }
            gpu.queue.submit([encoder.finish()]);
            if i % 16 == 15 {
                wait()?;
            }
        }
        wait()?;
        Ok(())
    };
    run(0, 5)?;
    let start = std::time::Instant::now();
    run(5, steps)?;
    Ok(start.elapsed().as_secs_f64() * 1000.0 / steps as f64)
}

fn main() -> Result<()> {
    let mut steps = 100;
    let mut scenes: Vec<(String, GaussianFrame)> = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--steps" => steps = args.next().context("--steps N")?.parse()?,
            flag if flag.starts_with("--") => {
                anyhow::bail!("unknown option {flag} (expected --steps N and scene files)")
            }
            path => {
                let frame = formats::load(std::path::Path::new(path)).context(path.to_owned())?;
                scenes.push((path.to_owned(), frame));
            }
        }
    }
    for n in [100_000, 300_000] {
        scenes.push((format!("cloud {}k", n / 1000), synthetic::cloud(n)));
    }
    let mut gpu = Gpu::new()?;
    let offered = gpu.subgroups;
    gpu.subgroups = false;
    let atomics = Backward::new(&gpu)?;
    gpu.subgroups = offered;
    let summed = Backward::new(&gpu)?;
    let backward = [atomics, summed];
    println!("adapter: {}, subgroups: {offered}", gpu.describe());
    let mut stages = vec![
        Stages::Render,
        Stages::Loss,
        Stages::Backward { subgroups: false },
        Stages::Step { subgroups: false },
    ];
    if offered {
        stages.extend([
            Stages::Backward { subgroups: true },
            Stages::Step { subgroups: true },
        ]);
    }
    let sizes = [(540, 960), (1920, 1080)];
    println!(
        "| scene | Gaussians | stages | {} |",
        sizes.map(|(w, h)| format!("{w}x{h} ms/step")).join(" | ")
    );
    println!("|---|---:|---|{}", "---:|".repeat(sizes.len()));
    for (name, frame) in &scenes {
        for &s in &stages {
            let mut cells = Vec::new();
            for size in sizes {
                cells.push(format!(
                    "{:.2}",
                    bench(&gpu, frame, size, s, steps, &backward)?
                ));
            }
            println!(
                "| {name} | {} | {} | {} |",
                frame.len(),
                s.name(),
                cells.join(" | ")
            );
        }
    }
    Ok(())
}
