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
    /// AV1 base quantizer index (0–255) for an attribute.
    pub fn quantizer(self, attribute: Attribute) -> u8 {
        let [low, medium, high, max] = match attribute {
            Attribute::Position => [40, 16, 8, 2],
            Attribute::Rotation => [120, 70, 40, 20],
            Attribute::Scale => [100, 50, 30, 16],
            Attribute::ColorOpacity => [90, 40, 25, 12],
            Attribute::ShRest => [160, 110, 70, 40],
        };
        match self {
            Quality::Low => low,
            Quality::Medium => medium,
            Quality::High => high,
            Quality::Max => max,
        }
    }

    /// How keyframe positions travel. Measured on the donut (`rd-sweep`, one keyframe, render
    /// PSNR): a coarse AV1 picture refined by the position track saves 22 % at Low (8.0 vs 10.2
    /// B/G at 38 dB) and 7 % at Medium (11.1 vs 11.9 at 46 dB), but costs 4 % at High and 16 % at
    /// Max, where the refinement planes must carry near-exact noise: those keep exact positions.
    /// `speed` is the rav1e preset the coarse picture is coded with.
    pub fn keyframes(self, speed: u8) -> KeyframeCoding {
        let layered = |quantizer| KeyframeCoding::Layered { quantizer, speed };
        match self {
            Quality::Low => layered(48),
            Quality::Medium => layered(24),
            Quality::High | Quality::Max => KeyframeCoding::Exact,
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
