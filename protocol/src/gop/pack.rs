//! Frames of a GOP → attribute planes + side data, and back.

use glam::{Quat, Vec3};

use super::side::{GopSide, GopStart, TrackRanges};
use super::{Attribute, Range, Tiles};
use crate::av1::Picture;
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

/// One scalar channel of Gaussian `g` in frame `f`, as the planes store it; `keys` are the
/// keyframe orientations every later frame's rotation is aligned with.
fn value(
    frames: &[GaussianFrame],
    keys: &[Quat],
    attribute: Attribute,
    f: usize,
    g: usize,
    c: usize,
) -> f32 {
    let frame = &frames[f];
    match attribute {
        Attribute::Position => (frame.positions[g] - frames[0].positions[g])[c],
        Attribute::Rotation => {
            glam::Vec4::from(closest_orientation(frame.rotations[g], keys[g]))[c]
        }
        Attribute::Scale => frame.log_scales[g][c],
        Attribute::ColorOpacity if c < 3 => frame.sh_dc[g][c],
        Attribute::ColorOpacity => sigmoid(frame.opacity_logits[g]),
        Attribute::ShRest => frame.sh_rest[g * frame.rest_per_gaussian() + c / 3][c % 3],
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

/// Packs `frames` (same Gaussians in the same order, same SH degree) onto `grid`.
///
/// `tracks` lists each attribute with its bit depth; `refine_passes` sets the PLAS effort.
pub fn pack(
    frames: &[GaussianFrame],
    grid: Grid,
    tracks: &[(Attribute, u8)],
    refine_passes: usize,
    start: GopStart,
    rematched: Vec<u32>,
) -> PackedGop {
    let kf = &frames[0];
    let layout = layout::build(&kf.positions, &features(frames), grid, refine_passes);
    let coded_order = layout.coded_order();
    let source = layout.padding_source();
    let pixel_gaussian: Vec<usize> = source
        .iter()
        .map(|&p| layout.slots[p].map_or(0, |g| g as usize))
        .collect();

    let (box_min, box_max) = kf.bounds().unwrap_or((Vec3::ZERO, Vec3::ZERO));
    let box_range: Vec<Range> = (0..3)
        .map(|c| Range {
            lo: box_min[c],
            hi: box_max[c],
        })
        .collect();
    let keyframe_positions = coded_order
        .iter()
        .map(|&g| {
            let p = kf.positions[g];
            [0, 1, 2].map(|c| box_range[c].quantize(p[c], 16))
        })
        .collect();

    // Keyframe orientations as canonical representatives; later frames align to them.
    let keys: Vec<Quat> = kf
        .rotations
        .iter()
        .map(|&q| canonical_orientation(q))
        .collect();
    let mut planes = Vec::with_capacity(tracks.len());
    let mut ranges = Vec::with_capacity(tracks.len());
    for &(attribute, bits) in tracks {
        let channels = attribute.channels(kf.sh_degree);
        let keys = keys.as_slice();
        let all = |c: usize| {
            (0..frames.len()).flat_map(move |f| {
                (0..kf.len()).map(move |g| value(frames, keys, attribute, f, g, c))
            })
        };
        let track_ranges: Vec<Range> = (0..channels)
            .map(|c| match attribute {
                Attribute::Position => Range::with_exact_zero(all(c), bits),
                _ => Range::of(all(c)),
            })
            .collect();
        let tiles = Tiles::new(channels, grid);
        let (pw, ph) = tiles.picture_size();
        let w = grid.width;
        let pictures = (0..frames.len())
            .map(|f| {
                let mut pic = Picture::filled(pw, ph, bits, 1 << (bits - 1));
                for (c, range) in track_ranges.iter().enumerate() {
                    let (tx, ty) = tiles.origin(c);
                    for (p, &g) in pixel_gaussian.iter().enumerate() {
                        let v = value(frames, keys, attribute, f, g, c);
                        pic.samples[(ty + p / w) * pw + tx + p % w] = range.quantize(v, bits);
                    }
                }
                pic
            })
            .collect();
        planes.push(PlaneSet {
            attribute,
            pictures,
        });
        ranges.push(TrackRanges {
            attribute,
            bit_depth: bits,
            ranges: track_ranges,
        });
    }
    let side = GopSide {
        frame_count: frames.len() as u32,
        gaussian_count: kf.len() as u32,
        grid,
        sh_degree: kf.sh_degree,
        start,
        rematched,
        occupancy: layout.occupancy(),
        box_min,
        box_max,
        keyframe_positions,
        tracks: ranges,
    };
    PackedGop {
        side,
        planes,
        coded_order,
    }
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

    #[test]
    fn pack_unpack_without_codec_is_quantisation_exact() {
        let frames = wave(20, 4, 1);
        let grid = Grid::for_count(400);
        let tracks: Vec<(Attribute, u8)> = Attribute::for_degree(1)
            .into_iter()
            .map(|a| (a, if a == Attribute::Position { 10 } else { 8 }))
            .collect();
        let packed = pack(&frames, grid, &tracks, 2, GopStart::First, vec![0; 4]);
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
}
