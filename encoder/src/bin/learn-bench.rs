//! The learnt encoder against its baselines, side by side in one run on one multi-view video,
//! scored on the held-out cameras' photos:
//! (a) every sampled frame trained from scratch (the quality ceiling, and the cost to beat),
//! (b) those frames transcoded by the sequence encoder (`splatcast encode`),
//! (c) the learnt stream: keyframes + residual frames, every frame.
//!
//! `learn-bench <video> [--frames N] [--every K] [--max-gaussians N] [--iterations K]
//!  [--residual-iterations R] [--refresh-iterations R] [--resolution D] [--sh-degree S] [--gop G]
//!  [--quality Q] [--refresh auto|resume|scratch] [--prediction velocity|still]
//!  [--coarse F] [--position-rate X] [--appearance-rate X] [--rate W] [--quantizers P,R,S,C,SH]
//!  [--prune-below O] [--prune-loss DB] [--out DIR]` prints a markdown table and writes
//! `learn.md`, `learn.csv` and `learn.png` (held-out PSNR over the frames) into `--out`. For
//! the first GOP it also splits AV1's error by attribute and says how much of the closed loop's
//! frame-to-frame change the stream carries.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result, ensure};
use clap::Parser;
use glam::Vec3;
use splatcast_encoder::datasets::Split;
use splatcast_encoder::learn::{LearnEvent, LearnOptions, Refresh, learn, train_keyframe};
use splatcast_encoder::multiview::MultiViewVideo;
use splatcast_encoder::plot::{Point, Series, rd_plot};
use splatcast_encoder::quality::{FrameScore, ViewScorer};
use splatcast_encoder::residual::{Prediction, ResidualOptions};
use splatcast_encoder::train::{TrainOptions, load_views};
use splatcast_encoder::{EncodeOptions, Quality, SequenceEncoder, kept_gaussians, stream_layout};
use splatcast_protocol::GaussianFrame;
use splatcast_protocol::av1::Rav1dDecoder;
use splatcast_protocol::formats::ply;
use splatcast_protocol::gop::Attribute;
use splatcast_protocol::stream::StreamReader;

#[derive(Parser)]
struct Args {
    /// Multi-view video folder.
    video: PathBuf,
    /// Frames to learn (default: all).
    #[arg(long)]
    frames: Option<usize>,
    /// Baselines (a) and (b) on every K-th frame.
    #[arg(long, default_value_t = 10)]
    every: usize,
    #[arg(long, default_value_t = 20_000)]
    max_gaussians: usize,
    /// Steps of (a) and of (c)'s first keyframe.
    #[arg(long, default_value_t = 2000)]
    iterations: u32,
    #[arg(long, default_value_t = 500)]
    refresh_iterations: u32,
    #[arg(long, default_value_t = 200)]
    residual_iterations: u32,
    #[arg(long, default_value_t = 1)]
    resolution: u32,
    #[arg(long, default_value_t = 1)]
    sh_degree: u8,
    #[arg(long, default_value_t = 30)]
    gop: usize,
    #[arg(long, value_enum, default_value_t = splatcast_encoder::learn::LEARNT_QUALITY)]
    quality: Quality,
    /// How keyframes after the first are trained.
    #[arg(long, value_enum, default_value_t = Refresh::Auto)]
    refresh: Refresh,
    /// Where residual frames start (see `splatcast encode --prediction`).
    #[arg(long, value_enum, default_value_t = Prediction::Velocity)]
    prediction: Prediction,
    /// Fraction of residual steps on half-size photos (see `splatcast encode --coarse`).
    #[arg(long, default_value_t = 0.5)]
    coarse: f32,
    /// A residual frame that falls more than this many dB below its keyframe (training views)
    /// starts a new GOP.
    #[arg(long, default_value_t = LearnOptions::default().quality_drop)]
    quality_drop: f64,
    /// AV1 base quantizers instead of the preset's: position,rotation,scale,colour,sh-rest
    /// (e.g. 16,40,30,40,110).
    #[arg(long, value_delimiter = ',')]
    quantizers: Option<Vec<u8>>,
    /// Leave out Gaussians fainter than this (default: the preset's; 0 keeps all).
    #[arg(long)]
    prune_below: Option<f32>,
    /// Training-view dB a keyframe may lose to pruning.
    #[arg(long, default_value_t = LearnOptions::default().prune_loss)]
    prune_loss: f64,
    /// Skip (a) and (b).
    #[arg(long)]
    no_baselines: bool,
    /// Residual frames train every Gaussian (the sub-step revert decides who moved).
    #[arg(long)]
    open_all_gates: bool,
    /// Residual frames' position learning rate against the keyframe trainer's.
    #[arg(long, default_value_t = ResidualOptions::default().position_rate)]
    position_rate: f32,
    /// Residual frames' opacity and colour learning rates against the keyframe trainer's.
    #[arg(long, default_value_t = ResidualOptions::default().appearance_rate)]
    appearance_rate: f32,
    /// Weight of the residuals' L1 rate term.
    #[arg(long, default_value_t = ResidualOptions::default().rate)]
    rate: f32,
    #[arg(long, default_value = ".")]
    out: PathBuf,
}

/// Held-out PSNR and SSIM of `frame` at frame `t`.
fn held_out(
    scorer: &ViewScorer,
    video: &MultiViewVideo,
    t: usize,
    downscale: u32,
    frame: &GaussianFrame,
) -> Result<FrameScore> {
    let photos: Vec<Vec<[f32; 3]>> = load_views(&video.frame(t), Split::Test, downscale)?
        .into_iter()
        .map(|(_, rgb)| rgb)
        .collect();
    Ok(scorer.score(&photos, frame, true)?)
}

/// Codes `frame` alone with the sequence encoder; returns its bytes and its decode.
fn transcode(frame: &GaussianFrame, options: &EncodeOptions) -> Result<(usize, GaussianFrame)> {
    let kept = kept_gaussians(std::slice::from_ref(frame), options);
    let layout = stream_layout(options, kept, frame.sh_degree);
    let mut encoder = SequenceEncoder::new(Vec::new(), layout, options.clone(), false);
    encoder.push(frame.clone())?;
    let bytes = encoder.finish()?.output;
    let size = bytes.len();
    let mut reader = StreamReader::open(std::io::Cursor::new(bytes))?;
    let decoded = reader
        .read_gop(0, &mut Rav1dDecoder::new(0))?
        .frames
        .pop()
        .context("no frame decoded")?;
    Ok((size, decoded))
}

/// For each Gaussian of the closed loop's frames, its index in the stream's decode, from the
/// GOP's `coded_order` (the closed loop's index of each coded Gaussian); None if it is not a
/// permutation of `n`.
fn pairing(coded_order: &[usize], n: usize) -> Option<Vec<usize>> {
    let mut order = vec![usize::MAX; n];
    for (i, &g) in coded_order.iter().enumerate() {
        *order.get_mut(g)? = i;
    }
    (coded_order.len() == n && !order.contains(&usize::MAX)).then_some(order)
}

/// `closed` with one attribute at a time taken from `decoded` (paired by `order`, see
/// [`pairing`]), each named; the last one takes them all.
fn one_decoded(
    closed: &GaussianFrame,
    decoded: &GaussianFrame,
    order: &[usize],
) -> Vec<(&'static str, GaussianFrame)> {
    let ordered = decoded.permuted(order);
    let with = |f: &dyn Fn(&mut GaussianFrame)| {
        let mut frame = closed.clone();
        f(&mut frame);
        frame
    };
    vec![
        (
            "position",
            with(&|f| f.positions.clone_from(&ordered.positions)),
        ),
        (
            "rotation",
            with(&|f| f.rotations.clone_from(&ordered.rotations)),
        ),
        (
            "scale",
            with(&|f| f.log_scales.clone_from(&ordered.log_scales)),
        ),
        (
            "opacity",
            with(&|f| f.opacity_logits.clone_from(&ordered.opacity_logits)),
        ),
        ("colour", with(&|f| f.sh_dc.clone_from(&ordered.sh_dc))),
        ("sh rest", with(&|f| f.sh_rest.clone_from(&ordered.sh_rest))),
        ("all", ordered),
    ]
}

struct Row {
    frame: usize,
    a: Option<(FrameScore, f64, usize)>,
    b: Option<(FrameScore, usize)>,
    c: FrameScore,
    /// (c)'s held-out score before AV1 (the encoder's closed loop).
    c_loop: FrameScore,
}

fn main() -> Result<()> {
    let args = Args::parse();
    ensure!(
        args.quantizers.as_ref().is_none_or(|q| q.len() == 5),
        "--quantizers takes five values: position,rotation,scale,colour,sh-rest"
    );
    ensure!(args.every >= 1, "--every must be at least 1");
    let mut video = MultiViewVideo::open(&args.video)?;
    if let Some(n) = args.frames {
        video.frames = video.frames.min(n);
    }
    let fps = video.fps.unwrap_or(30.0);
    let (train_cams, held) = video.camera_counts();
    ensure!(held > 0, "the video has no held-out cameras");
    let keyframe = TrainOptions {
        iterations: args.iterations,
        max_gaussians: args.max_gaussians,
        downscale: args.resolution,
        sh_degree: args.sh_degree,
        report_every: args.iterations,
        ..TrainOptions::default()
    };
    let encode = EncodeOptions {
        fps,
        gop: args.gop,
        quality: args.quality,
        quantizers: args
            .quantizers
            .iter()
            .flat_map(|q| {
                let attributes = [
                    Attribute::Position,
                    Attribute::Rotation,
                    Attribute::Scale,
                    Attribute::ColorOpacity,
                    Attribute::ShRest,
                ];
                attributes.into_iter().zip(q.iter().copied())
            })
            .collect(),
        prune_below: args.prune_below,
        ..EncodeOptions::default()
    };
    let first = load_views(&video.frame(0), Split::Test, args.resolution)?;
    let scorer = ViewScorer::new(first.iter().map(|(c, _)| *c).collect(), Vec3::ZERO)?;
    let (w, h) = (first[0].0.width, first[0].0.height);
    eprintln!(
        "{}: {} frames, {train_cams} training + {held} held-out cameras at {w}x{h}, on {}",
        args.video.display(),
        video.frames,
        scorer.describe()
    );

    // (c) the learnt stream.
    let options = LearnOptions {
        keyframe: keyframe.clone(),
        refresh_iterations: args.refresh_iterations,
        refresh: args.refresh,
        residual: ResidualOptions {
            iterations: args.residual_iterations,
            open_all: args.open_all_gates,
            prediction: args.prediction,
            coarse: args.coarse,
            position_rate: args.position_rate,
            appearance_rate: args.appearance_rate,
            rate: args.rate,
            ..ResidualOptions::default()
        },
        encode: encode.clone(),
        quality_drop: args.quality_drop,
        prune_loss: args.prune_loss,
        ..LearnOptions::default()
    };
    let started = Instant::now();
    // Each frame as the encoder's closed loop had it (before AV1), to tell AV1's share of the
    // loss from the learning's.
    let mut closed_loop = Vec::new();
    // The first GOP's order: for each coded Gaussian, its index in the closed loop's frames.
    let mut coded_order = None;
    // AV1 bytes by track, over the stream.
    let mut track_bytes: Vec<usize> = Vec::new();
    let learned = learn(&video, &options, Vec::new(), |e| match e {
        LearnEvent::Frame(f, decoded) => {
            eprintln!("(c) {f}");
            closed_loop.push(decoded.clone());
        }
        LearnEvent::Gop(gop) => {
            coded_order.get_or_insert_with(|| gop.coded_order.clone());
            track_bytes.resize(gop.track_bytes.len(), 0);
            for (sum, b) in track_bytes.iter_mut().zip(&gop.track_bytes) {
                *sum += b;
            }
        }
        // The bench learns offline: GOPs are coded whole.
        LearnEvent::Chunks { .. } => {}
    })?;
    let learn_seconds = started.elapsed().as_secs_f64();
    let frames = learned.frames;
    let stream_bytes = learned.output.len();
    let mut reader = StreamReader::open(std::io::Cursor::new(learned.output))?;
    let mut decoded = Vec::new();
    for g in 0..reader.gop_count() {
        decoded.extend(reader.read_gop(g, &mut Rav1dDecoder::new(0))?.frames);
    }
    ensure!(
        decoded.len() == video.frames && closed_loop.len() == video.frames,
        "the stream lost frames"
    );
    let mut rows = Vec::new();
    for (t, frame) in decoded.iter().enumerate() {
        rows.push(Row {
            frame: t,
            a: None,
            b: None,
            c: held_out(&scorer, &video, t, args.resolution, frame)?,
            c_loop: held_out(&scorer, &video, t, args.resolution, &closed_loop[t])?,
        });
    }

    // (a) and (b) on every K-th frame.
    if !args.no_baselines {
        for t in (0..video.frames).step_by(args.every) {
            let start = Instant::now();
            let mut options = keyframe.clone();
            options.seed = options.seed.wrapping_add(t as u64);
            let trained = train_keyframe(&video.frame(t), &options)?;
            let seconds = start.elapsed().as_secs_f64();
            let a = held_out(&scorer, &video, t, args.resolution, &trained)?;
            let (bytes, coded) = transcode(&trained, &encode)?;
            let b = held_out(&scorer, &video, t, args.resolution, &coded)?;
            eprintln!(
                "(a) frame {t:>4} {:.2} dB {seconds:.1} s; (b) {:.2} dB {bytes} bytes",
                a.psnr, b.psnr
            );
            rows[t].a = Some((a, seconds, ply::write(&trained).len()));
            rows[t].b = Some((b, bytes));
        }
    }

    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
    let mut md = String::new();
    let _ = writeln!(
        md,
        "{} frames, {train_cams} + {held} held-out cameras at {w}x{h}, {} Gaussians, SH {}, GOP {}, {:?}; on {}\n",
        video.frames,
        args.max_gaussians,
        args.sh_degree,
        args.gop,
        args.quality,
        scorer.describe()
    );
    let _ = writeln!(
        md,
        "| frame | (a) PSNR | (a) SSIM | (b) PSNR | (c) PSNR | (c) SSIM | (c) − (a) dB | (c) kind |\n|---:|---:|---:|---:|---:|---:|---:|---|"
    );
    let mut csv = String::from(
        "frame,a_psnr,a_ssim,b_psnr,b_ssim,c_psnr,c_ssim,c_loop_psnr,c_loop_ssim,c_kind,c_moved,c_seconds\n",
    );
    for (r, f) in rows.iter().zip(&frames) {
        let kind = if f.keyframe.is_some() {
            "key"
        } else {
            "residual"
        };
        let _ = writeln!(
            csv,
            "{},{},{},{},{},{:.4},{:.5},{:.4},{:.5},{kind},{:.4},{:.3}",
            r.frame,
            r.a.map_or(String::new(), |a| format!("{:.4}", a.0.psnr)),
            r.a.map_or(String::new(), |a| format!("{:.5}", a.0.ssim.unwrap_or(0.0))),
            r.b.map_or(String::new(), |b| format!("{:.4}", b.0.psnr)),
            r.b.map_or(String::new(), |b| format!("{:.5}", b.0.ssim.unwrap_or(0.0))),
            r.c.psnr,
            r.c.ssim.unwrap_or(0.0),
            r.c_loop.psnr,
            r.c_loop.ssim.unwrap_or(0.0),
            f.moved,
            f.seconds
        );
        if let (Some(a), Some(b)) = (r.a, r.b) {
            let _ = writeln!(
                md,
                "| {} | {:.2} | {:.4} | {:.2} | {:.2} | {:.4} | {:+.2} | {kind} |",
                r.frame,
                a.0.psnr,
                a.0.ssim.unwrap_or(0.0),
                b.0.psnr,
                r.c.psnr,
                r.c.ssim.unwrap_or(0.0),
                r.c.psnr - a.0.psnr
            );
        }
    }
    let sampled: Vec<&Row> = rows.iter().filter(|r| r.a.is_some()).collect();
    let n_frames = video.frames as f64;
    let residual: Vec<f64> = frames
        .iter()
        .filter(|f| f.keyframe.is_none())
        .map(|f| f.seconds)
        .collect();
    let keys: Vec<f64> = frames
        .iter()
        .filter(|f| f.keyframe.is_some())
        .map(|f| f.seconds)
        .collect();
    let moved: Vec<f64> = frames
        .iter()
        .filter(|f| f.keyframe.is_none())
        .map(|f| f.moved)
        .collect();
    let _ = writeln!(
        md,
        "\n| | held-out PSNR | SSIM | MB/frame | s/frame |\n|---|---:|---:|---:|---:|"
    );
    if !sampled.is_empty() {
        let pick =
            |f: &dyn Fn(&Row) -> f64| mean(&sampled.iter().map(|r| f(r)).collect::<Vec<_>>());
        let _ = writeln!(
            md,
            "| (a) per-frame training (PLY) | {:.2} | {:.4} | {:.3} | {:.2} |",
            pick(&|r| r.a.unwrap().0.psnr),
            pick(&|r| r.a.unwrap().0.ssim.unwrap_or(0.0)),
            pick(&|r| r.a.unwrap().2 as f64) / 1e6,
            pick(&|r| r.a.unwrap().1),
        );
        let _ = writeln!(
            md,
            "| (b) (a) transcoded | {:.2} | {:.4} | {:.4} | {:.2} + coding |",
            pick(&|r| r.b.unwrap().0.psnr),
            pick(&|r| r.b.unwrap().0.ssim.unwrap_or(0.0)),
            pick(&|r| r.b.unwrap().1 as f64) / 1e6,
            pick(&|r| r.a.unwrap().1),
        );
        let _ = writeln!(
            md,
            "| (c) learnt, same frames | {:.2} | {:.4} | | |",
            pick(&|r| r.c.psnr),
            pick(&|r| r.c.ssim.unwrap_or(0.0)),
        );
    }
    let _ = writeln!(
        md,
        "| (c) learnt, all frames | {:.2} | {:.4} | {:.4} | {:.2} (keyframes {:.1}, residual {:.2}) |",
        mean(&rows.iter().map(|r| r.c.psnr).collect::<Vec<_>>()),
        mean(
            &rows
                .iter()
                .map(|r| r.c.ssim.unwrap_or(0.0))
                .collect::<Vec<_>>()
        ),
        stream_bytes as f64 / 1e6 / n_frames,
        learn_seconds / n_frames,
        mean(&keys),
        mean(&residual),
    );
    // Mean held-out PSNR of keyframes (or residual frames) before and after AV1.
    let loop_mean = |key: bool| {
        let (looped, streamed): (Vec<f64>, Vec<f64>) = rows
            .iter()
            .zip(&frames)
            .filter(|(_, f)| f.keyframe.is_some() == key)
            .map(|(r, _)| (r.c_loop.psnr, r.c.psnr))
            .unzip();
        if looped.is_empty() {
            "none".to_string()
        } else {
            let (before, after) = (mean(&looped), mean(&streamed));
            format!("{before:.2} ({:+.2} after AV1)", after - before)
        }
    };
    let _ = writeln!(
        md,
        "| (c) before AV1 (closed loop): keyframes; residual frames | {}; {} | | | |",
        loop_mean(true),
        loop_mean(false),
    );
    // Which attribute's AV1 error costs what: the first GOP's first and last frames as the
    // closed loop had them, with one attribute at a time taken from the stream.
    let last = frames
        .iter()
        .skip(1)
        .position(|f| f.keyframe.is_some())
        .unwrap_or(frames.len() - 1);
    if let Some(order) = coded_order
        .as_deref()
        .and_then(|c| pairing(c, closed_loop[0].len()))
    {
        let _ = writeln!(
            md,
            "\nAV1's error by attribute (the closed loop's frame with one attribute as decoded), held-out PSNR / SSIM:\n\n| attribute | frame 0 | frame {last} |\n|---|---:|---:|"
        );
        let mut table: Vec<(&str, String)> = Vec::new();
        for t in [0, last] {
            let candidates = [("none", closed_loop[t].clone())]
                .into_iter()
                .chain(one_decoded(&closed_loop[t], &decoded[t], &order));
            for (i, (name, frame)) in candidates.enumerate() {
                let s = held_out(&scorer, &video, t, args.resolution, &frame)?;
                let cell = format!("{:.2} / {:.4}", s.psnr, s.ssim.unwrap_or(0.0));
                match table.get_mut(i) {
                    Some(row) => row.1 = format!("{} | {cell}", row.1),
                    None => table.push((name, cell)),
                }
            }
        }
        for (name, cells) in table {
            let _ = writeln!(md, "| {name} | {cells} |");
        }
        // How much of the closed loop's change the stream carries from frame to frame (the
        // projection of the stream's change on the loop's): AV1 may drop small updates of
        // isolated pixels, and the loop would not know.
        let carried = |get: &dyn Fn(&GaussianFrame, usize) -> glam::DVec3| -> Vec<String> {
            (1..=last)
                .map(|t| {
                    let (mut along, mut total) = (0.0, 0.0);
                    for (g, &d) in order.iter().enumerate() {
                        let l = get(&closed_loop[t], g) - get(&closed_loop[t - 1], g);
                        let s = get(&decoded[t], d) - get(&decoded[t - 1], d);
                        along += l.dot(s);
                        total += l.length_squared();
                    }
                    format!("{:.0} %", 100.0 * along / total.max(f64::MIN_POSITIVE))
                })
                .collect()
        };
        let _ = writeln!(
            md,
            "\nThe closed loop's change the stream carries, frames 1–{last}: positions {}; colours {}",
            carried(&|f, g| f.positions[g].as_dvec3()).join(", "),
            carried(&|f, g| f.sh_dc[g].as_dvec3()).join(", ")
        );
    }
    let layout = stream_layout(&encode, args.max_gaussians, args.sh_degree);
    let _ = writeln!(
        md,
        "\nAV1 bytes by track: {}",
        layout
            .tracks
            .iter()
            .zip(&track_bytes)
            .map(|((a, _), b)| format!(
                "{} {:.1} %",
                a.name(),
                100.0 * *b as f64 / stream_bytes as f64
            ))
            .collect::<Vec<_>>()
            .join(", ")
    );
    if !sampled.is_empty() {
        let worst = sampled
            .iter()
            .map(|r| r.c.psnr - r.a.unwrap().0.psnr)
            .fold(f64::INFINITY, f64::min);
        let _ = writeln!(md, "\nworst (c) − (a) on a sampled frame: {worst:+.2} dB");
    }
    let _ = writeln!(
        md,
        "\n(c): {} keyframes, {} residual frames, {:.1} % of Gaussians moved per residual frame (mean)",
        keys.len(),
        residual.len(),
        100.0 * mean(&moved)
    );
    print!("{md}");
    std::fs::create_dir_all(&args.out)?;
    std::fs::write(args.out.join("learn.md"), &md)?;
    std::fs::write(args.out.join("learn.csv"), &csv)?;
    let series = |name: &str, pts: Vec<Point>| Series {
        name: name.to_owned(),
        points: pts,
    };
    let mut chart = vec![series(
        "C LEARNT",
        rows.iter()
            .map(|r| Point {
                x: r.frame as f64,
                y: r.c.psnr,
            })
            .collect(),
    )];
    if !sampled.is_empty() {
        chart.push(series(
            "A PER-FRAME",
            sampled
                .iter()
                .map(|r| Point {
                    x: r.frame as f64,
                    y: r.a.unwrap().0.psnr,
                })
                .collect(),
        ));
        chart.push(series(
            "B TRANSCODED",
            sampled
                .iter()
                .map(|r| Point {
                    x: r.frame as f64,
                    y: r.b.unwrap().0.psnr,
                })
                .collect(),
        ));
    }
    std::fs::write(
        args.out.join("learn.png"),
        rd_plot(&chart, "frame", "held-out PSNR (dB)")?,
    )?;
    Ok(())
}
