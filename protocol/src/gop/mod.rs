//! A group of pictures: Gaussian frames that share one pixel layout, turned into attribute
//! planes plus side data, and back.
//!
//! Each attribute group is one monochrome AV1 track whose picture tiles its channels (the three
//! position displacements side by side, and so on). Keyframe positions travel in the side data,
//! exactly (16 bits over the GOP box) or as a coarse AV1 picture ([`KeyframeCoding`]); every
//! frame adds its displacement from them from the position planes.

mod keyframe;
mod pack;
mod quant;
mod side;

pub use pack::{GopPlan, KeyframeCoding, PackedGop, PlaneSet, UnpackError, pack, unpack};
pub use quant::Range;
pub use side::{GopSide, GopStart, SideError, TrackRanges};

use crate::gaussian::sh_rest_count;

/// The attribute groups, one AV1 track each.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Attribute {
    /// Displacement from the keyframe position (x, y, z).
    Position,
    /// Normalised quaternion (x, y, z, w).
    Rotation,
    /// Log-scale per axis.
    Scale,
    /// DC colour (r, g, b) and opacity after the sigmoid.
    ColorOpacity,
    /// Higher-order SH coefficients, coefficient-major then r, g, b.
    ShRest,
}

impl Attribute {
    /// Every attribute, in track order.
    pub const ALL: [Attribute; 5] = [
        Attribute::Position,
        Attribute::Rotation,
        Attribute::Scale,
        Attribute::ColorOpacity,
        Attribute::ShRest,
    ];

    /// Scalar channels this attribute has at an SH degree.
    pub fn channels(self, sh_degree: u8) -> usize {
        match self {
            Attribute::Position | Attribute::Scale => 3,
            Attribute::Rotation | Attribute::ColorOpacity => 4,
            Attribute::ShRest => 3 * sh_rest_count(sh_degree),
        }
    }

    /// Track name, as ffprobe shows it.
    pub fn name(self) -> &'static str {
        match self {
            Attribute::Position => "position",
            Attribute::Rotation => "rotation",
            Attribute::Scale => "scale",
            Attribute::ColorOpacity => "color_opacity",
            Attribute::ShRest => "sh_rest",
        }
    }

    /// Stable numeric code stored in side data.
    pub fn code(self) -> u8 {
        Attribute::ALL
            .iter()
            .position(|&a| a == self)
            .expect("listed") as u8
    }

    /// Inverse of [`Attribute::code`].
    pub fn from_code(code: u8) -> Option<Self> {
        Attribute::ALL.get(code as usize).copied()
    }

    /// The attributes a frame of this SH degree needs.
    pub fn for_degree(sh_degree: u8) -> Vec<Attribute> {
        Attribute::ALL
            .into_iter()
            .filter(|a| a.channels(sh_degree) > 0)
            .collect()
    }
}

/// Where one track's channels sit in its picture: a grid of `grid`-sized tiles, side by side.
/// (Aligning tiles to 64-pixel superblocks, with edge extension between them, was measured on
/// the wave: 8 % larger files for the same error, so tiles stay packed at the 8-pixel grid.)
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tiles {
    /// Tiles per row.
    pub columns: usize,
    /// Tile rows.
    pub rows: usize,
    /// Horizontal distance between tile origins.
    pub stride_x: usize,
    /// Vertical distance between tile origins.
    pub stride_y: usize,
}

impl Tiles {
    /// The tiling of `channels` planes of `grid` size.
    pub fn new(channels: usize, grid: crate::layout::Grid) -> Self {
        let columns = (channels as f64).sqrt().ceil().max(1.0) as usize;
        Self {
            columns,
            rows: channels.div_ceil(columns),
            stride_x: grid.width,
            stride_y: grid.height,
        }
    }

    /// Picture size in pixels.
    pub fn picture_size(&self) -> (usize, usize) {
        (self.columns * self.stride_x, self.rows * self.stride_y)
    }

    /// Top-left pixel of channel `c`'s tile.
    pub fn origin(&self, c: usize) -> (usize, usize) {
        (
            c % self.columns * self.stride_x,
            c / self.columns * self.stride_y,
        )
    }
}
