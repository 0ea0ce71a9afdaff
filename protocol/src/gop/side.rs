//! Per-GOP side data: what the decoder needs beside the planes (layout, ranges, exact keyframe
//! positions), serialised little-endian and zstd-compressed into one metadata sample.

use glam::Vec3;

use super::{Attribute, Range};
use crate::formats::FormatError;
use crate::layout::Grid;

const MAGIC: &[u8; 4] = b"SCGP";
/// Side-data format version written; readers take this and version 1 (exact keyframe
/// positions only) and refuse others.
pub const VERSION: u8 = 2;
/// Largest side data we inflate.
const MAX_SIDE: usize = 1 << 30;

/// Why a GOP starts where it does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GopStart {
    /// The first frame of the sequence.
    First,
    /// The previous GOP reached the GOP length.
    Length,
    /// The Gaussian count changed.
    CountChanged,
    /// The frame could not be matched one-to-one with the previous one.
    NoCorrespondence,
    /// The photos changed too much from the previous frame (a learnt encoder's scene cut).
    SceneChange,
    /// A residual frame fell too far below the keyframe's quality (a learnt encoder).
    Quality,
    /// Gaussians moved beyond the displacement range a live encoder fixed at the keyframe.
    Motion,
}

impl GopStart {
    fn code(self) -> u8 {
        self as u8
    }

    fn from_code(c: u8) -> Option<Self> {
        [
            Self::First,
            Self::Length,
            Self::CountChanged,
            Self::NoCorrespondence,
            Self::SceneChange,
            Self::Quality,
            Self::Motion,
        ]
        .get(c as usize)
        .copied()
    }

    /// A short phrase for `info`.
    pub fn describe(self) -> &'static str {
        match self {
            Self::First => "first GOP",
            Self::Length => "GOP length reached",
            Self::CountChanged => "Gaussian count changed",
            Self::NoCorrespondence => "no one-to-one match with the previous frame",
            Self::SceneChange => "scene change",
            Self::Quality => "residual quality fell below the threshold",
            Self::Motion => "motion beyond the live GOP's range",
        }
    }
}

/// Quantisation of one track.
#[derive(Clone, Debug, PartialEq)]
pub struct TrackRanges {
    /// Which attribute the track carries.
    pub attribute: Attribute,
    /// Bits per sample.
    pub bit_depth: u8,
    /// One range per channel.
    pub ranges: Vec<Range>,
}

/// Everything about a GOP that is not in the planes.
#[derive(Clone, Debug, PartialEq)]
pub struct GopSide {
    /// Frames in the GOP.
    pub frame_count: u32,
    /// Gaussians per frame.
    pub gaussian_count: u32,
    /// Plane size.
    pub grid: Grid,
    /// SH degree.
    pub sh_degree: u8,
    /// Why the GOP starts here.
    pub start: GopStart,
    /// Per frame, how many Gaussians had to be re-matched to keep identities (0 when the input
    /// already kept its order).
    pub rematched: Vec<u32>,
    /// One bit per pixel, raster order, LSB first: which pixels hold Gaussians.
    pub occupancy: Vec<u8>,
    /// Box of the keyframe positions.
    pub box_min: Vec3,
    /// Box of the keyframe positions.
    pub box_max: Vec3,
    /// Keyframe positions quantised to 16 bits over the box, in coded order: exact, or the
    /// decoded codes of `keyframe_av1`.
    pub keyframe_positions: Vec<[u16; 3]>,
    /// When present, the keyframe positions travel as this AV1 picture (10-bit codes of the
    /// three axes over the box, tiled on the grid like a track; see [`super::keyframe`]) and
    /// the position track's keyframe picture carries the refinement.
    pub keyframe_av1: Option<Vec<u8>>,
    /// Quantisation of each AV1 track, in track order.
    pub tracks: Vec<TrackRanges>,
}

/// Why side data could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SideError {
    /// Not zstd, or too large.
    #[error("side data: {0}")]
    Compression(String),
    /// Malformed contents.
    #[error("side data")]
    Format(#[from] FormatError),
    /// A later format version.
    #[error("side data version {0} is not supported (this build reads versions 1 to {VERSION})")]
    Version(u8),
}

impl GopSide {
    /// Dequantised keyframe position of coded Gaussian `i`.
    pub fn keyframe_position(&self, i: usize) -> Vec3 {
        box_position((self.box_min, self.box_max), self.keyframe_positions[i])
    }

    /// Centre and radius of the keyframe (see [`crate::gaussian::robust_bounds`]): what a
    /// player frames its first view on, before any picture is decoded.
    pub fn bounds(&self) -> (Vec3, f32) {
        crate::gaussian::robust_bounds(
            (0..self.keyframe_positions.len()).map(|i| self.keyframe_position(i)),
        )
    }

    /// True when pixel `p` holds a Gaussian.
    pub fn occupied(&self, p: usize) -> bool {
        occupied(&self.occupancy, p)
    }

    /// Serialises and compresses.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(MAGIC);
        b.push(VERSION);
        b.extend(self.frame_count.to_le_bytes());
        b.extend(self.gaussian_count.to_le_bytes());
        b.extend((self.grid.width as u32).to_le_bytes());
        b.extend((self.grid.height as u32).to_le_bytes());
        b.push(self.sh_degree);
        b.push(self.start.code());
        self.rematched
            .iter()
            .for_each(|r| b.extend(r.to_le_bytes()));
        b.extend_from_slice(&self.occupancy);
        for v in [self.box_min, self.box_max] {
            v.to_array().iter().for_each(|f| b.extend(f.to_le_bytes()));
        }
        if let Some(av1) = &self.keyframe_av1 {
            b.push(1);
            b.extend((av1.len() as u32).to_le_bytes());
            b.extend_from_slice(av1);
        } else {
            b.push(0);
            self.write_exact_positions(&mut b);
        }
        b.push(self.tracks.len() as u8);
        for t in &self.tracks {
            b.push(t.attribute.code());
            b.push(t.bit_depth);
            b.extend((t.ranges.len() as u16).to_le_bytes());
            for r in &t.ranges {
                b.extend(r.lo.to_le_bytes());
                b.extend(r.hi.to_le_bytes());
            }
        }
        zstd::bulk::compress(&b, 19).expect("in-memory zstd compression cannot fail")
    }

    /// Decompresses and parses, checking every count against the bytes present.
    pub fn from_bytes(data: &[u8]) -> Result<Self, SideError> {
        let limit = data.len().saturating_mul(64).clamp(1 << 16, MAX_SIDE);
        let raw = zstd::bulk::decompress(data, limit)
            .map_err(|e| SideError::Compression(e.to_string()))?;
        let mut c = crate::formats::Reader::new(&raw);
        if c.take(4, "magic")? != MAGIC {
            return Err(FormatError::Invalid("bad side-data magic".into()).into());
        }
        let version = c.u8("version")?;
        if !(1..=VERSION).contains(&version) {
            return Err(SideError::Version(version));
        }
        let frame_count = c.u32("frame count")?;
        let gaussian_count = c.u32("Gaussian count")?;
        let grid = Grid {
            width: c.u32("grid")? as usize,
            height: c.u32("grid")? as usize,
        };
        let sh_degree = c.u8("degree")?;
        let start = GopStart::from_code(c.u8("start")?)
            .ok_or_else(|| FormatError::Invalid("unknown GOP start reason".into()))?;
        let invalid = |m: &str| SideError::Format(FormatError::Invalid(m.into()));
        if frame_count == 0 || sh_degree > 3 {
            return Err(invalid("empty GOP or bad SH degree"));
        }
        let pixels = grid
            .width
            .checked_mul(grid.height)
            .filter(|&p| p <= raw.len() * 8);
        let pixels = pixels.ok_or_else(|| invalid("grid larger than its occupancy map"))?;
        if gaussian_count as usize > pixels {
            return Err(invalid("more Gaussians than pixels"));
        }
        crate::formats::check_fits(frame_count as usize, 4, c.remaining(), "frames")?;
        let rematched = (0..frame_count)
            .map(|_| c.u32("rematched"))
            .collect::<Result<_, _>>()?;
        // Bits past the last pixel are ignored (a fuzzer found them counted).
        let mut occupancy = c.take(pixels.div_ceil(8), "occupancy")?.to_vec();
        if pixels % 8 != 0
            && let Some(last) = occupancy.last_mut()
        {
            *last &= (1u8 << (pixels % 8)) - 1;
        }
        if occupancy.iter().map(|b| b.count_ones()).sum::<u32>() != gaussian_count {
            return Err(invalid("occupancy disagrees with the Gaussian count"));
        }
        let mut v3 = || -> Result<Vec3, FormatError> {
            Ok(Vec3::new(c.f32("box")?, c.f32("box")?, c.f32("box")?))
        };
        let (box_min, box_max) = (v3()?, v3()?);
        let n = gaussian_count as usize;
        let mut side = Self {
            frame_count,
            gaussian_count,
            grid,
            sh_degree,
            start,
            rematched,
            occupancy,
            box_min,
            box_max,
            keyframe_positions: vec![[0u16; 3]; n],
            keyframe_av1: None,
            tracks: Vec::new(),
        };
        let layered = version >= 2 && c.u8("keyframe coding")? == 1;
        if layered {
            let len = c.u32("keyframe picture")? as usize;
            let av1 = c.take(len, "keyframe picture")?.to_vec();
            let codes = super::keyframe::decode(&av1, grid, |p| side.occupied(p))
                .map_err(|e| invalid(&format!("keyframe positions: {e}")))?;
            side.keyframe_positions = codes;
            side.keyframe_av1 = Some(av1);
        } else {
            side.read_exact_positions(&mut c)?;
        }
        let track_count = c.u8("tracks")?;
        let mut tracks = Vec::with_capacity(track_count as usize);
        for _ in 0..track_count {
            let attribute = Attribute::from_code(c.u8("attribute")?)
                .ok_or_else(|| invalid("unknown attribute"))?;
            let bit_depth = c.u8("bit depth")?;
            if !matches!(bit_depth, 8 | 10) {
                return Err(invalid("bit depth must be 8 or 10"));
            }
            let channels = c.u16("channels")? as usize;
            if channels != attribute.channels(sh_degree) {
                return Err(invalid("channel count disagrees with the attribute"));
            }
            let ranges = (0..channels)
                .map(|_| {
                    Ok(Range {
                        lo: c.f32("range")?,
                        hi: c.f32("range")?,
                    })
                })
                .collect::<Result<Vec<_>, FormatError>>()?;
            if ranges
                .iter()
                .any(|r| !r.lo.is_finite() || !r.hi.is_finite())
            {
                return Err(invalid("non-finite range"));
            }
            tracks.push(TrackRanges {
                attribute,
                bit_depth,
                ranges,
            });
        }
        if !side.box_min.is_finite() || !side.box_max.is_finite() {
            return Err(invalid("non-finite box"));
        }
        side.tracks = tracks;
        Ok(side)
    }

    /// Exact positions as per-axis residuals of the LOCO-I median predictor over the grid (left,
    /// up and up-left neighbours; the layout makes them close), high bytes then low bytes,
    /// which zstd compresses far better than raw values.
    fn write_exact_positions(&self, b: &mut Vec<u8>) {
        let neighbours = self.neighbours();
        for axis in 0..3 {
            let values: Vec<u16> = self.keyframe_positions.iter().map(|p| p[axis]).collect();
            let residuals: Vec<u16> = (0..values.len())
                .map(|i| values[i].wrapping_sub(predict(&values, neighbours[i], i)))
                .collect();
            b.extend(residuals.iter().map(|d| (d >> 8) as u8));
            b.extend(residuals.iter().map(|d| *d as u8));
        }
    }

    /// Inverse of [`GopSide::write_exact_positions`].
    fn read_exact_positions(
        &mut self,
        c: &mut crate::formats::Reader<'_>,
    ) -> Result<(), FormatError> {
        let n = self.gaussian_count as usize;
        let neighbours = self.neighbours();
        for axis in 0..3 {
            let hi = c.take(n, "positions")?;
            let lo = c.take(n, "positions")?;
            let mut values = vec![0u16; n];
            for i in 0..n {
                let residual = ((hi[i] as u16) << 8) | lo[i] as u16;
                values[i] = residual.wrapping_add(predict(&values, neighbours[i], i));
            }
            for (p, v) in self.keyframe_positions.iter_mut().zip(values) {
                p[axis] = v;
            }
        }
        Ok(())
    }

    /// For each coded Gaussian, the coded indices of its left, up and up-left pixel neighbours
    /// (when occupied): the context of the position predictor.
    fn neighbours(&self) -> Vec<[Option<usize>; 3]> {
        let w = self.grid.width;
        let mut coded = vec![None; self.grid.pixels()];
        let mut pixels = Vec::with_capacity(self.gaussian_count as usize);
        for (p, slot) in coded.iter_mut().enumerate() {
            if self.occupied(p) {
                *slot = Some(pixels.len());
                pixels.push(p);
            }
        }
        pixels
            .iter()
            .map(|&p| {
                let (x, y) = (p % w, p / w);
                let at = |dx: usize, dy: usize| {
                    (x >= dx && y >= dy)
                        .then(|| coded[p - dx - dy * w])
                        .flatten()
                };
                [at(1, 0), at(0, 1), at(1, 1)]
            })
            .collect()
    }
}

/// True when pixel `p` is set in an occupancy map (one bit per pixel, LSB first).
pub(crate) fn occupied(occupancy: &[u8], p: usize) -> bool {
    occupancy.get(p / 8).is_some_and(|b| b >> (p % 8) & 1 == 1)
}

/// The position a 16-bit box code stands for: the one dequantisation encoder and decoder share.
pub(crate) fn box_position((box_min, box_max): (Vec3, Vec3), q: [u16; 3]) -> Vec3 {
    let t = Vec3::new(q[0] as f32, q[1] as f32, q[2] as f32) / 65535.0;
    box_min + (box_max - box_min) * t
}

/// LOCO-I median edge detector from already-decoded neighbours, falling back to whichever
/// neighbour exists, then to the previous value in coded order.
fn predict(values: &[u16], [left, up, up_left]: [Option<usize>; 3], i: usize) -> u16 {
    let v = |j: Option<usize>| j.map(|j| values[j] as i32);
    match (v(left), v(up), v(up_left)) {
        (Some(a), Some(b), Some(c)) => {
            let p = if c >= a.max(b) {
                a.min(b)
            } else if c <= a.min(b) {
                a.max(b)
            } else {
                a + b - c
            };
            p as u16
        }
        (Some(a), _, _) | (None, Some(a), _) => a as u16,
        _ => i.checked_sub(1).map_or(0, |j| values[j]),
    }
}
