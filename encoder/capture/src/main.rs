//! `splatcast-capture`: renders an animated glTF from a rig of virtual cameras into a
//! multi-view video data set (N3DV / LLFF layout plus per-frame transforms.json) with exact
//! cameras, joint positions and optional masks.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::Parser;
use glam::Vec3;
use serde_json::json;
use splatcast_capture::rig::Layout;
use splatcast_capture::{Background, CaptureOptions, RigSpec, capture};

/// Render a glTF model from a camera rig into a multi-view video data set.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// The glTF model (.glb or .gltf).
    model: PathBuf,
    /// Output folder.
    #[arg(short, long)]
    output: PathBuf,
    /// Animation clip, by name or index (default: the first).
    #[arg(long)]
    clip: Option<String>,
    /// Training cameras.
    #[arg(long, default_value_t = 20)]
    cameras: usize,
    /// Held-out cameras, written to <output>/heldout.
    #[arg(long, default_value_t = 2)]
    held_out: usize,
    /// Camera layout: ring or dome.
    #[arg(long, default_value = "ring")]
    rig: String,
    /// Distance from the look-at point (default: the model fills the view).
    #[arg(long)]
    radius: Option<f32>,
    /// Ring height above the look-at point (default: radius / 4).
    #[arg(long)]
    height: Option<f32>,
    /// Look-at point X,Y,Z (default: the model's centre).
    #[arg(long)]
    look_at: Option<String>,
    /// Vertical field of view in degrees.
    #[arg(long, default_value_t = 40.0)]
    fov: f32,
    /// Image size WxH.
    #[arg(long, default_value = "960x540")]
    size: String,
    /// Frames per second.
    #[arg(long, default_value_t = 30.0)]
    fps: f32,
    /// Seconds to capture (default: one pass of the clip).
    #[arg(long)]
    duration: Option<f32>,
    /// Clip time of the first frame, in seconds.
    #[arg(long, default_value_t = 0.0)]
    start: f32,
    /// Background: R,G,B (0-1, linear) or "checker" (a textured dome).
    #[arg(long, default_value = "0,0,0")]
    background: String,
    /// Write alpha masks to masks/ (plain backgrounds).
    #[arg(long)]
    masks: bool,
    /// Pace frames at the frame rate, like a live rig.
    #[arg(long)]
    live: bool,
}

fn numbers(text: &str, what: &str) -> Result<Vec<f32>> {
    text.split(',')
        .map(|v| v.trim().parse::<f32>())
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("{what}: expected numbers separated by commas, got {text}"))
}

fn options(args: &Args) -> Result<CaptureOptions> {
    let layout = match args.rig.as_str() {
        "ring" => Layout::Ring,
        "dome" => Layout::Dome,
        other => bail!("--rig {other}: expected ring or dome"),
    };
    let (w, h) = args
        .size
        .split_once('x')
        .and_then(|(w, h)| Some((w.parse().ok()?, h.parse().ok()?)))
        .with_context(|| format!("--size {}: expected WxH", args.size))?;
    let look_at = match &args.look_at {
        Some(text) => match numbers(text, "--look-at")?[..] {
            [x, y, z] => Some(Vec3::new(x, y, z)),
            _ => bail!("--look-at needs X,Y,Z"),
        },
        None => None,
    };
    let background = if args.background == "checker" {
        Background::Checker
    } else {
        match numbers(&args.background, "--background")?[..] {
            [r, g, b] => Background::Plain([r, g, b]),
            _ => bail!("--background needs R,G,B or checker"),
        }
    };
    Ok(CaptureOptions {
        model: args.model.clone(),
        clip: args.clip.clone(),
        rig: RigSpec {
            layout,
            count: args.cameras,
            held_out: args.held_out,
            radius: args.radius,
            height: args.height,
            look_at,
            fov_y: args.fov,
            size: (w, h),
        },
        fps: args.fps,
        duration: args.duration,
        start: args.start,
        background,
        masks: args.masks,
        live: args.live,
        output: args.output.clone(),
    })
}

fn run(args: &Args) -> Result<()> {
    let options = options(args)?;
    let bar = indicatif::ProgressBar::new(0);
    let report = capture(&options, |done, all| {
        bar.set_length(all as u64);
        bar.set_position(done as u64);
    })?;
    bar.finish_and_clear();
    let images = report.frames * report.cameras.len();
    let summary = json!({
        "model": args.model.display().to_string(),
        "clip": report.clip,
        "frames": report.frames,
        "fps": args.fps,
        "start": args.start,
        "cameras": report.cameras.iter().map(|c| json!({
            "name": c.name,
            "held_out": c.held_out,
            "position": [c.position.x, c.position.y, c.position.z],
        })).collect::<Vec<_>>(),
        "size": [options.rig.size.0, options.rig.size.1],
        "adapter": report.adapter,
    });
    let path = args.output.join("capture.json");
    splatcast_protocol::atomic::write_file(
        &path,
        serde_json::to_string_pretty(&summary)?.as_bytes(),
    )
    .with_context(|| format!("{}: cannot write", path.display()))?;
    println!(
        "{}: {} frames x {} cameras ({} held out) in {:.1} s: {:.1} frames/s, {:.0} images/s{}; {}",
        args.output.display(),
        report.frames,
        report.cameras.len(),
        report.cameras.iter().filter(|c| c.held_out).count(),
        report.seconds,
        report.frames as f64 / report.seconds,
        images as f64 / report.seconds,
        if args.live {
            format!(", {} frames late", report.late_frames)
        } else {
            String::new()
        },
        report.adapter,
    );
    Ok(())
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("splatcast-capture: {e:#}");
            ExitCode::FAILURE
        }
    }
}
