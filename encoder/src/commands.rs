//! The CLI's commands: file handling, progress and reports around the encoder library.

use std::fs::File;
use std::io::{BufReader, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail, ensure};
use indicatif::{ProgressBar, ProgressStyle};
use splatcast_encoder::live::{LiveEncoder, LiveOutput};
use splatcast_encoder::metrics::ErrorAccumulator;
use splatcast_encoder::scene::FrameSet;
use splatcast_encoder::{
    EncodeOptions, GopReport, SequenceEncoder, demo, kept_gaussians, stream_layout,
};
use splatcast_protocol::GaussianFrame;
use splatcast_protocol::atomic::{AtomicFile, write_file};
use splatcast_protocol::av1::Rav1dDecoder;
use splatcast_protocol::container::TrackKind;
use splatcast_protocol::formats::{self, ply, splat, spz};
use splatcast_protocol::sequence::list_frames;
use splatcast_protocol::stream::StreamReader;

pub(crate) fn bar(len: u64, what: &str) -> ProgressBar {
    let pb = ProgressBar::new(len);
    pb.set_style(
        ProgressStyle::with_template("{msg:>10} [{bar:30}] {pos}/{len} {per_sec} eta {eta}")
            .expect("valid template")
            .progress_chars("=> "),
    );
    pb.set_message(what.to_owned());
    pb
}

/// Parses "800k", "2M", "1500000" as bits per second.
pub(crate) fn parse_bitrate(s: &str) -> Result<u64> {
    let s = s.trim();
    let (digits, scale) = match s.chars().last() {
        Some('k' | 'K') => (&s[..s.len() - 1], 1e3),
        Some('m' | 'M') => (&s[..s.len() - 1], 1e6),
        _ => (s, 1.0),
    };
    let v: f64 = digits
        .parse()
        .with_context(|| format!("bad bitrate '{s}'"))?;
    ensure!(v > 0.0 && v.is_finite(), "bitrate must be positive");
    Ok((v * scale).round() as u64)
}

/// `splatcast encode` of Gaussian frames: `options` as given, `bitrate` (e.g. "800k") parsed
/// into them; Gaussians holding NaN or infinite values are dropped (one warning line per file)
/// unless `strict`.
pub fn encode(
    input: &Path,
    output: &Path,
    mut options: EncodeOptions,
    bitrate: Option<&str>,
    strict: bool,
) -> Result<()> {
    check_timing(&options)?;
    options.bitrate = bitrate.map(parse_bitrate).transpose()?;
    let paths = list_frames(input)?;
    let (mut max_n, degree) = scan_frames(&paths, strict)?;
    // One frame is one GOP: its layout holds just the Gaussians it keeps (a sequence's GOPs
    // are not known before correspondence; their layout holds the largest frame).
    let mut single = None;
    if let [path] = &paths[..] {
        let frame = load_frame(path, strict, false)?;
        max_n = kept_gaussians(std::slice::from_ref(&frame), &options);
        single = Some(frame);
    }
    let layout = stream_layout(&options, max_n, degree);
    let out = AtomicFile::create(output)
        .with_context(|| format!("{}: cannot create", output.display()))?;
    let mut encoder = SequenceEncoder::new(out, layout, options, false);
    let pb = bar(paths.len() as u64, "encoding");
    let start = Instant::now();
    for path in &paths {
        let frame = match single.take() {
            Some(frame) => frame,
            None => load_frame(path, strict, false)?,
        };
        encoder
            .push(frame)
            .with_context(|| format!("{}", output.display()))?;
        pb.inc(1);
    }
    let encoded = encoder
        .finish()
        .with_context(|| format!("{}", output.display()))?;
    let reports = encoded.reports;
    encoded
        .output
        .commit()
        .with_context(|| format!("{}: cannot write", output.display()))?;
    pb.finish_and_clear();
    let secs = start.elapsed().as_secs_f64();
    print_reports(&reports);
    let bytes = std::fs::metadata(output)?.len();
    println!(
        "wrote {} ({} bytes, {} frames, {:.1} frames/s)",
        output.display(),
        bytes,
        paths.len(),
        paths.len() as f64 / secs
    );
    Ok(())
}

/// `--fps` and `--gop` within what a stream can carry.
pub(crate) fn check_timing(options: &EncodeOptions) -> Result<()> {
    ensure!(
        options.fps > 0.0 && options.fps <= 1000.0,
        "--fps must be in (0, 1000]"
    );
    ensure!(options.gop >= 1, "--gop must be at least 1");
    Ok(())
}

/// `splatcast encode --as-live`: the frames coded as `publish` codes them live
/// ([`LiveEncoder`]), written to `output` as they come out, closed by the fragment index.
pub fn encode_as_live(
    input: &Path,
    output: &Path,
    options: EncodeOptions,
    strict: bool,
) -> Result<()> {
    check_timing(&options)?;
    let paths = list_frames(input)?;
    let (max_n, degree) = scan_frames(&paths, strict)?;
    let mut out = AtomicFile::create(output)
        .with_context(|| format!("{}: cannot create", output.display()))?;
    let mut encoder = LiveEncoder::new(stream_layout(&options, max_n, degree), options);
    let pb = bar(paths.len() as u64, "encoding");
    let start = Instant::now();
    let mut write = |step: LiveOutput| -> Result<()> {
        let bytes = step
            .init
            .iter()
            .chain(step.chunks.iter().map(|(_, c)| &c.bytes));
        for b in bytes.chain(step.index.iter()) {
            out.write_all(b)
                .with_context(|| format!("{}: cannot write", output.display()))?;
        }
        Ok(())
    };
    for path in &paths {
        let step = encoder
            .push(load_frame(path, strict, false)?)
            .with_context(|| format!("{}", output.display()))?;
        write(step)?;
        pb.inc(1);
    }
    write(
        encoder
            .finish()
            .with_context(|| format!("{}", output.display()))?,
    )?;
    out.commit()
        .with_context(|| format!("{}: cannot write", output.display()))?;
    pb.finish_and_clear();
    let bytes = std::fs::metadata(output)?.len();
    println!(
        "wrote {} ({} bytes, {} frames, {:.1} frames/s, coded as live)",
        output.display(),
        bytes,
        paths.len(),
        paths.len() as f64 / start.elapsed().as_secs_f64()
    );
    Ok(())
}

/// First pass over a sequence: every frame loads and shares one SH degree; the planes are sized
/// for the largest. Nothing is written for an input that would fail half-way.
pub(crate) fn scan_frames(paths: &[PathBuf], strict: bool) -> Result<(usize, u8)> {
    let scan = bar(paths.len() as u64, "checking");
    let (mut max_n, mut degree) = (0, None);
    for path in paths {
        let frame = load_frame(path, strict, true)?;
        if let Some(d) = degree
            && d != frame.sh_degree
        {
            bail!(
                "{}: SH degree {} differs from the first frame's {d}",
                path.display(),
                frame.sh_degree
            );
        }
        degree = Some(frame.sh_degree);
        max_n = max_n.max(frame.len());
        scan.inc(1);
    }
    scan.finish_and_clear();
    Ok((max_n, degree.unwrap_or(0)))
}

/// One input frame; Gaussians holding NaN or infinite values are dropped unless `strict` (a
/// warning line says how many when `warn`: the first of several passes over the same files).
pub(crate) fn load_frame(path: &Path, strict: bool, warn: bool) -> Result<GaussianFrame> {
    let (frame, dropped) = formats::load_with(path, !strict)?;
    if warn && dropped > 0 {
        eprintln!(
            "{}: dropped {dropped} Gaussians holding NaN or infinite values (--strict refuses the file)",
            path.display()
        );
    }
    Ok(frame)
}

/// `splatcast convert`: frame `frame` of `input`, written in the format `output` names.
/// Gaussians holding NaN or infinite values are dropped with one warning line, unless `strict`.
pub fn convert(input: &Path, output: &Path, frame: usize, strict: bool) -> Result<()> {
    let extension = output
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    ensure!(
        ["ply", "splat", "spz"].contains(&extension.as_str()),
        "{}: cannot write '.{extension}': write .ply, .splat or .spz",
        output.display()
    );
    let gaussians = if input.is_file() && formats::SplatFormat::has_known_extension(input) {
        ensure!(
            frame == 0,
            "{}: frame {frame} requested, it has 1",
            input.display()
        );
        load_frame(input, strict, true)?
    } else {
        FrameSet::open(input)?.frame(frame)?
    };
    let bytes = match extension.as_str() {
        "ply" => ply::write(&gaussians),
        "splat" => splat::write(&gaussians),
        _ => spz::write(&gaussians).with_context(|| format!("{}", output.display()))?,
    };
    write_file(output, &bytes).with_context(|| format!("{}: cannot write", output.display()))?;
    if extension == "splat" && gaussians.sh_degree > 0 {
        eprintln!(
            "{}: .splat holds no higher-order SH; SH degree {} kept as its DC colour only",
            output.display(),
            gaussians.sh_degree
        );
    }
    println!(
        "wrote {} ({} Gaussians, SH degree {}, {} bytes)",
        output.display(),
        gaussians.len(),
        if extension == "splat" {
            0
        } else {
            gaussians.sh_degree
        },
        bytes.len()
    );
    Ok(())
}

pub(crate) fn open(path: &Path) -> Result<StreamReader<BufReader<File>>> {
    let file = File::open(path).with_context(|| format!("{}: cannot open", path.display()))?;
    StreamReader::open(BufReader::new(file))
        .and_then(StreamReader::with_gops)
        .with_context(|| format!("{}", path.display()))
}

pub fn decode(path: &Path, out_dir: &Path) -> Result<()> {
    let mut reader = open(path)?;
    std::fs::create_dir_all(out_dir)
        .with_context(|| format!("{}: cannot create", out_dir.display()))?;
    let mut decoder = Rav1dDecoder::new(0);
    let pb = bar(reader.gop_count() as u64, "decoding");
    let mut written = 0;
    for g in 0..reader.gop_count() {
        let gop = reader
            .read_gop(g, &mut decoder)
            .with_context(|| format!("{}: GOP {g}", path.display()))?;
        for (k, frame) in gop.frames.iter().enumerate() {
            let name: PathBuf =
                out_dir.join(format!("frame_{:05}.ply", gop.first_frame + k as u64));
            write_file(&name, &ply::write(frame))
                .with_context(|| format!("{}: cannot write", name.display()))?;
            written += 1;
        }
        pb.inc(1);
    }
    pb.finish_and_clear();
    if reader.truncated() {
        eprintln!(
            "{}: file ends inside a fragment; decoded the complete GOPs before it",
            path.display()
        );
    }
    println!("wrote {written} frames to {}", out_dir.display());
    Ok(())
}

fn print_reports(reports: &[GopReport]) {
    println!(
        "{:>5} {:>7} {:>7} {:>9}  {:<44} {:>9}",
        "GOP", "frame", "frames", "Gaussians", "start", "rematched"
    );
    for (i, r) in reports.iter().enumerate() {
        println!(
            "{:>5} {:>7} {:>7} {:>9}  {:<44} {:>9}",
            i,
            r.first_frame,
            r.frames,
            r.gaussians,
            r.start.describe(),
            r.rematched.iter().sum::<u32>()
        );
    }
}

pub fn info(path: &Path) -> Result<()> {
    let mut reader = open(path)?;
    let file_bytes = std::fs::metadata(path)?.len();
    println!(
        "{}: {} bytes, {:.3} fps, {} GOPs",
        path.display(),
        file_bytes,
        reader.fps(),
        reader.gop_count()
    );
    if reader.truncated() {
        println!("  (file ends inside a fragment: only complete GOPs are listed)");
    }
    println!("tracks:");
    let movie = reader.movie().clone();
    for t in &movie.tracks {
        match &t.kind {
            TrackKind::Av1 {
                width,
                height,
                bit_depth,
                ..
            } => {
                println!(
                    "  {:>2} {:<28} av01 {width}x{height} {bit_depth}-bit 4:0:0",
                    t.id, t.name
                )
            }
            TrackKind::Metadata { mime } => println!("  {:>2} {:<28} mett {mime}", t.id, t.name),
        }
    }
    let mut reports = Vec::new();
    let mut per_track = vec![0usize; movie.tracks.len().saturating_sub(1)];
    let (mut side_total, mut gaussian_frames, mut frames) = (0usize, 0u64, 0u64);
    for g in 0..reader.gop_count() {
        let s = reader
            .gop_sizes(g)
            .with_context(|| format!("{}: GOP {g}", path.display()))?;
        per_track
            .iter_mut()
            .zip(&s.track_bytes)
            .for_each(|(t, b)| *t += b);
        side_total += s.side_bytes;
        gaussian_frames += s.side.gaussian_count as u64 * s.side.frame_count as u64;
        frames += s.side.frame_count as u64;
        reports.push(GopReport {
            first_frame: s.first_frame,
            frames: s.side.frame_count as usize,
            gaussians: s.side.gaussian_count as usize,
            start: s.side.start,
            rematched: s.side.rematched.clone(),
            side_bytes: s.side_bytes,
            track_bytes: Vec::new(),
        });
    }
    print_reports(&reports);
    println!("bytes per attribute:");
    let gf = gaussian_frames.max(1) as f64;
    for (t, bytes) in movie.tracks.iter().zip(&per_track) {
        println!(
            "  {:<28} {:>10}  {:.3} B/Gaussian/frame",
            t.name,
            bytes,
            *bytes as f64 / gf
        );
    }
    println!(
        "  {:<28} {:>10}  {:.3} B/Gaussian/frame",
        "side data",
        side_total,
        side_total as f64 / gf
    );
    println!(
        "total {} frames, {} bytes, {:.3} bytes/Gaussian/frame",
        frames,
        file_bytes,
        file_bytes as f64 / gf
    );
    Ok(())
}

pub fn demo(output: Option<&Path>, speed: Option<u8>, n: usize) -> Result<()> {
    let (frame_count, fps) = (60, 30.0);
    let temp = tempfile::tempdir().context("cannot create a temporary directory")?;
    let path = output
        .map(Path::to_owned)
        .unwrap_or_else(|| temp.path().join("galaxy.mp4"));
    println!(
        "Splatcast demo: a procedural galaxy, {n} Gaussians x {frame_count} frames (SH degree 1)"
    );
    let options = EncodeOptions {
        fps,
        gop: 30,
        speed,
        ..EncodeOptions::default()
    };
    let frames: Vec<GaussianFrame> = (0..frame_count)
        .map(|t| demo::galaxy_frame(n, t, fps))
        .collect();
    let layout = stream_layout(&options, n, 1);
    let out = AtomicFile::create(&path)?;
    let mut encoder = SequenceEncoder::new(out, layout, options, true);
    let pb = bar(frame_count as u64, "encoding");
    let start = Instant::now();
    for f in frames {
        encoder.push(f)?;
        pb.inc(1);
    }
    let encoded = encoder.finish()?;
    encoded.output.commit()?;
    let reports = encoded.reports;
    pb.finish_and_clear();
    let encode_secs = start.elapsed().as_secs_f64();
    let reference = encoded.reference.expect("kept");

    let mut reader = open(&path)?;
    let mut decoder = Rav1dDecoder::new(0);
    let start = Instant::now();
    let mut errors = ErrorAccumulator::default();
    let mut decoded = 0;
    for g in 0..reader.gop_count() {
        let gop = reader.read_gop(g, &mut decoder)?;
        for (k, frame) in gop.frames.iter().enumerate() {
            errors.add(&reference[gop.first_frame as usize + k], frame);
            decoded += 1;
        }
    }
    let decode_secs = start.elapsed().as_secs_f64();
    ensure!(
        decoded == frame_count,
        "decoded {decoded} of {frame_count} frames"
    );
    let e = errors.finish();
    let bytes = std::fs::metadata(&path)?.len();
    let gf = (n * frame_count) as f64;
    println!();
    println!("| measure | value |");
    println!("|---|---|");
    println!("| file | {} bytes ({} GOPs) |", bytes, reports.len());
    println!("| bytes / Gaussian / frame | {:.3} |", bytes as f64 / gf);
    println!("| uncompressed PLY / Gaussian / frame | {} |", 4 * (17 + 9));
    for (attribute, b) in reports[0].track_bytes.iter().map(|(a, _)| *a).zip(0..) {
        let total: usize = reports.iter().map(|r| r.track_bytes[b].1).sum();
        println!(
            "| {} bytes / Gaussian / frame | {:.3} |",
            attribute.name(),
            total as f64 / gf
        );
    }
    let side: usize = reports.iter().map(|r| r.side_bytes).sum();
    println!(
        "| side data bytes / Gaussian / frame | {:.3} |",
        side as f64 / gf
    );
    println!(
        "| position RMSE / extent | {:.2e} (max {:.2e}) |",
        e.position_rel, e.position_max_rel
    );
    println!("| rotation RMSE | {:.2} deg |", e.rotation_deg);
    println!("| log-scale RMSE | {:.4} |", e.log_scale);
    println!("| opacity RMSE | {:.4} |", e.opacity);
    println!("| colour RMSE | {:.4} |", e.color);
    println!("| SH rest RMSE | {:.4} |", e.sh_rest);
    println!(
        "| encode | {:.1} frames/s |",
        frame_count as f64 / encode_secs
    );
    println!(
        "| decode | {:.1} frames/s |",
        frame_count as f64 / decode_secs
    );
    if output.is_some() {
        println!("kept {}", path.display());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::parse_bitrate;

    #[test]
    fn bitrates_parse_with_suffixes() {
        assert_eq!(parse_bitrate("800k").unwrap(), 800_000);
        assert_eq!(parse_bitrate("2.5M").unwrap(), 2_500_000);
        assert_eq!(parse_bitrate("1500").unwrap(), 1500);
        assert!(parse_bitrate("fast").is_err());
        assert!(parse_bitrate("-3k").is_err());
    }
}
