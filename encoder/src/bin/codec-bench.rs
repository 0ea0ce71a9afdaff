//! Codec benchmark: bytes per Gaussian per frame and attribute errors on the real data in
//! `../shared/data`, plus encode and decode speed on this machine. Prints a markdown table;
//! `--write BENCHMARKS.md` replaces the codec section of that file.
//!
//! With `--render`, every case is also rendered on the GPU from a ring of 16 cameras (512×512)
//! and scored by PSNR/SSIM against the uncompressed input; `--plot rd.png` draws the
//! rate–distortion curves.
//!
//! `cargo run --release -p splatcast-encoder --bin codec-bench -- [--only wave] [--write BENCHMARKS.md] [--render] [--plot rd.png]`
//!
//! `--export-resorted DIR` writes the re-sorted deforming donut sequence as PLY files and exits.

use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use glam::{Quat, Vec3};
use splatcast_encoder::metrics::{AttributeErrors, ErrorAccumulator};
use splatcast_encoder::plot::{Point, Series, rd_plot};
use splatcast_encoder::quality::ViewScorer;
use splatcast_encoder::scene::bounds;
use splatcast_encoder::views::{Orbit, Up, ring};
use splatcast_encoder::{EncodeOptions, Quality, SequenceEncoder, kept_gaussians, stream_layout};
use splatcast_protocol::GaussianFrame;
use splatcast_protocol::av1::{Picture, Rav1dDecoder};
use splatcast_protocol::formats;
use splatcast_protocol::gop::{Attribute, GopStart, KeyframeCoding, pack, unpack};
use splatcast_protocol::layout::Grid;
use splatcast_protocol::sequence::list_frames;
use splatcast_protocol::stream::StreamReader;

struct Case {
    name: String,
    /// World direction shown up on the evaluation ring.
    up: Up,
    frames: Vec<GaussianFrame>,
    input_bytes: Option<u64>,
    options: EncodeOptions,
}

struct Row {
    name: String,
    frames: usize,
    gaussians: usize,
    gop: usize,
    quality: Quality,
    bytes: usize,
    input_bpg: Option<f64>,
    errors: AttributeErrors,
    eight_bit: AttributeErrors,
    encode_fps: f64,
    decode_fps: f64,
    /// Mean render PSNR and SSIM against the input, when rendered.
    render: Option<(f64, f64)>,
}

/// The shared data folder, or `$SPLATCAST_DATA` (the GPU machine has no `../shared`).
fn data(rel: &str) -> PathBuf {
    std::env::var_os("SPLATCAST_DATA")
        .map_or_else(
            || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/data"),
            PathBuf::from,
        )
        .join(rel)
}

/// Errors of plain 8-bit uniform quantisation of every attribute (no AV1): the yardstick for
/// "within 8-bit-equivalent error".
fn eight_bit_reference(frames: &[GaussianFrame]) -> AttributeErrors {
    let degree = frames[0].sh_degree;
    let tracks: Vec<(Attribute, u8)> = Attribute::for_degree(degree)
        .into_iter()
        .map(|a| (a, 8))
        .collect();
    let mut acc = ErrorAccumulator::default();
    let packed = pack(
        frames,
        Grid::for_count(frames[0].len()),
        &tracks,
        0,
        KeyframeCoding::Exact,
        GopStart::First,
        vec![0; frames.len()],
    )
    .expect("exact keyframes need no codec");
    let planes: Vec<Vec<Picture>> = packed.planes.iter().map(|p| p.pictures.clone()).collect();
    let decoded = unpack(&packed.side, &planes).expect("own planes");
    for (f, d) in frames.iter().zip(&decoded) {
        acc.add(&f.permuted(&packed.coded_order), d);
    }
    acc.finish()
}

/// Mean render PSNR and SSIM of `decoded` against `input` over at most 20 evenly spaced frames.
fn render_quality(case: &Case, decoded: &[GaussianFrame]) -> Result<(f64, f64)> {
    let (centre, radius) = bounds(&case.frames[0]);
    let cameras = ring(Orbit::default(), 16, centre, radius, case.up, 512, 512);
    let scorer = ViewScorer::new(cameras, Vec3::ZERO)?;
    let step = case.frames.len().div_ceil(20).max(1);
    let (mut psnr, mut ssim, mut n) = (0.0, 0.0, 0);
    for k in (0..case.frames.len()).step_by(step) {
        let reference = scorer.render(&case.frames[k])?;
        let s = scorer.score(&reference, &decoded[k], true)?;
        psnr += s.psnr;
        ssim += s.ssim.unwrap_or(0.0);
        n += 1;
    }
    let (psnr, ssim) = (psnr / n as f64, ssim / n as f64);
    eprintln!(
        "  render PSNR {psnr:.2} dB, SSIM {ssim:.4} ({n} frames x 16 views on {})",
        scorer.describe()
    );
    Ok((psnr, ssim))
}

fn run(case: &Case, render: bool) -> Result<Row> {
    let n = case
        .frames
        .iter()
        .map(GaussianFrame::len)
        .max()
        .unwrap_or(0);
    // As `splatcast encode` lays out one frame: for the Gaussians it keeps.
    let planes = match &case.frames[..] {
        [frame] => kept_gaussians(std::slice::from_ref(frame), &case.options),
        _ => n,
    };
    let layout = stream_layout(&case.options, planes, case.frames[0].sh_degree);
    let start = Instant::now();
    let mut enc = SequenceEncoder::new(Vec::new(), layout, case.options.clone(), true);
    for f in &case.frames {
        enc.push(f.clone())?;
    }
    let encoded = enc.finish()?;
    let (bytes, reference) = (encoded.output, encoded.reference);
    let encode_secs = start.elapsed().as_secs_f64();
    let reference = reference.context("reference kept")?;

    let start = Instant::now();
    let mut reader = StreamReader::open(Cursor::new(&bytes))?;
    let mut dec = Rav1dDecoder::new(0);
    let mut decoded = Vec::new();
    for g in 0..reader.gop_count() {
        decoded.extend(reader.read_gop(g, &mut dec)?.frames);
    }
    let decode_secs = start.elapsed().as_secs_f64();
    let mut acc = ErrorAccumulator::default();
    for (r, d) in reference.iter().zip(&decoded) {
        acc.add(r, d);
    }
    let gaussian_frames: usize = case.frames.iter().map(GaussianFrame::len).sum();
    Ok(Row {
        name: case.name.clone(),
        frames: case.frames.len(),
        gaussians: n,
        gop: case.options.gop,
        quality: case.options.quality,
        bytes: bytes.len(),
        input_bpg: case.input_bytes.map(|b| b as f64 / gaussian_frames as f64),
        errors: acc.finish(),
        eight_bit: eight_bit_reference(&reference[..reference.len().min(case.options.gop)]),
        encode_fps: case.frames.len() as f64 / encode_secs,
        decode_fps: case.frames.len() as f64 / decode_secs,
        render: render.then(|| render_quality(case, &decoded)).transpose()?,
    })
}

/// The donut turned by a small rigid motion per frame: 0.5° about the vertical axis and a
/// drift of 0.2% of its extent.
fn rigid_sequence(base: &GaussianFrame, frames: usize) -> Vec<GaussianFrame> {
    let centre = base.bounds().map_or(Vec3::ZERO, |(lo, hi)| (lo + hi) / 2.0);
    let extent = base.extent();
    (0..frames)
        .map(|t| {
            let r = Quat::from_rotation_y((0.5 * t as f32).to_radians());
            let shift = Vec3::new(0.002, 0.001, 0.0) * extent * t as f32;
            let mut f = base.clone();
            for (p, q) in f.positions.iter_mut().zip(&mut f.rotations) {
                *p = r * (*p - centre) + centre + shift;
                *q = r * *q;
            }
            f
        })
        .collect()
}

/// The donut deformed (a travelling wave of 1 % of its extent, moving about half a Gaussian
/// spacing per frame) and stored re-sorted every frame, as writers that sort spatially do: the
/// correspondence case of real dynamic captures.
fn resorted_sequence(base: &GaussianFrame, frames: usize) -> Vec<GaussianFrame> {
    let extent = base.extent();
    let k = std::f32::consts::TAU / extent;
    (0..frames)
        .map(|t| {
            let phase = 0.25 * t as f32;
            let mut f = base.clone();
            for p in &mut f.positions {
                let wave = Vec3::new(
                    (k * p.y + phase).sin(),
                    (k * p.z + 1.3 * phase).sin(),
                    (k * p.x + 0.7 * phase).sin(),
                );
                *p += 0.01 * extent * wave;
            }
            // A fresh pseudo-random order per frame (Fisher–Yates on a 64-bit LCG).
            let mut order: Vec<usize> = (0..f.len()).collect();
            let mut state = 0x9E37_79B9_7F4A_7C15u64 ^ t as u64;
            for i in (1..order.len()).rev() {
                state = state
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                order.swap(i, (state >> 33) as usize % (i + 1));
            }
            f.permuted(&order)
        })
        .collect()
}

fn options(gop: usize, quality: Quality) -> EncodeOptions {
    EncodeOptions {
        fps: 30.0,
        gop,
        quality,
        ..EncodeOptions::default()
    }
}

fn table(rows: &[Row]) -> String {
    let mut s = String::from(
        "| case | frames × Gaussians | GOP | quality | bytes | B/Gaussian/frame | input B/G/f | pos RMSE/extent (max) | rot RMSE ° (8-bit) | log-scale RMSE (8-bit) | opacity RMSE (8-bit) | colour RMSE (8-bit) | SH rest RMSE (8-bit) | encode fps | decode fps | decode Gaussians/s |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for r in rows {
        let e = &r.errors;
        let b = &r.eight_bit;
        s += &format!(
            "| {} | {} × {} | {} | {:?} | {} | **{:.3}** | {} | {:.1e} ({:.1e}) | {:.2} ({:.2}) | {:.4} ({:.4}) | {:.4} ({:.4}) | {:.4} ({:.4}) | {:.4} ({:.4}) | {:.1} | {:.1} | {:.2e} |\n",
            r.name,
            r.frames,
            r.gaussians,
            r.gop,
            r.quality,
            r.bytes,
            r.bytes as f64 / (r.frames * r.gaussians) as f64,
            r.input_bpg.map_or("—".into(), |v| format!("{v:.2}")),
            e.position_rel,
            e.position_max_rel,
            e.rotation_deg,
            b.rotation_deg,
            e.log_scale,
            b.log_scale,
            e.opacity,
            b.opacity,
            e.color,
            b.color,
            e.sh_rest,
            b.sh_rest,
            r.encode_fps,
            r.decode_fps,
            r.decode_fps * r.gaussians as f64,
        );
    }
    s
}

fn main() -> Result<()> {
    let arg = |flag: &str| std::env::args().skip_while(|a| a != flag).nth(1);
    let write = arg("--write").map(PathBuf::from);
    let only = arg("--only");
    let render = std::env::args().any(|a| a == "--render");
    let plot = arg("--plot").map(PathBuf::from);
    let wave_paths = list_frames(&data("seq_playcanvas_wave/wave_*.sog"))?;
    let wave: Vec<GaussianFrame> = wave_paths
        .iter()
        .map(|p| formats::load(p))
        .collect::<Result<_, _>>()?;
    let wave_bytes: u64 = wave_paths
        .iter()
        .map(|p| std::fs::metadata(p).map(|m| m.len()))
        .sum::<std::io::Result<u64>>()?;
    let donut = formats::load(&data("splat_donut_v3dg/fused.ply"))?;
    let donut_bytes = std::fs::metadata(data("splat_donut_v3dg/fused.ply"))?.len();
    if let Some(dir) = arg("--export-resorted") {
        // The re-sorted sequence as PLY files, for other tools (SOG per frame) and the CLI.
        std::fs::create_dir_all(&dir)?;
        for (t, f) in resorted_sequence(&donut, 30).iter().enumerate() {
            let path = Path::new(&dir).join(format!("frame_{t:03}.ply"));
            std::fs::write(&path, formats::ply::write(f))
                .with_context(|| format!("writing {}", path.display()))?;
        }
        return Ok(());
    }

    let mut cases = Vec::new();
    for (gop, quality) in [
        (30, Quality::Medium),
        (100, Quality::Medium),
        (30, Quality::Low),
        (30, Quality::High),
        (30, Quality::Max),
        (100, Quality::Max),
    ] {
        cases.push(Case {
            name: "wave (SOG input)".into(),
            up: Up::PosY,
            frames: wave.clone(),
            input_bytes: Some(wave_bytes),
            options: options(gop, quality),
        });
    }
    for quality in [Quality::Low, Quality::Medium, Quality::High, Quality::Max] {
        cases.push(Case {
            name: "donut, static".into(),
            up: Up::PosZ,
            frames: vec![donut.clone()],
            input_bytes: Some(donut_bytes),
            options: options(1, quality),
        });
    }
    for quality in [Quality::Low, Quality::Medium, Quality::High, Quality::Max] {
        cases.push(Case {
            name: "donut, 30-frame rigid motion".into(),
            up: Up::PosZ,
            frames: rigid_sequence(&donut, 30),
            input_bytes: None,
            options: options(30, quality),
        });
    }
    for quality in [Quality::Low, Quality::Medium] {
        cases.push(Case {
            name: "donut, 30-frame deformation, re-sorted every frame".into(),
            up: Up::PosZ,
            frames: resorted_sequence(&donut, 30),
            input_bytes: None,
            options: options(30, quality),
        });
    }
    let mut rows = Vec::new();
    for case in cases
        .iter()
        .filter(|c| only.as_ref().is_none_or(|o| c.name.contains(o.as_str())))
    {
        eprintln!(
            "{} gop {} {:?} ...",
            case.name, case.options.gop, case.options.quality
        );
        rows.push(run(case, render)?);
    }
    let machine = format!(
        "{} cores, {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        std::env::consts::ARCH
    );
    let section = format!(
        "## Codec: size and attribute error\n\nCommand: `cargo run --release -p splatcast-encoder --bin codec-bench -- --write BENCHMARKS.md`\nMachine: {machine} (the development machine, no GPU). Date: {}.\n\nErrors are against the input Gaussians (after re-matching identities, in decoded order). In brackets: the error plain 8-bit uniform quantisation of the same attribute over the same per-GOP range would give (no AV1) — the \"8-bit-equivalent\" yardstick. Position error is relative to the bounding-box extent. Speeds include plane packing and AV1 on this machine's cores.\n\n{}",
        today(),
        table(&rows)
    );
    println!("{section}");
    if render {
        println!("{}", render_table(&rows, &machine));
    }
    if let Some(path) = plot {
        let mut series: Vec<Series> = Vec::new();
        for r in &rows {
            let Some((psnr, _)) = r.render else { continue };
            let name = format!("{} GOP {}", r.name, r.gop);
            let point = Point {
                x: r.bytes as f64 / (r.gaussians * r.frames) as f64,
                y: psnr,
            };
            match series.iter_mut().find(|s| s.name == name) {
                Some(s) => s.points.push(point),
                None => series.push(Series {
                    name,
                    points: vec![point],
                }),
            }
        }
        splatcast_protocol::atomic::write_file(
            &path,
            &rd_plot(&series, "bytes / Gaussian / frame", "render PSNR (dB)")?,
        )?;
    }
    if let Some(path) = write {
        replace_section(&path, "## Codec: size and attribute error", &section)?;
    }
    Ok(())
}

fn render_table(rows: &[Row], machine: &str) -> String {
    let mut s = format!(
        "Render quality ({machine}): 16 cameras on a ring, 512x512, mean over up to 20 frames per case, against the uncompressed input.\n\n| case | GOP | quality | B/G/frame | render PSNR dB | SSIM |\n|---|---:|---|---:|---:|---:|\n"
    );
    for r in rows {
        if let Some((psnr, ssim)) = r.render {
            s += &format!(
                "| {} | {} | {:?} | {:.3} | {:.2} | {:.4} |\n",
                r.name,
                r.gop,
                r.quality,
                r.bytes as f64 / (r.gaussians * r.frames) as f64,
                psnr,
                ssim
            );
        }
    }
    s
}

fn today() -> String {
    std::process::Command::new("date")
        .arg("+%Y-%m-%d")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map_or("unknown".into(), |s| s.trim().to_owned())
}

/// Replaces the section starting at `heading` (up to the next `## `) in `path`, or appends it.
fn replace_section(path: &Path, heading: &str, section: &str) -> Result<()> {
    let old = std::fs::read_to_string(path).unwrap_or_else(|_| "# Benchmarks\n\n".into());
    let new = match old.find(heading) {
        Some(start) => {
            let end = old[start + heading.len()..]
                .find("\n## ")
                .map_or(old.len(), |e| start + heading.len() + e + 1);
            format!("{}{}\n{}", &old[..start], section.trim_end(), &old[end..])
        }
        None => format!("{}\n{}\n", old.trim_end(), section.trim_end()),
    };
    splatcast_protocol::atomic::write_file(path, new.as_bytes())?;
    Ok(())
}
