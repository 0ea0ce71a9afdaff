//! Rate–distortion sweep of keyframe coding: how each attribute's AV1 quantizer (and the coarse
//! keyframe-position picture's) trades bytes for render PSNR on one real splat, the data the
//! quality presets are tuned on.
//!
//! One splat is coded as a single keyframe with every quantizer at its finest, then with one
//! quantizer at a time raised through `--steps`; each result is decoded and rendered from a ring
//! of cameras against the uncompressed input. Bytes are separable per track and the rendering
//! error of independent attributes adds up approximately in squared error, so the printed
//! per-attribute curves (bytes/Gaussian, ΔMSE) let a preset be read off for any slope; `--try`
//! codes one full quantizer set and prints its bytes and PSNR.
//!
//! `rd-sweep <splat> [--up z|y|-y|x] [--views 12] [--size 384] [--steps 0,32,64,...]
//!  [--try key,pos,rot,scale,colour,sh ...] (key x: exact) [--compare other.sog ...]`

use std::io::Cursor;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use glam::Vec3;
use splatcast_encoder::quality::ViewScorer;
use splatcast_encoder::scene::bounds;
use splatcast_encoder::views::{Orbit, Up, ring};
use splatcast_encoder::{EncodeOptions, stream_layout};
use splatcast_protocol::GaussianFrame;
use splatcast_protocol::av1::{EncoderSettings, Rav1dDecoder};
use splatcast_protocol::formats;
use splatcast_protocol::gop::{Attribute, GopStart, KeyframeCoding};
use splatcast_protocol::stream::{Fragmentation, StreamReader, StreamWriter};

/// The quantizers of one coding: the coarse keyframe picture, then one per track.
#[derive(Clone, Debug)]
struct Quantizers {
    /// `None`: exact 16-bit keyframe positions.
    key: Option<u8>,
    tracks: Vec<u8>,
}

/// Codes `frame` as one keyframe; returns its bytes and its decode.
fn code(frame: &GaussianFrame, q: &Quantizers, speed: u8) -> Result<(usize, GaussianFrame)> {
    let layout = stream_layout(&EncodeOptions::default(), frame.len(), frame.sh_degree);
    let settings = q
        .tracks
        .iter()
        .map(|&quantizer| EncoderSettings {
            speed,
            quantizer,
            fps: 30.0,
            threads: 1,
        })
        .collect();
    let key = q
        .key
        .map_or(KeyframeCoding::Exact, |quantizer| KeyframeCoding::Layered {
            quantizer,
            speed,
        });
    let mut writer =
        StreamWriter::new(layout, settings, Fragmentation::Gop, 4).keyframe_coding(key);
    let gop = writer.write_gop(std::slice::from_ref(frame), GopStart::First, vec![0])?;
    let mut bytes = gop.init.clone().unwrap_or_default();
    gop.chunks.iter().for_each(|c| bytes.extend(&c.bytes));
    bytes.extend(writer.finish()?);
    let mut reader = StreamReader::open(Cursor::new(&bytes))?;
    let decoded = reader
        .read_gop(0, &mut Rav1dDecoder::new(0))?
        .frames
        .pop()
        .context("no frame decoded")?;
    Ok((bytes.len(), decoded))
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let flag = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .map(|i| args[i + 1].clone())
    };
    let input = PathBuf::from(args.first().context("usage: rd-sweep <splat> [options]")?);
    let up = match flag("--up").as_deref().unwrap_or("z") {
        "z" => Up::PosZ,
        "y" => Up::PosY,
        "-y" => Up::NegY,
        "x" => Up::PosX,
        other => bail!("--up {other}: expected z, y, -y or x"),
    };
    let views: usize = flag("--views").map_or(Ok(12), |v| v.parse())?;
    let size: u32 = flag("--size").map_or(Ok(384), |v| v.parse())?;
    let speed: u8 = flag("--speed").map_or(Ok(9), |v| v.parse())?;
    let steps: Vec<u8> = flag("--steps")
        .unwrap_or_else(|| "0,32,64,96,128,160,192,224,255".into())
        .split(',')
        .map(str::parse)
        .collect::<Result<_, _>>()?;
    let frame = formats::load(&input).with_context(|| format!("{}", input.display()))?;
    let n = frame.len() as f64;
    let tracks = Attribute::for_degree(frame.sh_degree);
    let (centre, radius) = bounds(&frame);
    let cameras = ring(Orbit::default(), views, centre, radius, up, size, size);
    let scorer = ViewScorer::new(cameras, Vec3::ZERO)?;
    let reference = scorer.render(&frame)?;
    let mse = |decoded: &GaussianFrame| -> Result<f64> {
        let psnr = scorer.score(&reference, decoded, false)?.psnr;
        Ok(10f64.powf(-psnr / 10.0))
    };
    let every = |name: &str| -> Vec<&String> {
        args.iter()
            .zip(args.iter().skip(1))
            .filter(|(a, _)| *a == name)
            .map(|(_, v)| v)
            .collect()
    };
    let (tries, compares) = (every("--try"), every("--compare"));
    if !tries.is_empty() || !compares.is_empty() {
        println!("| key, tracks | B/G | PSNR dB |\n|---|---|---|");
        for other in &compares {
            // Another codec's rendition of the same splat (SOG, SPZ, ...), scored the same way.
            let path = PathBuf::from(other);
            let decoded = formats::load(&path).with_context(|| other.to_string())?;
            let bytes = std::fs::metadata(&path)?.len();
            let psnr = -10.0 * mse(&decoded)?.log10();
            println!("| {other} | {:.3} | {psnr:.2} |", bytes as f64 / n);
        }
        for t in tries {
            let (key, rest) = t.split_once(',').unwrap_or((t, ""));
            let q: Vec<u8> = rest.split(',').map(str::parse).collect::<Result<_, _>>()?;
            if q.len() != tracks.len() {
                bail!("--try {t}: expected {} quantizers", tracks.len() + 1);
            }
            let q = Quantizers {
                key: (key != "x").then(|| key.parse()).transpose()?,
                tracks: q,
            };
            let (bytes, decoded) = code(&frame, &q, speed)?;
            let psnr = -10.0 * mse(&decoded)?.log10();
            println!("| {t} | {:.3} | {psnr:.2} |", bytes as f64 / n);
        }
        return Ok(());
    }
    let finest = Quantizers {
        key: Some(0),
        tracks: vec![0; tracks.len()],
    };
    let (base_bytes, decoded) = code(&frame, &finest, speed)?;
    let base_mse = mse(&decoded)?;
    println!(
        "{}: {} Gaussians; all quantizers 0: {:.3} B/G, {:.2} dB on {}",
        input.display(),
        frame.len(),
        base_bytes as f64 / n,
        -10.0 * base_mse.log10(),
        scorer.describe()
    );
    println!("| varied | quantizer | B/G | ΔB/G | ΔMSE | PSNR dB |\n|---|---|---|---|---|---|");
    for which in 0..=tracks.len() {
        let name = if which == 0 {
            "keyframe positions"
        } else {
            tracks[which - 1].name()
        };
        for &q in steps.iter().filter(|&&q| q > 0) {
            let mut quantizers = finest.clone();
            if which == 0 {
                quantizers.key = Some(q);
            } else {
                quantizers.tracks[which - 1] = q;
            }
            let (bytes, decoded) = code(&frame, &quantizers, speed)?;
            let m = mse(&decoded)?;
            println!(
                "| {name} | {q} | {:.3} | {:.3} | {:.3e} | {:.2} |",
                bytes as f64 / n,
                (bytes as f64 - base_bytes as f64) / n,
                m - base_mse,
                -10.0 * m.log10()
            );
        }
    }
    Ok(())
}
