//! Same PLY, same camera path, same resolution: frames/s and image quality of our renderer and
//! of bevy_gaussian_splatting 8.0.2 (bevy 0.19, headless, GPU radix sort), in one run. Quality is
//! PSNR/SSIM of each renderer's first frame against our f64 CPU reference.
//!
//! `cargo run --release -- <scene.ply> [--size 1920x1080] [--frames 300] [--out dir]`

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use bevy::app::{AppExit, ScheduleRunnerPlugin};
use bevy::camera::RenderTarget;
use bevy::core_pipeline::tonemapping::Tonemapping;
use bevy::prelude::*;
use bevy::render::render_resource::{PollType, TextureFormat};
use bevy::render::renderer::RenderDevice;
use bevy::render::view::screenshot::{Screenshot, ScreenshotCaptured};
use bevy::render::{Render, RenderApp, RenderSystems};
use bevy::window::ExitCondition;
use bevy::winit::WinitPlugin;
use bevy_gaussian_splatting::sort::SortMode;
use bevy_gaussian_splatting::{
    CloudSettings, GaussianCamera, GaussianSplattingPlugin, PlanarGaussian3d,
    PlanarGaussian3dHandle,
};
use glam::DVec3;
use splatcast_protocol::{GaussianFrame, formats};
use splatcast_shaders::{
    Camera as PinholeCamera, Gpu, GpuGaussians, Renderer, metrics, reference, synthetic,
};

const FOV_DEGREES: f64 = 50.0;
const WARMUP_FRAMES: u32 = 60;

/// The shared camera path: a slow orbit, so both renderers re-sort every frame.
#[derive(Clone, Copy, Resource)]
struct Path3 {
    centre: DVec3,
    radius: f64,
}

impl Path3 {
    fn eye(&self, i: u32) -> DVec3 {
        let a = i as f64 * 0.01;
        self.centre + DVec3::new(a.sin(), -0.35, -a.cos()) * 2.5 * self.radius
    }

    fn pinhole(&self, i: u32, width: u32, height: u32) -> PinholeCamera {
        PinholeCamera::look_at(
            self.eye(i),
            self.centre,
            DVec3::NEG_Y,
            FOV_DEGREES,
            width,
            height,
        )
    }

    fn transform(&self, i: u32) -> Transform {
        Transform::from_translation(self.eye(i).as_vec3())
            .looking_at(self.centre.as_vec3(), Vec3::NEG_Y)
    }
}

fn centre_radius(frame: &GaussianFrame) -> Path3 {
    let (centre, radius) = synthetic::framing(frame);
    Path3 { centre, radius }
}

/// Frames/s and the first frame's pixels (linear RGB as stored).
struct Outcome {
    fps: f64,
    rgb: Vec<[f32; 3]>,
}

fn ours(
    frame: &GaussianFrame,
    path: Path3,
    size: (u32, u32),
    frames: u32,
) -> Result<(Outcome, String)> {
    let gpu = Gpu::new()?;
    let renderer = Renderer::new(&gpu);
    let gaussians = GpuGaussians::upload(&gpu, frame)?;
    let mut buffers = None;
    let first = renderer.render(
        &gpu,
        &gaussians,
        &mut buffers,
        &path.pinhole(0, size.0, size.1),
        Vec3::ZERO,
    )?;
    let mut b = buffers.context("buffers")?;
    let pairs = renderer.pairs_wanted(&gpu, &b)?;
    b = renderer.buffers(
        &gpu,
        &gaussians,
        size.0,
        size.1,
        (pairs as u64 * 3 / 2).max(1 << 16) as u32,
    )?;
    let fps = renderer.frames_per_second(&gpu, &b, frames, |i| path.pinhole(i, size.0, size.1))?;
    let rgb = first.rgba.iter().map(|p| [p[0], p[1], p[2]]).collect();
    Ok((Outcome { fps, rgb }, gpu.describe()))
}

#[derive(Resource)]
struct Bench {
    path: Path3,
    frames: u32,
    cloud: Handle<PlanarGaussian3d>,
    target: Handle<Image>,
    phase: Phase,
    started: Instant,
    result: Arc<Mutex<Option<(f64, Image)>>>,
}

enum Phase {
    Loading,
    Warmup(u32),
    Timing { frame: u32, start: Instant },
    Capturing,
}

impl Phase {
    fn name(&self) -> &'static str {
        match self {
            Phase::Loading => "loading",
            Phase::Warmup(_) => "warm-up",
            Phase::Timing { .. } => "timing",
            Phase::Capturing => "capturing",
        }
    }
}

fn setup(
    mut commands: Commands,
    mut images: ResMut<Assets<Image>>,
    assets: Res<AssetServer>,
    cfg: Res<Config>,
) {
    let mut image = Image::new_target_texture(cfg.size.0, cfg.size.1, cfg.format, None);
    image.texture_descriptor.usage |= bevy::render::render_resource::TextureUsages::COPY_SRC;
    let target = images.add(image);
    let cloud: Handle<PlanarGaussian3d> = assets.load(cfg.file_name.clone());
    commands.spawn((
        PlanarGaussian3dHandle(cloud.clone()),
        CloudSettings {
            sort_mode: cfg.sort.clone(),
            ..default()
        },
        Transform::IDENTITY,
        Visibility::Visible,
    ));
    commands.spawn((
        Camera3d::default(),
        Camera {
            clear_color: ClearColorConfig::Custom(Color::BLACK),
            ..default()
        },
        RenderTarget::Image(target.clone().into()),
        Projection::Perspective(PerspectiveProjection {
            fov: (FOV_DEGREES as f32).to_radians(),
            near: 0.01,
            ..default()
        }),
        cfg.path.transform(0),
        Tonemapping::None,
        GaussianCamera::default(),
    ));
    commands.insert_resource(Bench {
        path: cfg.path,
        frames: cfg.frames,
        cloud,
        target,
        phase: Phase::Loading,
        started: Instant::now(),
        result: cfg.result.clone(),
    });
}

fn drive(
    mut commands: Commands,
    mut bench: ResMut<Bench>,
    assets: Res<AssetServer>,
    mut cameras: Query<&mut Transform, With<Camera3d>>,
    mut exit: MessageWriter<AppExit>,
) {
    let bench = &mut *bench;
    if bench.started.elapsed() > Duration::from_secs(90) {
        eprintln!(
            "bevy: no result after 90 s (phase {}), giving up",
            bench.phase.name()
        );
        exit.write(AppExit::error());
        return;
    }
    let next = match bench.phase {
        Phase::Loading if assets.is_loaded_with_dependencies(&bench.cloud) => Phase::Warmup(0),
        Phase::Loading => Phase::Loading,
        Phase::Warmup(n) if n >= WARMUP_FRAMES => Phase::Timing {
            frame: 0,
            start: Instant::now(),
        },
        Phase::Warmup(n) => Phase::Warmup(n + 1),
        Phase::Timing { frame, start } if frame >= bench.frames => {
            let result = bench.result.clone();
            let frames = bench.frames;
            commands
                .spawn(Screenshot::image(bench.target.clone()))
                .observe(move |captured: On<ScreenshotCaptured>| {
                    // The readback finishes after every earlier frame's GPU work.
                    let fps = (frames + 1) as f64 / start.elapsed().as_secs_f64();
                    *result.lock().expect("lock") = Some((fps, captured.image.clone()));
                });
            Phase::Capturing
        }
        Phase::Timing { frame, start } => Phase::Timing {
            frame: frame + 1,
            start,
        },
        Phase::Capturing => Phase::Capturing,
    };
    if next.name() != bench.phase.name() {
        eprintln!(
            "bevy: {} after {:.2} s",
            next.name(),
            bench.started.elapsed().as_secs_f64()
        );
    }
    // Frame 0's view is where the screenshot is taken, for the quality comparison.
    let view = match next {
        Phase::Timing { frame, .. } => frame,
        _ => 0,
    };
    for mut t in &mut cameras {
        *t = bench.path.transform(view);
    }
    bench.phase = next;
}

/// With `--paced`, every frame waits for the GPU before the next starts: frames/s counts
/// completed frames one at a time instead of a queue of submissions.
fn wait_for_gpu(device: Res<RenderDevice>) {
    let _ = device.poll(PollType::wait_indefinitely());
}

fn finish(bench: Res<Bench>, mut exit: MessageWriter<AppExit>) {
    if bench.result.lock().expect("lock").is_some() {
        exit.write(AppExit::Success);
    }
}

#[derive(Resource, Clone)]
struct Config {
    file_name: String,
    size: (u32, u32),
    frames: u32,
    path: Path3,
    format: TextureFormat,
    sort: SortMode,
    result: Arc<Mutex<Option<(f64, Image)>>>,
}

fn bevy_gs(
    ply: &Path,
    path: Path3,
    size: (u32, u32),
    frames: u32,
    format: TextureFormat,
    sort: SortMode,
    paced: bool,
) -> Result<Outcome> {
    let dir = ply
        .parent()
        .context("PLY path has no folder")?
        .canonicalize()?;
    let file_name = ply
        .file_name()
        .and_then(|n| n.to_str())
        .context("PLY name")?
        .to_owned();
    let result = Arc::new(Mutex::new(None));
    let config = Config {
        file_name,
        size,
        frames,
        path,
        format,
        sort,
        result: result.clone(),
    };
    let mut app = App::new();
    app.insert_resource(config)
        .add_plugins(
            DefaultPlugins
                .set(AssetPlugin {
                    file_path: dir.display().to_string(),
                    ..default()
                })
                .set(WindowPlugin {
                    primary_window: None,
                    exit_condition: ExitCondition::DontExit,
                    ..default()
                })
                .disable::<WinitPlugin>(),
        )
        .add_plugins(ScheduleRunnerPlugin::run_loop(Duration::ZERO))
        .add_plugins(GaussianSplattingPlugin)
        .add_systems(Startup, setup)
        .add_systems(Update, (drive, finish).chain());
    if paced {
        app.sub_app_mut(RenderApp)
            .add_systems(Render, wait_for_gpu.after(RenderSystems::Render));
    }
    app.run();
    let (fps, image) = result
        .lock()
        .expect("lock")
        .take()
        .context("bevy run ended without a frame")?;
    let data = image.data.context("screenshot without pixels")?;
    let (w, h) = (
        image.texture_descriptor.size.width,
        image.texture_descriptor.size.height,
    );
    if (w, h) != size || data.len() != (w * h * 4) as usize {
        bail!("screenshot is {w}x{h} with {} bytes", data.len());
    }
    // The stored bytes are what a screen shows (an sRGB target encodes on write), which is
    // what our renderer's values mean too (3DGS colours are display values).
    let rgb = data
        .chunks(4)
        .map(|p| {
            [
                p[0] as f32 / 255.0,
                p[1] as f32 / 255.0,
                p[2] as f32 / 255.0,
            ]
        })
        .collect();
    Ok(Outcome { fps, rgb })
}

fn write_png(path: &Path, size: (u32, u32), rgb: &[[f32; 3]]) -> Result<()> {
    let bytes: Vec<u8> = rgb
        .iter()
        .flat_map(|p| p.map(|v| (v.clamp(0.0, 1.0) * 255.0).round() as u8))
        .collect();
    let file = std::fs::File::create(path)?;
    let mut encoder = png::Encoder::new(std::io::BufWriter::new(file), size.0, size.1);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    encoder.write_header()?.write_image_data(&bytes)?;
    Ok(())
}

fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let (mut ply, mut size, mut frames, mut out) =
        (None, (1920u32, 1080u32), 300u32, PathBuf::from("."));
    let mut format = TextureFormat::Rgba8UnormSrgb;
    let mut cloud = None;
    let mut sort = SortMode::Radix;
    let mut paced = false;
    while let Some(a) = args.next() {
        match a.as_str() {
            "--size" => {
                let s = args.next().context("--size WxH")?;
                let (w, h) = s.split_once('x').context("--size WxH")?;
                size = (w.parse()?, h.parse()?);
            }
            "--frames" => frames = args.next().context("--frames N")?.parse()?,
            "--out" => out = args.next().context("--out DIR")?.into(),
            "--linear-target" => format = TextureFormat::Rgba8Unorm,
            "--paced" => paced = true,
            "--sort" => {
                sort = match args.next().as_deref() {
                    Some("radix") => SortMode::Radix,
                    Some("rayon") => SortMode::Rayon,
                    _ => bail!("--sort radix|rayon"),
                }
            }
            "--cloud" => cloud = Some(args.next().context("--cloud N")?.parse::<usize>()?),
            _ => ply = Some(PathBuf::from(a)),
        }
    }
    std::fs::create_dir_all(&out)?;
    if let Some(n) = cloud {
        // The generated benchmark cloud, written as a PLY both renderers load.
        let file = out.join(format!("cloud_{n}.ply"));
        std::fs::write(
            &file,
            splatcast_protocol::formats::ply::write(&synthetic::cloud(n)),
        )?;
        ply = Some(file);
    }
    let ply = ply.context(
        "usage: bevy-compare <scene.ply> | --cloud N [--size WxH] [--frames N] [--out DIR]",
    )?;
    let frame = formats::load(&ply)?;
    let path = centre_radius(&frame);
    println!(
        "scene {} ({} Gaussians), {}x{}, {frames} frames on an orbit",
        ply.display(),
        frame.len(),
        size.0,
        size.1
    );
    // bevy_gaussian_splatting first, in a fresh process state: nothing of ours has touched the
    // GPU when it starts.
    let theirs = bevy_gs(&ply, path, size, frames, format, sort.clone(), paced)?;
    println!(
        "bevy_gaussian_splatting ({sort:?} sort): {:.0} frames/s ({:.3} ms)",
        theirs.fps,
        1000.0 / theirs.fps
    );
    let (ours, adapter) = ours(&frame, path, size, frames)?;
    println!("adapter: {adapter}");
    println!(
        "splatcast: {:.0} frames/s ({:.3} ms)",
        ours.fps,
        1000.0 / ours.fps
    );
    let reference = reference::render(&frame, &path.pinhole(0, size.0, size.1), DVec3::ZERO)?;
    let reference: Vec<[f32; 3]> = reference
        .rgb
        .iter()
        .map(|c| c.as_vec3().to_array())
        .collect();
    write_png(&out.join("reference.png"), size, &reference)?;
    println!(
        "| renderer | frames/s | ms/frame | PSNR vs f64 reference | SSIM vs reference | PSNR vs the other |"
    );
    println!("|---|---:|---:|---:|---:|---:|");
    let between = metrics::psnr(&ours.rgb, &theirs.rgb);
    for (name, o, png) in [
        ("splatcast".to_owned(), &ours, "splatcast.png"),
        (
            format!("bevy_gaussian_splatting 8.0.2 ({sort:?} sort)"),
            &theirs,
            "bevy_gaussian_splatting.png",
        ),
    ] {
        write_png(&out.join(png), size, &o.rgb)?;
        println!(
            "| {name} | {:.0} | {:.3} | {:.2} dB | {:.4} | {between:.2} dB |",
            o.fps,
            1000.0 / o.fps,
            metrics::psnr(&o.rgb, &reference),
            metrics::ssim(&o.rgb, &reference, size.0 as usize, size.1 as usize)
        );
    }
    println!(
        "speed ratio (splatcast / bevy_gaussian_splatting): {:.2}x",
        ours.fps / theirs.fps
    );
    Ok(())
}
