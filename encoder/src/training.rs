//! The `train` command: a dataset folder in, a PLY out, with a progress bar, checkpoints, and a
//! held-out report (PSNR/SSIM per test view, a side-by-side picture of render and photo).

use std::fmt::Write as _;
use std::io::IsTerminal;
use std::path::Path;

use anyhow::{Context, Result, ensure};
use indicatif::{ProgressBar, ProgressStyle};
use splatcast_encoder::datasets::{Dataset, RgbImage, Split};
use splatcast_encoder::train::{Event, TrainOptions, ViewScore, train as run};
use splatcast_protocol::atomic::write_file;
use splatcast_protocol::formats::{self, ply};

/// Options of `splatcast train` beyond the library's.
pub struct TrainArgs {
    /// Hold out every n-th view (0: none).
    pub hold_out: usize,
    /// Checkpoint PLY to start from.
    pub resume: Option<std::path::PathBuf>,
}

fn side_by_side(a: &RgbImage, b: &RgbImage) -> Result<Vec<u8>> {
    let (w, h) = (a.width as usize, a.height as usize);
    let gap = 4;
    let width = 2 * w + gap;
    let mut rgb = vec![255u8; width * h * 3];
    for y in 0..h {
        rgb[y * width * 3..y * width * 3 + w * 3]
            .copy_from_slice(&a.data[y * w * 3..(y + 1) * w * 3]);
        let at = (y * width + w + gap) * 3;
        rgb[at..at + w * 3].copy_from_slice(&b.data[y * w * 3..(y + 1) * w * 3]);
    }
    let mut out = Vec::new();
    let mut encoder = png::Encoder::new(&mut out, width as u32, h as u32);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    encoder.write_header()?.write_image_data(&rgb)?;
    Ok(out)
}

fn report(scores: &[ViewScore], options: &TrainOptions, seconds: f64) -> String {
    let mut s =
        String::from("# Held-out evaluation\n\n| view | PSNR dB | SSIM |\n|---|---:|---:|\n");
    for v in scores {
        let _ = writeln!(s, "| {} | {:.2} | {:.4} |", v.name, v.psnr, v.ssim);
    }
    if !scores.is_empty() {
        let n = scores.len() as f64;
        let _ = writeln!(
            s,
            "| **mean** | **{:.2}** | **{:.4}** |",
            scores.iter().map(|v| v.psnr).sum::<f64>() / n,
            scores.iter().map(|v| v.ssim).sum::<f64>() / n
        );
    }
    let _ = writeln!(
        s,
        "\n{} steps, {} Gaussians, SH degree {}, photos downscaled {}×, {:.1} s ({:.1} steps/s).",
        options.iterations,
        options.max_gaussians,
        options.sh_degree,
        options.downscale,
        seconds,
        options.iterations as f64 / seconds
    );
    s
}

/// The command-line checks of the trainer's options (`train`, and `encode` of a video).
pub fn check_options(options: &TrainOptions) -> Result<()> {
    ensure!(options.iterations > 0, "--iterations must be positive");
    ensure!(
        (1..=50_000_000).contains(&options.max_gaussians),
        "--max-gaussians must be 1 to 50,000,000"
    );
    ensure!(options.sh_degree <= 3, "--sh-degree must be 0 to 3");
    ensure!(
        (1..=64).contains(&options.downscale),
        "--resolution must be 1 to 64"
    );
    Ok(())
}

/// `splatcast train`.
pub fn train(
    dataset_path: &Path,
    output: &Path,
    mut options: TrainOptions,
    args: &TrainArgs,
) -> Result<()> {
    check_options(&options)?;
    let dataset = Dataset::open(dataset_path, args.hold_out)?;
    if let Some(path) = &args.resume {
        let frame = formats::load(path)?;
        options.max_gaussians = frame.len();
        options.resume = Some(frame);
    }
    eprintln!(
        "{}: {} views ({} train, {} held out), {:?}",
        dataset_path.display(),
        dataset.views.len(),
        dataset.split(Split::Train).count(),
        dataset.split(Split::Test).count(),
        dataset.kind
    );
    let pb = ProgressBar::new(options.iterations as u64);
    pb.set_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} {msg} eta {eta}")
            .expect("valid template")
            .progress_chars("=> "),
    );
    let checkpoint = output.with_extension("checkpoint.ply");
    let gaussians = options.max_gaussians;
    let start = std::time::Instant::now();
    let mut checkpoint_error = None;
    // Without a terminal the bar is hidden: progress goes to stderr as lines instead.
    let lines = !std::io::stderr().is_terminal();
    let result = run(&dataset, &options, |event| match event {
        Event::Progress(p) => {
            let message = format!(
                "loss {:.4}  PSNR {:.2} dB  {gaussians} Gaussians  {:.1} it/s",
                p.loss, p.psnr, p.steps_per_second
            );
            if lines {
                eprintln!("step {}/{}  {message}", p.step, options.iterations);
            }
            pb.set_position(p.step as u64);
            pb.set_message(message);
        }
        Event::Checkpoint(step, frame) => {
            if let Err(e) = write_file(&checkpoint, &ply::write(frame)) {
                checkpoint_error = Some(format!("{}: step {step}: {e}", checkpoint.display()));
            }
        }
    });
    pb.finish_and_clear();
    if let Some(e) = checkpoint_error {
        anyhow::bail!("cannot write the checkpoint {e}");
    }
    let (frame, scores) = result.with_context(|| {
        if checkpoint.exists() {
            format!(
                "{} (last checkpoint kept: {})",
                dataset_path.display(),
                checkpoint.display()
            )
        } else {
            dataset_path.display().to_string()
        }
    })?;
    let seconds = start.elapsed().as_secs_f64();
    write_file(output, &ply::write(&frame))
        .with_context(|| format!("{}: cannot write", output.display()))?;
    let text = report(&scores, &options, seconds);
    let report_path = output.with_extension("report.md");
    write_file(&report_path, text.as_bytes())
        .with_context(|| format!("{}: cannot write", report_path.display()))?;
    if let Some(first) = scores.first() {
        let picture = output.with_extension("heldout.png");
        write_file(&picture, &side_by_side(&first.render, &first.photo)?)
            .with_context(|| format!("{}: cannot write", picture.display()))?;
    }
    print!("{text}");
    println!("wrote {} and {}", output.display(), report_path.display());
    Ok(())
}
