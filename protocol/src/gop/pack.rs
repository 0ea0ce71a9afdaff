//! Frames of a GOP → attribute planes + side data, and back.

use glam::{Quat, Vec3};
use rayon::prelude::*;

use super::keyframe as coarse;
use super::side::{GopSide, GopStart, TrackRanges, box_position, occupied};
use super::{Attribute, Range, Tiles};
use crate::av1::{CodecError, Picture};
use crate::gaussian::{
    GaussianFrame, canonical_orientation, canonical_rotation, closest_orientation, logit, sigmoid,
};
use crate::layout::{self, Grid};

/// The pictures of one attribute track for every frame of a GOP.
#[derive(Clone, Debug)]
pub struct PlaneSet {
    /// The attribute.
    pub attribute: Attribute,
    /// One picture per frame.
    pub pictures: Vec<Picture>,
}

/// A GOP ready for the AV1 encoder.
#[derive(Clone, Debug)]
pub struct PackedGop {
    /// Side data.
    pub side: GopSide,
    /// One plane set per track, in track order.
    pub planes: Vec<PlaneSet>,
    /// For each coded Gaussian, its index in the input frames: decoded frames come out in
    /// this order.
    pub coded_order: Vec<usize>,
}

/// How a GOP's keyframe positions travel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyframeCoding {
    /// Exactly, 16 bits per axis over the keyframe's box, in the side data (~5.5 bytes per
    /// Gaussian whatever the quality).
    Exact,
    /// As a coarse AV1 picture in the side data (see [`super::keyframe`]), at this rav1e
    /// quantizer and speed; the position track's keyframe picture refines it.
    Layered {
        /// rav1e base quantizer index of the coarse picture.
        quantizer: u8,
        /// rav1e speed preset.
        speed: u8,
    },
}

/// One scalar channel of Gaussian `g` in `frame`, as the planes store it; `base` holds the
/// positions displacements are measured from (the keyframe's, as the decoder has them) and
/// `keys` the keyframe orientations every later frame's rotation is aligned with.
fn value(
    base: &[Vec3],
    frame: &GaussianFrame,
    keys: &[Quat],
    attribute: Attribute,
    g: usize,
    c: usize,
) -> f32 {
    match attribute {
        Attribute::Position => (frame.positions[g] - base[g])[c],
        Attribute::Rotation => {
            glam::Vec4::from(closest_orientation(frame.rotations[g], keys[g]))[c]
        }
        Attribute::Scale => frame.log_scales[g][c],
        Attribute::ColorOpacity if c < 3 => frame.sh_dc[g][c],
        Attribute::ColorOpacity => sigmoid(frame.opacity_logits[g]),
        Attribute::ShRest => frame.sh_rest[g * frame.rest_per_gaussian() + c / 3][c % 3],
    }
}

/// Below this opacity the renderer composites nothing: a Gaussian is transparent.
const TRANSPARENT: f32 = 1.0 / 255.0;

/// The opacity range reaches this fraction of its top below zero, and transparent Gaussians
/// take its lowest code: AV1's error on them (measured up to 0.03 at Medium on small planes)
/// then decodes below zero, which every decoder's logit clamps to transparent, instead of
/// lifting faded Gaussians — often large, with far-out colours — into a visible haze. Costs
/// 3 % of the opacity step.
const DEAD_ZONE: f32 = 1.0 / 32.0;

/// Whether Gaussian `g` of `frame` counts when a channel gets its range: the renderer never
/// composites an opacity below [`TRANSPARENT`], so a transparent Gaussian's values only clamp
/// (trained captures keep thousands of faded Gaussians with far-out colours and scales, which
/// would otherwise stretch every visible Gaussian's quantisation step); its opacity takes the
/// dead zone's code (see [`opacity_range`]).
fn shapes_range(frame: &GaussianFrame, g: usize) -> bool {
    sigmoid(frame.opacity_logits[g]) >= TRANSPARENT
}

/// The box, at the keyframe (`frames[0]`), of the Gaussians that shape a range in any of
/// `frames` (of all of them when none does): what keyframe positions are coded over. Faded
/// Gaussians far out would stretch it and coarsen every keyframe position: exact 16-bit codes,
/// and layered ones with the refinement they need, the position track's step for the whole GOP
/// (a 150k-Gaussian robot keyframe lost 5.8 dB that way). Outside the box they clamp, as their
/// other values do.
fn visible_bounds(frames: &[GaussianFrame]) -> (Vec3, Vec3) {
    let keyframe = &frames[0];
    let mut visible = (0..keyframe.len())
        .filter(|&g| frames.iter().any(|f| g < f.len() && shapes_range(f, g)))
        .map(|g| keyframe.positions[g]);
    match visible.next() {
        Some(first) => visible.fold((first, first), |(lo, hi), p| (lo.min(p), hi.max(p))),
        None => keyframe.bounds().unwrap_or((Vec3::ZERO, Vec3::ZERO)),
    }
}

/// Whether channel `c` of `attribute` is opacity.
fn is_opacity(attribute: Attribute, c: usize) -> bool {
    attribute == Attribute::ColorOpacity && c == 3
}

/// The opacity range from the visible Gaussians' `visible` one, inside the logit's (0, 1); when
/// some Gaussians are `faded`, from [`DEAD_ZONE`] below zero (their code).
fn opacity_range(visible: Range, faded: bool) -> Range {
    let hi = visible.hi.clamp(TRANSPARENT, 0.9999);
    let lo = if faded {
        -DEAD_ZONE * hi
    } else {
        visible.lo.clamp(TRANSPARENT, hi)
    };
    Range { lo, hi }
}

/// The code of channel `c` of `attribute` with value `v` (from [`value`]) in `range`.
fn code(attribute: Attribute, c: usize, v: f32, range: &Range, bits: u8) -> u16 {
    if is_opacity(attribute, c) && v < TRANSPARENT {
        0
    } else {
        range.quantize(v, bits)
    }
}

/// Layout features of the keyframe: position (weighted double), motion over the GOP, colour,
/// opacity, scale and orientation, each channel scaled to unit spread so no unit dominates by
/// accident.
fn features(frames: &[GaussianFrame]) -> Vec<f32> {
    let kf = &frames[0];
    let n = kf.len();
    let last = &frames[frames.len() - 1];
    let mut channels: Vec<(f32, Vec<f32>)> = Vec::new();
    for c in 0..3 {
        channels.push((2.0, kf.positions.iter().map(|p| p[c]).collect()));
        channels.push((
            1.0,
            (0..n)
                .map(|g| last.positions[g][c] - kf.positions[g][c])
                .collect(),
        ));
        channels.push((1.0, kf.sh_dc.iter().map(|v| v[c]).collect()));
        channels.push((0.5, kf.log_scales.iter().map(|v| v[c]).collect()));
    }
    channels.push((1.0, kf.opacity_logits.iter().map(|&o| sigmoid(o)).collect()));
    let keys: Vec<glam::Vec4> = kf
        .rotations
        .iter()
        .map(|&q| canonical_orientation(q).into())
        .collect();
    for c in 0..4 {
        channels.push((0.5, keys.iter().map(|q| q[c]).collect()));
    }
    let dims = channels.len();
    let mut out = vec![0.0f32; n * dims];
    for (d, (weight, values)) in channels.iter().enumerate() {
        let mean = values.iter().sum::<f32>() / n as f32;
        let var = values.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / n as f32;
        let scale = if var > 1e-20 {
            weight / var.sqrt()
        } else {
            0.0
        };
        for (g, v) in values.iter().enumerate() {
            out[g * dims + d] = (v - mean) * scale;
        }
    }
    out
}

/// Where a GOP's Gaussians go and how each channel is quantised: fixed at the keyframe, so every
/// frame of the GOP can be turned into pictures on its own — all at once for a recorded
/// sequence ([`pack`]), or one at a time as a learnt encoder or a live source produces them.
#[derive(Clone, Debug)]
pub struct GopPlan {
    keyframe: GaussianFrame,
    /// Keyframe positions as the decoder has them, in keyframe order.
    base: Vec<Vec3>,
    /// The keyframe's box.
    bounds: (Vec3, Vec3),
    /// Keyframe position codes in coded order, and their AV1 picture when layered.
    key_codes: Vec<[u16; 3]>,
    key_av1: Option<Vec<u8>>,
    /// Keyframe orientations every later frame's rotation is aligned with.
    keys: Vec<Quat>,
    /// Per pixel, the Gaussian whose values it holds (padding repeats a neighbour).
    pixel_gaussian: Vec<usize>,
    tracks: Vec<TrackRanges>,
    grid: Grid,
    occupancy: Vec<u8>,
    coded_order: Vec<usize>,
}

impl GopPlan {
    /// The plan for the GOP's `known` frames (the keyframe first) on `grid`, laid out on their
    /// features (see [`layout::build`]) with `refine_passes` PLAS passes per radius, keyframe
    /// positions coded as `key` says over the box of the Gaussians visible in any of them, each
    /// track quantised over `ranges(attribute, channel, bits, base)` (`base`: the decoded
    /// keyframe positions).
    fn with(
        known: &[GaussianFrame],
        grid: Grid,
        tracks: &[(Attribute, u8)],
        refine_passes: usize,
        key: KeyframeCoding,
        mut ranges: impl FnMut(Attribute, usize, u8, &[Vec3]) -> Range,
    ) -> Result<Self, CodecError> {
        let keyframe = &known[0];
        let layout = layout::build(&keyframe.positions, &features(known), grid, refine_passes);
        let coded_order = layout.coded_order();
        let pixel_gaussian: Vec<usize> = layout
            .padding_source()
            .iter()
            .map(|&p| layout.slots[p].map_or(0, |g| g as usize))
            .collect();
        let occupancy = layout.occupancy();
        let bounds = visible_bounds(known);
        let (key_codes, key_av1, base) = match key {
            KeyframeCoding::Exact => {
                let axes = coarse::axis_ranges(bounds);
                let codes = coded_order
                    .iter()
                    .map(|&g| [0, 1, 2].map(|c| axes[c].quantize(keyframe.positions[g][c], 16)))
                    .collect();
                (codes, None, keyframe.positions.clone())
            }
            KeyframeCoding::Layered { quantizer, speed } => {
                let picture =
                    coarse::coarse_picture(grid, &pixel_gaussian, &keyframe.positions, bounds);
                let av1 = coarse::encode(&picture, quantizer, speed)?;
                let codes: Vec<[u16; 3]> = coarse::decode(&av1, grid, |p| occupied(&occupancy, p))?;
                let mut base = vec![Vec3::ZERO; keyframe.len()];
                for (&g, &q) in coded_order.iter().zip(&codes) {
                    base[g] = box_position(bounds, q);
                }
                (codes, Some(av1), base)
            }
        };
        let tracks = tracks
            .iter()
            .map(|&(attribute, bits)| TrackRanges {
                attribute,
                bit_depth: bits,
                ranges: (0..attribute.channels(keyframe.sh_degree))
                    .map(|c| ranges(attribute, c, bits, &base))
                    .collect(),
            })
            .collect();
        Ok(Self {
            keys: keyframe
                .rotations
                .iter()
                .map(|&q| canonical_orientation(q))
                .collect(),
            keyframe: keyframe.clone(),
            base,
            bounds,
            key_codes,
            key_av1,
            pixel_gaussian,
            tracks,
            grid,
            occupancy,
            coded_order,
        })
    }

    /// The plan for a recorded GOP: layout on the keyframe and the motion to the last frame,
    /// ranges that hold every frame's values exactly — of its visible Gaussians; transparent
    /// ones clamp, see [`shapes_range`].
    pub fn for_frames(
        frames: &[GaussianFrame],
        grid: Grid,
        tracks: &[(Attribute, u8)],
        refine_passes: usize,
        key: KeyframeCoding,
    ) -> Result<Self, CodecError> {
        let kf = &frames[0];
        let keys: Vec<Quat> = kf
            .rotations
            .iter()
            .map(|&q| canonical_orientation(q))
            .collect();
        let faded = frames
            .iter()
            .any(|f| (0..f.len()).any(|g| !shapes_range(f, g)));
        Self::with(
            frames,
            grid,
            tracks,
            refine_passes,
            key,
            |a, c, bits, base| {
                let all = (0..frames.len())
                    .flat_map(|f| (0..kf.len()).map(move |g| (f, g)))
                    .filter(|&(f, g)| shapes_range(&frames[f], g))
                    .map(|(f, g)| value(base, &frames[f], &keys, a, g, c));
                match a {
                    Attribute::Position => Range::with_exact_zero(all, bits),
                    _ if is_opacity(a, c) => opacity_range(Range::of(all), faded),
                    _ => Range::of(all),
                }
            },
        )
    }

    /// The plan for a GOP whose later frames are not known yet: layout on the keyframe alone;
    /// each channel's range is the keyframe's (its visible Gaussians', as in
    /// [`GopPlan::for_frames`]) widened by `margin` of its width on both sides,
    /// and displacements may reach `motion` (world units) either way, beyond the refinement of
    /// layered keyframe positions. Values beyond clamp.
    pub fn for_keyframe(
        keyframe: &GaussianFrame,
        grid: Grid,
        tracks: &[(Attribute, u8)],
        refine_passes: usize,
        key: KeyframeCoding,
        margin: f32,
        motion: f32,
    ) -> Result<Self, CodecError> {
        let keys: Vec<Quat> = keyframe
            .rotations
            .iter()
            .map(|&q| canonical_orientation(q))
            .collect();
        Self::with(
            std::slice::from_ref(keyframe),
            grid,
            tracks,
            refine_passes,
            key,
            |a, c, bits, base| match a {
                Attribute::Position => Range::with_exact_zero(
                    (0..keyframe.len())
                        .filter(|&g| shapes_range(keyframe, g))
                        .map(|g| value(base, keyframe, &keys, a, g, c))
                        .chain([-motion, motion]),
                    bits,
                ),
                Attribute::Rotation => Range { lo: -1.0, hi: 1.0 },
                _ => {
                    let r = Range::of(
                        (0..keyframe.len())
                            .filter(|&g| shapes_range(keyframe, g))
                            .map(|g| value(base, keyframe, &keys, a, g, c)),
                    );
                    let pad = (r.hi - r.lo) * margin;
                    let (lo, hi) = (r.lo - pad, r.hi + pad);
                    if is_opacity(a, c) {
                        // Gaussians may fade later in the GOP: always a dead zone.
                        opacity_range(Range { lo, hi }, true)
                    } else {
                        Range { lo, hi }
                    }
                }
            },
        )
    }

    /// For each coded Gaussian, its index in the keyframe: decoded frames come out in this order.
    pub fn coded_order(&self) -> &[usize] {
        &self.coded_order
    }

    /// Quantisation of each track, in track order.
    pub fn tracks(&self) -> &[TrackRanges] {
        &self.tracks
    }

    /// The pictures of `frame` (the keyframe's Gaussians, in its order), one per track.
    pub fn pictures(&self, frame: &GaussianFrame) -> Vec<Picture> {
        // Every channel of every track is quantised on its own core, then tiled.
        self.tracks
            .par_iter()
            .map(|t| {
                let tiles = Tiles::new(t.ranges.len(), self.grid);
                let (pw, ph) = tiles.picture_size();
                let w = self.grid.width;
                let bits = t.bit_depth;
                let channels: Vec<Vec<u16>> = (t.ranges.par_iter().enumerate())
                    .map(|(c, range)| {
                        (self.pixel_gaussian.iter())
                            .map(|&g| {
                                let v = value(&self.base, frame, &self.keys, t.attribute, g, c);
                                code(t.attribute, c, v, range, bits)
                            })
                            .collect()
                    })
                    .collect();
                let mut pic = Picture::filled(pw, ph, bits, 1 << (bits - 1));
                for (c, codes) in channels.iter().enumerate() {
                    let (tx, ty) = tiles.origin(c);
                    for (p, &code) in codes.iter().enumerate() {
                        pic.samples[(ty + p / w) * pw + tx + p % w] = code;
                    }
                }
                pic
            })
            .collect()
    }

    /// Gives every Gaussian marked `unchanged` its samples of `previous` (the last frame's
    /// pictures) in `pictures`. Requantising a decoded value is not always idempotent (a
    /// decoded rotation is renormalised), so a Gaussian that did not move keeps its exact codes
    /// this way, and its pixels repeat for AV1.
    pub fn repeat_unchanged(
        &self,
        pictures: &mut [Picture],
        previous: &[Picture],
        unchanged: &[bool],
    ) {
        for ((t, picture), before) in self.tracks.iter().zip(pictures).zip(previous) {
            let tiles = Tiles::new(t.ranges.len(), self.grid);
            let (pw, _) = tiles.picture_size();
            let w = self.grid.width;
            for c in 0..t.ranges.len() {
                let (tx, ty) = tiles.origin(c);
                for (p, &g) in self.pixel_gaussian.iter().enumerate() {
                    if unchanged.get(g).copied().unwrap_or(false) {
                        let at = (ty + p / w) * pw + tx + p % w;
                        picture.samples[at] = before.samples[at];
                    }
                }
            }
        }
    }

    /// Side data for `frame_count` frames of this plan.
    pub fn side(&self, frame_count: usize, start: GopStart, rematched: Vec<u32>) -> GopSide {
        let kf = &self.keyframe;
        GopSide {
            frame_count: frame_count as u32,
            gaussian_count: kf.len() as u32,
            grid: self.grid,
            sh_degree: kf.sh_degree,
            start,
            rematched,
            occupancy: self.occupancy.clone(),
            box_min: self.bounds.0,
            box_max: self.bounds.1,
            keyframe_positions: self.key_codes.clone(),
            keyframe_av1: self.key_av1.clone(),
            tracks: self.tracks.clone(),
        }
    }

    /// What a decoder makes of one frame's `pictures` (one per track), back in keyframe order.
    pub fn decode(&self, pictures: Vec<Picture>) -> Result<GaussianFrame, UnpackError> {
        let side = self.side(1, GopStart::First, vec![0]);
        let planes: Vec<Vec<Picture>> = pictures.into_iter().map(|p| vec![p]).collect();
        let coded = unpack(&side, &planes)?
            .pop()
            .ok_or_else(|| UnpackError::Mismatch("no frame".into()))?;
        let mut inverse = vec![0usize; self.coded_order.len()];
        for (i, &g) in self.coded_order.iter().enumerate() {
            inverse[g] = i;
        }
        Ok(coded.permuted(&inverse))
    }
}

/// Packs `frames` (same Gaussians in the same order, same SH degree) onto `grid`.
///
/// `tracks` lists each attribute with its bit depth; `refine_passes` sets the PLAS effort;
/// `key` how the keyframe positions travel.
pub fn pack(
    frames: &[GaussianFrame],
    grid: Grid,
    tracks: &[(Attribute, u8)],
    refine_passes: usize,
    key: KeyframeCoding,
    start: GopStart,
    rematched: Vec<u32>,
) -> Result<PackedGop, CodecError> {
    let plan = GopPlan::for_frames(frames, grid, tracks, refine_passes, key)?;
    let mut planes: Vec<PlaneSet> = tracks
        .iter()
        .map(|&(attribute, _)| PlaneSet {
            attribute,
            pictures: Vec::with_capacity(frames.len()),
        })
        .collect();
    // Frames turn into pictures independently: side by side on every core.
    let per_frame: Vec<Vec<Picture>> = frames.par_iter().map(|f| plan.pictures(f)).collect();
    for pictures in per_frame {
        for (set, picture) in planes.iter_mut().zip(pictures) {
            set.pictures.push(picture);
        }
    }
    Ok(PackedGop {
        side: plan.side(frames.len(), start, rematched),
        planes,
        coded_order: plan.coded_order,
    })
}

/// Why planes could not be unpacked.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum UnpackError {
    /// Planes disagree with the side data.
    #[error("planes do not match the GOP's side data: {0}")]
    Mismatch(String),
}

/// Rebuilds the GOP's frames (Gaussians in coded order) from decoded planes, one picture list
/// per track in side-data order.
pub fn unpack(side: &GopSide, planes: &[Vec<Picture>]) -> Result<Vec<GaussianFrame>, UnpackError> {
    let mismatch = |m: String| UnpackError::Mismatch(m);
    if planes.len() != side.tracks.len() {
        return Err(mismatch(format!(
            "{} tracks, side data lists {}",
            planes.len(),
            side.tracks.len()
        )));
    }
    let Grid {
        width: w,
        height: h,
    } = side.grid;
    let pixels: Vec<usize> = (0..w * h).filter(|&p| side.occupied(p)).collect();
    let n = pixels.len();
    if n != side.keyframe_positions.len() {
        return Err(mismatch("occupancy and keyframe positions disagree".into()));
    }
    for (t, pics) in side.tracks.iter().zip(planes) {
        let (pw, ph) = Tiles::new(t.ranges.len(), side.grid).picture_size();
        let bad = pics.len() != side.frame_count as usize
            || pics
                .iter()
                .any(|p| p.width != pw || p.height != ph || p.samples.len() != pw * ph);
        if bad {
            return Err(mismatch(format!(
                "{} pictures have the wrong size or count",
                t.attribute.name()
            )));
        }
    }
    let degree = side.sh_degree;
    let k = crate::gaussian::sh_rest_count(degree);
    let mut frames = Vec::with_capacity(side.frame_count as usize);
    for f in 0..side.frame_count as usize {
        let mut frame = GaussianFrame::with_capacity(n, degree);
        frame.positions = (0..n).map(|i| side.keyframe_position(i)).collect();
        frame.rotations = vec![Quat::IDENTITY; n];
        frame.log_scales = vec![Vec3::ZERO; n];
        frame.opacity_logits = vec![0.0; n];
        frame.sh_dc = vec![Vec3::ZERO; n];
        frame.sh_rest = vec![Vec3::ZERO; n * k];
        for (t, pics) in side.tracks.iter().zip(planes) {
            let pic = &pics[f];
            let tiles = Tiles::new(t.ranges.len(), side.grid);
            for (c, range) in t.ranges.iter().enumerate() {
                let (tx, ty) = tiles.origin(c);
                for (i, &p) in pixels.iter().enumerate() {
                    let code = pic.samples[(ty + p / w) * pic.width + tx + p % w];
                    let v = range.dequantize(code, t.bit_depth);
                    match t.attribute {
                        Attribute::Position => frame.positions[i][c] += v,
                        Attribute::Rotation => {
                            let mut q = glam::Vec4::from(frame.rotations[i]);
                            if c == 0 {
                                q = glam::Vec4::ZERO;
                            }
                            q[c] = v;
                            frame.rotations[i] = Quat::from_vec4(q);
                        }
                        Attribute::Scale => frame.log_scales[i][c] = v,
                        Attribute::ColorOpacity if c < 3 => frame.sh_dc[i][c] = v,
                        Attribute::ColorOpacity => frame.opacity_logits[i] = logit(v),
                        Attribute::ShRest => frame.sh_rest[i * k + c / 3][c % 3] = v,
                    }
                }
            }
        }
        for q in &mut frame.rotations {
            *q = canonical_rotation(*q);
        }
        frames.push(frame);
    }
    Ok(frames)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small moving scene: a grid of Gaussians with a travelling wave and changing colour.
    pub(crate) fn wave(n_side: usize, frames: usize, degree: u8) -> Vec<GaussianFrame> {
        let k = crate::gaussian::sh_rest_count(degree);
        (0..frames)
            .map(|t| {
                let mut f = GaussianFrame::with_capacity(n_side * n_side, degree);
                for i in 0..n_side * n_side {
                    let (x, z) = (
                        (i % n_side) as f32 / n_side as f32,
                        (i / n_side) as f32 / n_side as f32,
                    );
                    let y = 0.1 * (6.0 * x + 0.3 * t as f32).sin();
                    f.positions.push(Vec3::new(x, y, z));
                    f.rotations.push(Quat::from_rotation_y(x + 0.05 * t as f32));
                    f.log_scales.push(Vec3::new(-4.0, -4.5 + z, -5.0));
                    f.opacity_logits.push(2.0 * x - 1.0);
                    f.sh_dc.push(Vec3::new(x, y * 5.0, z));
                    f.sh_rest
                        .extend((0..k).map(|c| Vec3::splat(0.01 * c as f32 * x)));
                }
                f
            })
            .collect()
    }

    /// `frames` packed as one GOP with exact keyframe positions.
    fn pack_exact(
        frames: &[GaussianFrame],
        grid: Grid,
        tracks: &[(Attribute, u8)],
        refine_passes: usize,
    ) -> PackedGop {
        let rematched = vec![0; frames.len()];
        let (key, start) = (KeyframeCoding::Exact, GopStart::First);
        pack(frames, grid, tracks, refine_passes, key, start, rematched).unwrap()
    }

    #[test]
    fn pack_unpack_without_codec_is_quantisation_exact() {
        let frames = wave(20, 4, 1);
        let grid = Grid::for_count(400);
        let tracks: Vec<(Attribute, u8)> = Attribute::for_degree(1)
            .into_iter()
            .map(|a| (a, if a == Attribute::Position { 10 } else { 8 }))
            .collect();
        let packed = pack_exact(&frames, grid, &tracks, 2);
        let side = GopSide::from_bytes(&packed.side.to_bytes()).unwrap();
        assert_eq!(side, packed.side);
        let planes: Vec<Vec<Picture>> = packed.planes.iter().map(|p| p.pictures.clone()).collect();
        let out = unpack(&side, &planes).unwrap();
        for (f, decoded) in out.iter().enumerate() {
            let reference = frames[f].permuted(&packed.coded_order);
            for i in 0..reference.len() {
                let dp = (decoded.positions[i] - reference.positions[i])
                    .abs()
                    .max_element();
                assert!(dp < 2e-4, "frame {f} Gaussian {i} position error {dp}");
                let dq = crate::gaussian::orientation_error_degrees(
                    reference.rotations[i],
                    decoded.rotations[i],
                );
                assert!(dq < 2.0, "rotation {dq}");
                assert!((decoded.sh_dc[i] - reference.sh_dc[i]).abs().max_element() < 0.01);
                let da = (sigmoid(decoded.opacity_logits[i])
                    - sigmoid(reference.opacity_logits[i]))
                .abs();
                assert!(da < 0.003, "opacity {da}");
            }
        }
        assert!(unpack(&side, &planes[1..]).is_err());
    }

    /// The tracks of SH 0 Gaussians, every one 10-bit.
    fn sh0_tracks() -> Vec<(Attribute, u8)> {
        Attribute::for_degree(0)
            .into_iter()
            .map(|a| (a, 10))
            .collect()
    }

    /// `frames` of 400 Gaussians (SH 0) packed on 10-bit tracks, with the tracks and the grid.
    fn pack_400(frames: &[GaussianFrame]) -> (Vec<(Attribute, u8)>, Grid, PackedGop) {
        let tracks = sh0_tracks();
        let grid = Grid::for_count(400);
        let packed = pack_exact(frames, grid, &tracks, 1);
        (tracks, grid, packed)
    }

    #[test]
    fn transparent_outliers_do_not_stretch_the_ranges() {
        let mut frames = wave(20, 2, 0);
        for f in &mut frames {
            for g in [3, 77, 250] {
                f.opacity_logits[g] = -12.0;
                f.sh_dc[g] = Vec3::splat(100.0);
                f.log_scales[g] = Vec3::splat(-40.0);
            }
        }
        let (_, _, packed) = pack_400(&frames);
        let colour = packed
            .side
            .tracks
            .iter()
            .find(|t| t.attribute == Attribute::ColorOpacity);
        let dc = colour.unwrap().ranges[0];
        assert!(
            dc.hi < 2.0,
            "the red range follows the visible Gaussians: {dc:?}"
        );
        let planes: Vec<Vec<Picture>> = packed.planes.iter().map(|p| p.pictures.clone()).collect();
        let out = unpack(&packed.side, &planes).unwrap();
        for (f, decoded) in out.iter().enumerate() {
            let reference = frames[f].permuted(&packed.coded_order);
            for i in 0..reference.len() {
                let alpha = sigmoid(reference.opacity_logits[i]);
                if alpha < 1.0 / 255.0 {
                    assert!(
                        sigmoid(decoded.opacity_logits[i]) < 1.0 / 255.0,
                        "stays invisible"
                    );
                } else {
                    let d = (decoded.sh_dc[i] - reference.sh_dc[i]).abs().max_element();
                    assert!(d < 2e-3, "frame {f} Gaussian {i}: colour error {d}");
                }
            }
        }
    }

    #[test]
    fn codec_error_leaves_transparent_gaussians_transparent() {
        // AV1 lifts the opacity codes of faded Gaussians by a few codes; within the dead zone
        // (here +20 of 1023, 0.02 in opacity) they must still decode transparent, while
        // visible Gaussians keep their opacity to a step.
        let mut frames = wave(20, 1, 0);
        let faded = [3, 77, 250, 399];
        for &g in &faded {
            frames[0].opacity_logits[g] = -9.0;
        }
        let (tracks, grid, packed) = pack_400(&frames);
        let mut planes: Vec<Vec<Picture>> =
            packed.planes.iter().map(|p| p.pictures.clone()).collect();
        let slot = tracks
            .iter()
            .position(|&(a, _)| a == Attribute::ColorOpacity)
            .unwrap();
        let (tx, ty) = Tiles::new(4, grid).origin(3);
        let picture = &mut planes[slot][0];
        for y in ty..ty + grid.height {
            for x in tx..tx + grid.width {
                let s = &mut picture.samples[y * picture.width + x];
                *s = s.saturating_add(20).min(1023);
            }
        }
        let decoded = unpack(&packed.side, &planes).unwrap().remove(0);
        let reference = frames[0].permuted(&packed.coded_order);
        for i in 0..reference.len() {
            let (before, after) = (
                sigmoid(reference.opacity_logits[i]),
                sigmoid(decoded.opacity_logits[i]),
            );
            if before < TRANSPARENT {
                assert!(after < TRANSPARENT, "Gaussian {i} shows at opacity {after}");
            } else {
                assert!((after - before).abs() < 0.025, "{before} became {after}");
            }
        }
    }

    #[test]
    fn layered_keyframe_positions_are_refined_by_the_position_planes() {
        // Coarse positions through lossy AV1, refined by 10-bit position planes: the decoder's
        // positions land within the refinement's quantisation step of the input, on every
        // frame, and the side data carries the picture through a byte round trip.
        let frames = wave(24, 3, 0);
        let grid = Grid::for_count(frames[0].len());
        let tracks = sh0_tracks();
        let key = KeyframeCoding::Layered {
            quantizer: 120,
            speed: 10,
        };
        let packed = pack(&frames, grid, &tracks, 1, key, GopStart::First, vec![0; 3]).unwrap();
        assert!(packed.side.keyframe_av1.is_some());
        let side = GopSide::from_bytes(&packed.side.to_bytes()).unwrap();
        assert_eq!(side, packed.side);
        let coarse = (0..side.keyframe_positions.len())
            .map(|i| {
                (side.keyframe_position(i) - frames[0].positions[packed.coded_order[i]])
                    .abs()
                    .max_element()
            })
            .fold(0.0f32, f32::max);
        let planes: Vec<Vec<Picture>> = packed.planes.iter().map(|p| p.pictures.clone()).collect();
        let position = &side.tracks[0];
        let step = position
            .ranges
            .iter()
            .map(|r| (r.hi - r.lo) / 1023.0)
            .fold(0.0f32, f32::max);
        for (f, decoded) in unpack(&side, &planes).unwrap().iter().enumerate() {
            let reference = frames[f].permuted(&packed.coded_order);
            let worst = (0..reference.len())
                .map(|i| {
                    (decoded.positions[i] - reference.positions[i])
                        .abs()
                        .max_element()
                })
                .fold(0.0f32, f32::max);
            assert!(
                worst <= 0.51 * step,
                "frame {f}: error {worst}, step {step}"
            );
            assert!(
                worst < coarse / 4.0,
                "frame {f}: {worst} vs coarse {coarse}"
            );
        }
    }

    #[test]
    fn faded_outliers_do_not_coarsen_keyframe_positions() {
        // A transparent Gaussian a thousand extents away must not widen the box keyframe
        // positions are coded over: exact codes would lose precision, layered ones too and,
        // through the refinement they need, the position track's step for everyone else.
        let tracks = sh0_tracks();
        let layered = KeyframeCoding::Layered {
            quantizer: 48,
            speed: 10,
        };
        // The position track's step, and the worst keyframe position error of visible ones.
        let coded = |frames: &[GaussianFrame], key| {
            let grid = Grid::for_count(frames[0].len());
            let packed = pack(frames, grid, &tracks, 1, key, GopStart::First, vec![0; 3]).unwrap();
            let step = packed.side.tracks[0]
                .ranges
                .iter()
                .map(|r| (r.hi - r.lo) / 1023.0)
                .fold(0.0f32, f32::max);
            let planes: Vec<Vec<Picture>> =
                packed.planes.iter().map(|p| p.pictures.clone()).collect();
            let decoded = &unpack(&packed.side, &planes).unwrap()[0];
            let reference = frames[0].permuted(&packed.coded_order);
            let worst = (0..reference.len())
                .filter(|&i| sigmoid(reference.opacity_logits[i]) >= TRANSPARENT)
                .map(|i| {
                    (decoded.positions[i] - reference.positions[i])
                        .abs()
                        .max_element()
                })
                .fold(0.0f32, f32::max);
            (step, worst)
        };
        let clean = wave(24, 3, 0);
        let mut outlier = clean.clone();
        for f in &mut outlier {
            f.positions[5] += Vec3::splat(1000.0);
            f.opacity_logits[5] = -9.0;
        }
        for key in [KeyframeCoding::Exact, layered] {
            let ((step, worst), (step_o, worst_o)) = (coded(&clean, key), coded(&outlier, key));
            assert!(
                step_o <= 1.01 * step,
                "{key:?}: step {step_o} against {step}"
            );
            assert!(
                worst_o <= 2.0 * worst + 1e-6,
                "{key:?}: keyframe error {worst_o} against {worst}"
            );
        }
    }
}
