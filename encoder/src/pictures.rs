//! The `render` and `eval` commands: pictures of any input, and image quality of encodes
//! against their source.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail, ensure};
use glam::Vec3;
use splatcast_encoder::plot::{Point, Series, rd_plot};
use splatcast_encoder::quality::ViewScorer;
use splatcast_encoder::scene::{FrameSet, bounds};
use splatcast_encoder::views::{Orbit, Up, parse_size, read_transforms, resized, ring};
use splatcast_protocol::GaussianFrame;
use splatcast_protocol::atomic::write_file;
use splatcast_shaders::{Camera, Gpu, GpuGaussians, RenderedImage, Renderer};

use crate::commands::bar;

/// Where the cameras come from.
pub struct ViewChoice {
    /// Orbit (render) or ring base (eval) around the scene.
    pub orbit: Option<String>,
    /// A transforms.json whose views are used instead.
    pub transforms: Option<PathBuf>,
    /// Output size; defaults to the transforms' size or the command's default.
    pub size: Option<String>,
    /// Which way is up for orbits.
    pub up: Up,
}

impl ViewChoice {
    /// The cameras asked for: every view of the transforms file (resized to `--size`), or `count`
    /// orbit cameras on a ring around `frame` (one orbit camera when `count` is 1).
    fn cameras(
        &self,
        frame: &GaussianFrame,
        count: usize,
        default_size: (u32, u32),
    ) -> Result<Vec<Camera>> {
        let size = self.size.as_deref().map(parse_size).transpose()?;
        if let Some(json) = &self.transforms {
            return Ok(read_transforms(json)?
                .iter()
                .map(|v| size.map_or(v.camera, |(w, h)| resized(&v.camera, w, h)))
                .collect());
        }
        let orbit = self
            .orbit
            .as_deref()
            .map(Orbit::parse)
            .transpose()?
            .unwrap_or_default();
        let (centre, radius) = bounds(frame);
        let (w, h) = size.unwrap_or(default_size);
        Ok(ring(orbit, count, centre, radius, self.up, w, h))
    }
}

/// Encodes `image` as an 8-bit RGB PNG.
pub fn png_bytes(image: &RenderedImage) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut encoder = png::Encoder::new(&mut out, image.width, image.height);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header()?;
    writer.write_image_data(&image.to_rgb8())?;
    writer.finish()?;
    Ok(out)
}

pub(crate) fn parse_background(spec: &str) -> Result<Vec3> {
    let v: Vec<f32> = spec
        .split(',')
        .map(|s| s.trim().parse::<f32>())
        .collect::<Result<_, _>>()
        .with_context(|| format!("background '{spec}': expected R,G,B in [0, 1]"))?;
    ensure!(
        v.len() == 3 && v.iter().all(|c| (0.0..=1.0).contains(c)),
        "background '{spec}': expected R,G,B in [0, 1]"
    );
    Ok(Vec3::new(v[0], v[1], v[2]))
}

fn open_gpu() -> Result<(Gpu, Renderer)> {
    let gpu = Gpu::new().context("GPU")?;
    let renderer = Renderer::new(&gpu);
    Ok((gpu, renderer))
}

/// `splatcast render`.
pub fn render(
    input: &Path,
    frame: usize,
    views: &ViewChoice,
    view: usize,
    background: &str,
    output: &Path,
) -> Result<()> {
    let background = parse_background(background)?;
    let mut set = FrameSet::open(input)?;
    let gaussians_frame = set.frame(frame)?;
    if views.transforms.is_some() && views.orbit.is_some() {
        bail!("--camera and --transforms exclude each other");
    }
    let cameras = views.cameras(&gaussians_frame, 1, (960, 720))?;
    let camera = *cameras.get(view).with_context(|| {
        let file = views
            .transforms
            .as_deref()
            .unwrap_or(Path::new("the orbit"));
        format!(
            "{}: view {view} requested, it has {}",
            file.display(),
            cameras.len()
        )
    })?;
    let (gpu, renderer) = open_gpu()?;
    let gaussians = GpuGaussians::upload(&gpu, &gaussians_frame)?;
    let image = renderer.render(&gpu, &gaussians, &mut None, &camera, background)?;
    write_file(output, &png_bytes(&image)?)
        .with_context(|| format!("{}: cannot write", output.display()))?;
    println!(
        "{}: frame {frame}, {} Gaussians, {}x{} on {}",
        output.display(),
        gaussians_frame.len(),
        image.width,
        image.height,
        gpu.describe()
    );
    Ok(())
}

/// Parses `A..B` (end exclusive) or a single frame index.
fn parse_frames(spec: &str, count: usize) -> Result<std::ops::Range<usize>> {
    let range = match spec.split_once("..") {
        Some((a, b)) => {
            let a = if a.is_empty() { 0 } else { a.parse()? };
            let b = if b.is_empty() { count } else { b.parse()? };
            a..b
        }
        None => {
            let k: usize = spec.parse()?;
            k..k + 1
        }
    };
    ensure!(
        range.start < range.end && range.end <= count,
        "frames {spec}: the reference has {count} frames"
    );
    Ok(range)
}

/// Per candidate: PSNR and SSIM per frame.
pub(crate) struct Scores {
    pub(crate) psnr: Vec<f64>,
    pub(crate) ssim: Vec<f64>,
}

/// `splatcast eval`.
#[allow(clippy::too_many_arguments)]
pub fn eval(
    reference: &Path,
    candidates: &[PathBuf],
    frames: Option<&str>,
    view_count: usize,
    views: &ViewChoice,
    background: &str,
    plot: Option<&Path>,
) -> Result<()> {
    ensure!(
        !candidates.is_empty(),
        "give at least one candidate to compare with the reference"
    );
    ensure!(
        (1..=1000).contains(&view_count),
        "--views must be 1 to 1000"
    );
    let background = parse_background(background)?;
    let mut reference_set = FrameSet::open(reference)?;
    ensure!(
        !reference_set.is_empty(),
        "{}: no frames",
        reference.display()
    );
    let range = match frames {
        Some(spec) => parse_frames(spec, reference_set.len())?,
        None => 0..reference_set.len(),
    };
    let first = reference_set.frame(range.start)?;
    let cameras = views.cameras(&first, view_count, (512, 512))?;
    let scorer = ViewScorer::new(cameras, background)?;
    eprintln!(
        "rendering on {}, {} views",
        scorer.describe(),
        scorer.views()
    );
    let mut sets: Vec<FrameSet> = candidates
        .iter()
        .map(|c| FrameSet::open(c))
        .collect::<Result<_, _>>()?;
    for set in &sets {
        if set.len() < range.end {
            bail!(
                "{}: has {} frames, the comparison needs {}",
                set.path().display(),
                set.len(),
                range.end
            );
        }
    }
    let mut scores: Vec<Scores> = candidates
        .iter()
        .map(|_| Scores {
            psnr: vec![],
            ssim: vec![],
        })
        .collect();
    let mut gaussians = 0usize;
    let pb = bar((range.len() * candidates.len()) as u64, "rendering");
    for k in range.clone() {
        let ref_frame = if k == range.start {
            first.clone()
        } else {
            reference_set.frame(k)?
        };
        gaussians += ref_frame.len();
        let ref_views = scorer.render(&ref_frame)?;
        for (set, score) in sets.iter_mut().zip(&mut scores) {
            let s = scorer.score(&ref_views, &set.frame(k)?, true)?;
            score.psnr.push(s.psnr);
            score.ssim.push(s.ssim.unwrap_or(0.0));
            pb.inc(1);
        }
    }
    pb.finish_and_clear();
    let mean_gaussians = gaussians as f64 / range.len() as f64;
    println!(
        "{:<40} {:>7} {:>10} {:>8} {:>8}",
        "candidate", "frame", "B/G/frame", "PSNR dB", "SSIM"
    );
    let mut series: Vec<Series> = Vec::new();
    for (set, score) in sets.iter().zip(&scores) {
        let name = set.path().display().to_string();
        let bpg = set.bytes() as f64 / (mean_gaussians * set.len() as f64);
        if range.len() > 1 {
            for (i, k) in range.clone().enumerate() {
                println!(
                    "{:<40} {:>7} {:>10} {:>8.2} {:>8.4}",
                    name, k, "", score.psnr[i], score.ssim[i]
                );
            }
        }
        let psnr = score.psnr.iter().sum::<f64>() / score.psnr.len() as f64;
        let ssim = score.ssim.iter().sum::<f64>() / score.ssim.len() as f64;
        println!(
            "{:<40} {:>7} {:>10.3} {:>8.2} {:>8.4}",
            name, "mean", bpg, psnr, ssim
        );
        let label = series_name(set.path());
        let point = Point { x: bpg, y: psnr };
        match series.iter_mut().find(|s| s.name == label) {
            Some(s) => s.points.push(point),
            None => series.push(Series {
                name: label,
                points: vec![point],
            }),
        }
    }
    if let Some(path) = plot {
        let png = rd_plot(&series, "bytes / Gaussian / frame", "PSNR (dB)")?;
        write_file(path, &png).with_context(|| format!("{}: cannot write", path.display()))?;
        println!("wrote {}", path.display());
    }
    Ok(())
}

/// Curves group encodes by file stem up to its last `_` (`wave_gop30_low.mp4` → `wave_gop30`).
fn series_name(path: &Path) -> String {
    let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("input");
    stem.rsplit_once('_')
        .map_or(stem, |(head, _)| head)
        .to_owned()
}
