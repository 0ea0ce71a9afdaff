//! Quality presets: per-attribute bit depth and AV1 quantizer, and the rav1e speed.
//!
//! Positions get the finest quantizer because geometry errors show most; SH rest coefficients,
//! which only tint views, get the coarsest.

use clap::ValueEnum;
use splatcast_protocol::gop::{Attribute, KeyframeCoding};

/// Bit depth of every attribute's planes, at every preset. Measured on the wave (Medium, GOP
/// 30): against 8-bit planes for all but positions, 3 % more bytes for 6–19 % less error on
/// every attribute — AV1 predicts and transforms more precisely at 10 bits.
pub const PLANE_BIT_DEPTH: u8 = 10;

/// A named trade-off between size and fidelity.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Quality {
    /// Smallest files.
    Low,
    /// The default balance.
    Medium,
    /// Larger files, closer to the input.
    High,
    /// Near the limit of 8/10-bit quantisation.
    Max,
}

impl Quality {
    /// AV1 base quantizer index (0–255) for an attribute. Chosen towards the rate–distortion
    /// hull of the donut's keyframe (`rd-sweep`, render PSNR), whose per-attribute slopes say
    /// render quality is bought most cheaply in rotation, scale and colour, least in positions
    /// and SH (learnt 150k-Gaussian streams agreed: +1.1–1.2 dB for +3 % bytes with finer
    /// rotation, scale and colour). Medium stops short of the donut's hull because the wave, whose
    /// render quality is all positions, must stay under 0.85 B/G/frame: there it gives +0.1 dB
    /// for +5 % bytes, on the donut +1.5 dB for +1.5 % (BENCHMARKS.md, session 16).
    pub fn quantizer(self, attribute: Attribute) -> u8 {
        let [low, medium, high, max] = match attribute {
            Attribute::Position => [64, 16, 16, 4],
            Attribute::Rotation => [96, 56, 32, 16],
            Attribute::Scale => [80, 45, 32, 16],
            Attribute::ColorOpacity => [64, 35, 16, 8],
            Attribute::ShRest => [200, 160, 110, 60],
        };
        match self {
            Quality::Low => low,
            Quality::Medium => medium,
            Quality::High => high,
            Quality::Max => max,
        }
    }

    /// How keyframe positions travel. Measured on the donut (`rd-sweep`, one keyframe, render
    /// PSNR): a coarse AV1 picture refined by the position track is on the hull up to High
    /// (13.1 B/G at 52.6 dB layered, against 14.2 at 53.7 exact), but Max's refinement planes
    /// would carry near-exact noise: Max keeps exact positions. `speed` is the rav1e preset the
    /// coarse picture is coded with.
    pub fn keyframes(self, speed: u8) -> KeyframeCoding {
        let layered = |quantizer| KeyframeCoding::Layered { quantizer, speed };
        match self {
            Quality::Low => layered(64),
            Quality::Medium => layered(32),
            Quality::High => layered(24),
            Quality::Max => KeyframeCoding::Exact,
        }
    }

    /// Opacity below which a Gaussian that stays that faint through a whole GOP is left out of
    /// it. Faint Gaussians add little to the picture but cost as much as any other, and their
    /// quantised opacity can come out more visible than they were. Measured on the donut (render
    /// PSNR against the source, 8 views): at 0.05, Low 8.24 → 7.58 B/G and 38.72 → 39.03 dB,
    /// Medium 11.28 → 10.32 B/G at 46.66 → 46.65 dB, High 12.95 → 11.92 B/G for −0.23 dB; Max
    /// keeps down to 0.02 (16.33 → 15.37 B/G, 57.81 → 57.99 dB; at 0.05 it lost 0.7 dB). The
    /// encoder lowers it where the faint Gaussians carry the picture (3DGS-MCMC's scenes).
    pub fn prune_below(self) -> f32 {
        match self {
            Quality::Low | Quality::Medium | Quality::High => 0.05,
            Quality::Max => 0.02,
        }
    }

    /// rav1e speed preset.
    pub fn speed(self) -> u8 {
        match self {
            Quality::Low | Quality::Medium => 9,
            Quality::High => 8,
            Quality::Max => 6,
        }
    }
}
