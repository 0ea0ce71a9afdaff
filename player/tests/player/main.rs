//! The player's tests in one binary (each test binary links bevy and wgpu; one keeps builds
//! small): the decode pipeline and its bad inputs, the controls inside
//! a bevy app, and the GPU pictures headless and in a real window.

mod controls;
mod moq;
mod pictures;
mod stream;

use std::path::{Path, PathBuf};

use splatcast_encoder::{EncodeOptions, SequenceEncoder, demo, stream_layout};
use splatcast_protocol::GaussianFrame;

/// Encodes `frames` frames of the demo galaxy (`n` Gaussians) with GOPs of `gop` frames into
/// `dir/name`; returns the path and the encoder's reference (decoded) frames.
pub fn encode_demo(
    dir: &Path,
    name: &str,
    n: usize,
    frames: usize,
    gop: usize,
) -> (PathBuf, Vec<GaussianFrame>) {
    encode_demo_at(
        dir,
        name,
        n,
        frames,
        gop,
        splatcast_encoder::Quality::Medium,
    )
}

/// [`encode_demo`] at another quality preset.
pub fn encode_demo_at(
    dir: &Path,
    name: &str,
    n: usize,
    frames: usize,
    gop: usize,
    quality: splatcast_encoder::Quality,
) -> (PathBuf, Vec<GaussianFrame>) {
    let options = EncodeOptions {
        gop,
        quality,
        ..EncodeOptions::default()
    };
    let mut enc = SequenceEncoder::new(Vec::new(), stream_layout(&options, n, 1), options, true);
    for t in 0..frames {
        enc.push(demo::galaxy_frame(n, t, 30.0)).unwrap();
    }
    let encoded = enc.finish().unwrap();
    let path = dir.join(name);
    std::fs::write(&path, &encoded.output).unwrap();
    (path, encoded.reference.unwrap())
}
