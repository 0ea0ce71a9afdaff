//! Keyframe positions as an AV1 picture: the coarse layer of a keyframe's geometry.
//!
//! Exact 16-bit keyframe positions cost ~5.5 bytes per Gaussian however coarse the rest of the
//! GOP is coded. Instead, the three axes are quantised to 10 bits over the keyframe's box and
//! laid out on the GOP's grid (tiled like a track), where spatial sorting makes them smooth, and
//! coded lossily by AV1 at a quantizer that follows the quality. The position track's keyframe
//! picture then carries the refinement (exact position minus the decoded coarse one), coded at
//! the position quantizer, and later frames' displacements are measured from the decoded
//! coarse position: precision follows the quality, keyframes included.

use glam::Vec3;

use super::{Range, Tiles};
use crate::av1::{CodecError, EncoderSettings, Picture, PlaneDecoder, PlaneEncoder};
use crate::av1::{Rav1dDecoder, Rav1eEncoder};
use crate::layout::Grid;

/// Bits per axis of the coarse layer.
pub(crate) const COARSE_BITS: u8 = 10;

/// A 10-bit code widened to the 16-bit codes [`super::GopSide`] stores (bit replication, so 0
/// and 1023 map to the ends of the box).
fn widen(code: u16) -> u16 {
    code << 6 | code >> 4
}

/// Per-axis ranges of a box: what keyframe positions are quantised over.
pub(crate) fn axis_ranges((box_min, box_max): (Vec3, Vec3)) -> [Range; 3] {
    [0, 1, 2].map(|c| Range {
        lo: box_min[c],
        hi: box_max[c],
    })
}

/// The coarse picture: pixel `p` holds the 10-bit codes of Gaussian `pixel_gaussian[p]`.
pub(crate) fn coarse_picture(
    grid: Grid,
    pixel_gaussian: &[usize],
    positions: &[Vec3],
    bounds: (Vec3, Vec3),
) -> Picture {
    let tiles = Tiles::new(3, grid);
    let (pw, ph) = tiles.picture_size();
    let mut pic = Picture::filled(pw, ph, COARSE_BITS, 0);
    let ranges = axis_ranges(bounds);
    for (c, range) in ranges.iter().enumerate() {
        let (tx, ty) = tiles.origin(c);
        for (p, &g) in pixel_gaussian.iter().enumerate() {
            pic.samples[(ty + p / grid.width) * pw + tx + p % grid.width] =
                range.quantize(positions[g][c], COARSE_BITS);
        }
    }
    pic
}

/// Codes the coarse picture as one AV1 key frame (sequence header included).
pub(crate) fn encode(picture: &Picture, quantizer: u8, speed: u8) -> Result<Vec<u8>, CodecError> {
    let mut encoder = Rav1eEncoder::new(EncoderSettings {
        speed,
        quantizer,
        fps: 30.0,
        threads: 1,
    });
    let mut coded = encoder.encode_gop(std::slice::from_ref(picture))?;
    coded
        .samples
        .pop()
        .ok_or_else(|| CodecError::Encoder("no packet for the keyframe positions".into()))
}

/// Decodes a coarse picture into 16-bit box codes for the occupied pixels, in raster (coded)
/// order.
pub(crate) fn decode(
    sample: &[u8],
    grid: Grid,
    occupied: impl Fn(usize) -> bool,
) -> Result<Vec<[u16; 3]>, CodecError> {
    let tiles = Tiles::new(3, grid);
    let (pw, ph) = tiles.picture_size();
    let picture = Rav1dDecoder::new(1)
        .decode_gop(&[sample])?
        .pop()
        .ok_or_else(|| CodecError::Decoder("no picture of keyframe positions".into()))?;
    if (picture.width, picture.height, picture.bit_depth) != (pw, ph, COARSE_BITS) {
        return Err(CodecError::Format(format!(
            "keyframe positions are a {}×{} {}-bit picture, the grid needs {pw}×{ph} {COARSE_BITS}-bit",
            picture.width, picture.height, picture.bit_depth
        )));
    }
    Ok((0..grid.pixels())
        .filter(|&p| occupied(p))
        .map(|p| {
            [0, 1, 2].map(|c| {
                let (tx, ty) = tiles.origin(c);
                widen(picture.samples[(ty + p / grid.width) * pw + tx + p % grid.width])
            })
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn widening_keeps_the_ends_and_order() {
        assert_eq!(widen(0), 0);
        assert_eq!(widen(1023), 65535);
        assert!((1..1024).all(|c| widen(c) > widen(c - 1)));
    }
}
