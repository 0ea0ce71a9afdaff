//! Playback speed of a Splatcast stream: the player's pipeline without its window. AV1 decode of
//! every GOP's planes on the CPU (rav1d) — the player's way (one decoder per track, tracks in
//! parallel) and one track after another with `--threads` rav1d threads, in the same run — then
//! upload + unpack on the GPU, then render at 1920×1080, each timed on its own. The stream is a
//! generated moving cloud (`--scene drift`: the demo galaxy moving rigidly, every Gaussian
//! moving every frame; `fast-drift`: the same six times faster; `--scene galaxy`: the demo's
//! shearing spiral, a worst case) at
//! `--gaussians` per frame, encoded first (GOP 30, Medium), or any file given with `--input`.
//!
//! `cargo run --release -p splatcast-encoder --bin playback-bench -- [--gaussians 100000]
//! [--frames 60] [--scene drift|fast-drift|galaxy] [--quality low|medium|high|max] [--threads N] [--input s.mp4] [--keep s.mp4]
//! [--decode-only]`

use std::io::Cursor;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::ValueEnum;
use glam::{DVec3, Vec3};
use splatcast_encoder::{EncodeOptions, Quality, SequenceEncoder, demo, stream_layout};
use splatcast_protocol::av1::{PlaneDecoder, Rav1dDecoder};
use splatcast_protocol::stream::StreamReader;
use splatcast_shaders::unpack::{Order, Placement, Unpacker};
use splatcast_shaders::{Camera, Gpu, Renderer, synthetic};

struct Args {
    gaussians: usize,
    frames: usize,
    threads: usize,
    input: Option<PathBuf>,
    keep: Option<PathBuf>,
    decode_only: bool,
    /// Turn rate of the drifting cloud (rad/s); `None` for the shearing galaxy.
    drift: Option<f32>,
    quality: Quality,
}

fn args() -> Result<Args> {
    let mut a = Args {
        gaussians: 100_000,
        frames: 60,
        threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
        input: None,
        keep: None,
        decode_only: false,
        drift: Some(0.06),
        quality: Quality::Medium,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--gaussians" => a.gaussians = value()?.parse()?,
            "--frames" => a.frames = value()?.parse()?,
            "--threads" => a.threads = value()?.parse()?,
            "--input" => a.input = Some(value()?.into()),
            "--keep" => a.keep = Some(value()?.into()),
            "--decode-only" => a.decode_only = true,
            "--quality" => {
                a.quality = Quality::from_str(&value()?, true)
                    .map_err(|e| anyhow::anyhow!("--quality: {e}"))?
            }
            "--scene" => {
                a.drift = match value()?.as_str() {
                    "drift" => Some(0.06),
                    "fast-drift" => Some(0.35),
                    "galaxy" => None,
                    other => bail!("--scene {other}: drift, fast-drift or galaxy"),
                }
            }
            other => bail!("unknown argument {other}"),
        }
    }
    Ok(a)
}

/// The generated stream, encoded.
fn encode(a: &Args) -> Result<Vec<u8>> {
    let options = EncodeOptions {
        quality: a.quality,
        ..EncodeOptions::default()
    };
    let start = Instant::now();
    let mut enc = SequenceEncoder::new(
        Vec::new(),
        stream_layout(&options, a.gaussians, 1),
        options.clone(),
        false,
    );
    for t in 0..a.frames {
        let frame = match a.drift {
            Some(rate) => demo::drifting_frame(a.gaussians, t, options.fps, rate),
            None => demo::galaxy_frame(a.gaussians, t, options.fps),
        };
        enc.push(frame)?;
    }
    let bytes = enc.finish()?.output;
    println!(
        "encoded {} frames of {} Gaussians in {:.1} s: {:.2} B/Gaussian/frame",
        a.frames,
        a.gaussians,
        start.elapsed().as_secs_f64(),
        bytes.len() as f64 / (a.gaussians * a.frames) as f64
    );
    Ok(bytes)
}

fn main() -> Result<()> {
    let a = args()?;
    let bytes = match &a.input {
        Some(p) => std::fs::read(p).with_context(|| p.display().to_string())?,
        None => encode(&a)?,
    };
    if let Some(p) = &a.keep {
        splatcast_protocol::atomic::write_file(p, &bytes)
            .with_context(|| format!("{}: cannot write", p.display()))?;
    }

    // 1. AV1 decode of the plane sets, GOP by GOP: the player's way (a decoder per track, the
    //    tracks in parallel), then one track after another on `threads` rav1d threads.
    let mut reader = StreamReader::open(Cursor::new(bytes))?;
    let tracks = reader.gop_sizes(0)?.track_bytes.len();
    let mut decoders: Vec<Box<dyn PlaneDecoder>> = (0..tracks)
        .map(|_| Box::new(Rav1dDecoder::new(1)) as Box<dyn PlaneDecoder>)
        .collect();
    let mut gops = Vec::with_capacity(reader.gop_count());
    let start = Instant::now();
    for g in 0..reader.gop_count() {
        gops.push(reader.decode_planes_parallel(g, &mut decoders)?);
    }
    let decode = start.elapsed().as_secs_f64();
    let mut sequential = Rav1dDecoder::new(a.threads as u32);
    let start = Instant::now();
    for g in 0..reader.gop_count() {
        reader.decode_planes(g, &mut sequential)?;
    }
    let decode_sequential = start.elapsed().as_secs_f64();
    let frames: usize = gops
        .iter()
        .map(|(_, _, p)| p.first().map_or(0, Vec::len))
        .sum();
    println!(
        "decode: {frames} plane sets of {tracks} tracks; tracks in parallel: {:.1} plane sets/s ({:.2} ms each); \
         one track at a time on {} rav1d threads: {:.1} plane sets/s ({:.2}x slower)",
        frames as f64 / decode,
        1000.0 * decode / frames as f64,
        a.threads,
        frames as f64 / decode_sequential,
        decode_sequential / decode
    );
    if a.decode_only {
        return Ok(());
    }

    // 2. Upload + unpack on the GPU; 3. render at 1080p from a slowly circling camera.
    let gpu = Gpu::new()?;
    let unpacker = Unpacker::new(&gpu);
    let renderer = Renderer::new(&gpu);
    let wait = || {
        gpu.device
            .poll(wgpu::PollType::wait_indefinitely())
            .context("waiting for the GPU")
    };
    let (mut upload, mut both) = (0.0, 0.0);
    let mut camera_at = None;
    for (_, side, planes) in &gops {
        let out = unpacker.output(&gpu, side)?;
        let gop = unpacker.prepare(&gpu, side, &out, Order::Coded, Placement::default())?;
        let count = planes.first().map_or(0, Vec::len);
        let picture = |f: usize| planes.iter().map(|track| &track[f]).collect::<Vec<_>>();
        let unpack = |f: usize| -> Result<wgpu::CommandEncoder> {
            let mut encoder = gpu.device.create_command_encoder(&Default::default());
            unpacker.unpack(&gpu, &mut encoder, &gop, &picture(f))?;
            Ok(encoder)
        };
        // Frame the scene once, from the first frame; size the render buffers for this GOP.
        gpu.queue.submit([unpack(0)?.finish()]);
        let camera_at = match camera_at {
            Some(c) => c,
            None => {
                let first = out.download(&gpu)?;
                let (centre, radius) = synthetic::framing(&first);
                let c = move |i: usize| {
                    let angle = i as f64 * 0.01;
                    let eye = centre + DVec3::new(angle.sin(), -0.5, -angle.cos()) * 2.2 * radius;
                    Camera::look_at(eye, centre, DVec3::NEG_Y, 50.0, 1920, 1080)
                };
                camera_at = Some(c);
                c
            }
        };
        let mut buffers = None;
        renderer.render(&gpu, &out, &mut buffers, &camera_at(0), Vec3::ZERO)?;
        let b = buffers.context("made by render")?;
        wait()?;
        let start = Instant::now();
        for f in 0..count {
            gpu.queue.submit([unpack(f)?.finish()]);
        }
        wait()?;
        upload += start.elapsed().as_secs_f64();
        let start = Instant::now();
        for f in 0..count {
            renderer.set_view(&gpu, &b, &camera_at(f), Vec3::ZERO)?;
            let mut encoder = unpack(f)?;
            renderer.encode(&mut encoder, &b, None);
            gpu.queue.submit([encoder.finish()]);
            if f % 8 == 7 {
                wait()?;
            }
        }
        wait()?;
        both += start.elapsed().as_secs_f64();
        if renderer.pairs_wanted(&gpu, &b)? > b.capacity() {
            bail!("a frame needed more tile pairs than the first frame sized");
        }
    }
    let render = (both - upload).max(0.0);
    let n = frames as f64;
    println!("adapter: {}", gpu.describe());
    println!("| stage | ms/frame | frames/s |\n|---|---:|---:|");
    for (name, seconds) in [
        ("AV1 decode (CPU)", decode),
        ("upload + unpack (GPU)", upload),
        ("render 1920x1080 (GPU)", render),
        ("upload + unpack + render", both),
    ] {
        println!(
            "| {name} | {:.3} | {:.0} |",
            1000.0 * seconds / n,
            n / seconds
        );
    }
    Ok(())
}
