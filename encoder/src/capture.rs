//! The CLI around the learnt encoder: `encode` of a multi-view video (progress, a per-frame
//! table, a `.learn.json` report beside the stream) and `eval-capture` (held-out cameras'
//! photos against any stream or sequence, with charts of quality and of bytes over time).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, ensure};
use serde_json::json;
use splatcast_encoder::datasets::Split;
use splatcast_encoder::learn::{FrameReport, LearnEvent, LearnOptions, learn};
use splatcast_encoder::multiview::MultiViewVideo;
use splatcast_encoder::plot::{Point, Series, rd_plot};
use splatcast_encoder::quality::ViewScorer;
use splatcast_encoder::scene::FrameSet;
use splatcast_encoder::train::load_views;
use splatcast_protocol::atomic::{AtomicFile, write_file};
use splatcast_protocol::stream::StreamReader;

use crate::commands::bar;
use crate::pictures::Scores;

/// Where `encode` writes its per-frame report for a stream.
fn report_path(stream: &Path) -> PathBuf {
    stream.with_extension("learn.json")
}

fn frame_json(f: &FrameReport) -> serde_json::Value {
    json!({
        "frame": f.index,
        "keyframe": f.keyframe.map(|s| s.describe()),
        "gated": f.gated,
        "moved": f.moved,
        "train_psnr": f.train_psnr,
        "iterations": f.iterations,
        "gaussians": f.gaussians,
        "seconds": f.seconds,
        "lag": f.lag,
    })
}

/// `splatcast encode <multi-view video>`.
pub fn encode(input: &Path, output: &Path, mut options: LearnOptions) -> Result<()> {
    let video = MultiViewVideo::open(input)?;
    // The data set's own frame rate wins over --fps; online, a frame's budget is its period.
    if let Some(fps) = video.fps {
        options.encode.fps = fps;
    }
    if options.live_budget.is_some() {
        options.live_budget = Some(1.0 / options.encode.fps);
    }
    let (train, held) = video.camera_counts();
    eprintln!(
        "{}: {} frames x {} cameras ({} held out), {} fps",
        input.display(),
        video.frames,
        train + held,
        held,
        options.encode.fps
    );
    let out = AtomicFile::create(output)
        .with_context(|| format!("{}: cannot create", output.display()))?;
    let pb = bar(video.frames as u64, "learning");
    let learned = learn(&video, &options, out, |event| match event {
        LearnEvent::Frame(f, _) => {
            pb.suspend(|| println!("{f}"));
            pb.inc(1);
        }
        LearnEvent::Gop(_) | LearnEvent::Chunks { .. } => {}
    })
    .with_context(|| format!("{}", input.display()))?;
    pb.finish_and_clear();
    let frames = learned.frames;
    let bytes = learned.bytes;
    learned
        .output
        .commit()
        .with_context(|| format!("{}: cannot write", output.display()))?;
    let seconds: f64 = frames.iter().map(|f| f.seconds).sum();
    let residual: Vec<&FrameReport> = frames.iter().filter(|f| f.keyframe.is_none()).collect();
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
    let summary = json!({
        "input": input.display().to_string(),
        "frames": frames.len(),
        "bytes": bytes,
        "mb_per_frame": bytes as f64 / 1e6 / frames.len().max(1) as f64,
        "seconds_per_frame": seconds / frames.len().max(1) as f64,
        "residual_seconds_per_frame": mean(&residual.iter().map(|f| f.seconds).collect::<Vec<_>>()),
        "moved_per_residual_frame": mean(&residual.iter().map(|f| f.moved).collect::<Vec<_>>()),
        "gaussians": options.keyframe.max_gaussians,
        "per_frame": frames.iter().map(frame_json).collect::<Vec<_>>(),
    });
    let report = report_path(output);
    write_file(&report, serde_json::to_string_pretty(&summary)?.as_bytes())
        .with_context(|| format!("{}: cannot write", report.display()))?;
    println!(
        "wrote {} ({:.3} MB/frame, {} frames, {:.2} s/frame learning, residual frames {:.2} s and {:.1} % of Gaussians moved) and {}",
        output.display(),
        bytes as f64 / 1e6 / frames.len().max(1) as f64,
        frames.len(),
        seconds / frames.len().max(1) as f64,
        summary["residual_seconds_per_frame"]
            .as_f64()
            .unwrap_or(0.0),
        100.0 * summary["moved_per_residual_frame"].as_f64().unwrap_or(0.0),
        report.display()
    );
    Ok(())
}

/// `splatcast eval-capture <dataset> <candidate>...`.
pub fn eval(
    dataset: &Path,
    candidates: &[PathBuf],
    downscale: u32,
    background: glam::Vec3,
    plot: Option<&Path>,
) -> Result<()> {
    ensure!(
        !candidates.is_empty(),
        "give at least one stream to evaluate"
    );
    ensure!(
        (1..=64).contains(&downscale),
        "--resolution must be 1 to 64"
    );
    let video = MultiViewVideo::open(dataset)?;
    let (_, held) = video.camera_counts();
    ensure!(
        held > 0,
        "{}: no held-out cameras to evaluate against",
        dataset.display()
    );
    let mut sets: Vec<FrameSet> = candidates
        .iter()
        .map(|c| FrameSet::open(c))
        .collect::<Result<_, _>>()?;
    let frames = sets
        .iter()
        .map(FrameSet::len)
        .chain([video.frames])
        .min()
        .unwrap_or(0);
    ensure!(frames > 0, "nothing to compare: a candidate has no frames");
    let first = load_views(&video.frame(0), Split::Test, downscale)?;
    let scorer = ViewScorer::new(first.iter().map(|(c, _)| *c).collect(), background)?;
    eprintln!(
        "rendering on {}, {held} held-out cameras, {frames} frames",
        scorer.describe()
    );
    let mut scores: Vec<Scores> = sets
        .iter()
        .map(|_| Scores {
            psnr: Vec::new(),
            ssim: Vec::new(),
        })
        .collect();
    let pb = bar((frames * sets.len()) as u64, "rendering");
    for t in 0..frames {
        let photos: Vec<Vec<[f32; 3]>> = load_views(&video.frame(t), Split::Test, downscale)?
            .into_iter()
            .map(|(_, rgb)| rgb)
            .collect();
        for (set, score) in sets.iter_mut().zip(&mut scores) {
            let s = scorer.score(&photos, &set.frame(t)?, true)?;
            score.psnr.push(s.psnr);
            score.ssim.push(s.ssim.unwrap_or(0.0));
            pb.inc(1);
        }
    }
    pb.finish_and_clear();
    let mut table = String::new();
    let _ = writeln!(
        table,
        "{:<40} {:>6} {:>8} {:>7} {:>9} {:>9}",
        "candidate", "frame", "PSNR dB", "SSIM", "MB/frame", "s/frame"
    );
    let mut quality: Vec<Series> = Vec::new();
    for (set, score) in sets.iter().zip(&scores) {
        let name = set.path().display().to_string();
        for t in 0..frames {
            let _ = writeln!(
                table,
                "{:<40} {:>6} {:>8.2} {:>7.4}",
                name, t, score.psnr[t], score.ssim[t]
            );
        }
        let mb = set.bytes() as f64 / 1e6 / set.len().max(1) as f64;
        let seconds = std::fs::read_to_string(report_path(set.path()))
            .ok()
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
            .and_then(|v| v["seconds_per_frame"].as_f64())
            .map_or_else(|| "n/a".to_owned(), |s| format!("{s:.2}"));
        let n = frames as f64;
        let _ = writeln!(
            table,
            "{:<40} {:>6} {:>8.2} {:>7.4} {:>9.4} {:>9}",
            name,
            "mean",
            score.psnr.iter().sum::<f64>() / n,
            score.ssim.iter().sum::<f64>() / n,
            mb,
            seconds
        );
        let _ = writeln!(
            table,
            "{:<40} {:>6} {:>8.2}",
            name,
            "worst",
            score.psnr.iter().copied().fold(f64::INFINITY, f64::min)
        );
        quality.push(Series {
            name: set
                .path()
                .file_name()
                .map_or_else(|| name.clone(), |n| n.to_string_lossy().into_owned()),
            points: score
                .psnr
                .iter()
                .enumerate()
                .map(|(t, &y)| Point { x: t as f64, y })
                .collect(),
        });
    }
    print!("{table}");
    if let Some(path) = plot {
        let png = rd_plot(&quality, "frame", "held-out PSNR (dB)")?;
        write_file(path, &png).with_context(|| format!("{}: cannot write", path.display()))?;
        println!("wrote {}", path.display());
        let bytes: Vec<Series> = sets
            .iter()
            .filter_map(|set| {
                Some(Series {
                    name: set.path().file_name()?.to_string_lossy().into_owned(),
                    points: kilobytes_per_frame(set.path())?,
                })
            })
            .collect();
        if !bytes.is_empty() {
            let path = path.with_extension("bytes.png");
            let png = rd_plot(&bytes, "frame", "kB / frame (GOP mean)")?;
            write_file(&path, &png).with_context(|| format!("{}: cannot write", path.display()))?;
            println!("wrote {}", path.display());
        }
    }
    Ok(())
}

/// For a Splatcast stream, kB per frame over the frames (each GOP's bytes spread over its
/// frames); `None` for anything else.
fn kilobytes_per_frame(path: &Path) -> Option<Vec<Point>> {
    let file = std::fs::File::open(path).ok()?;
    let mut reader = StreamReader::open(std::io::BufReader::new(file)).ok()?;
    let mut points = Vec::new();
    for g in 0..reader.gop_count() {
        let sizes = reader.gop_sizes(g).ok()?;
        let frames = sizes.side.frame_count.max(1) as u64;
        let bytes = sizes.side_bytes + sizes.track_bytes.iter().sum::<usize>();
        for f in 0..frames {
            points.push(Point {
                x: (sizes.first_frame + f) as f64,
                y: bytes as f64 / frames as f64 / 1e3,
            });
        }
    }
    Some(points)
}
