//! Niantic SPZ: attribute arrays stored column by column (positions, alphas, colours, scales,
//! rotations, SH). Versions 1–3 gzip a 16-byte header and the arrays together; version 4 keeps a
//! plain 32-byte header and a table of contents, then zstd-compresses each array on its own.
//!
//! SPZ keeps data in the RUB axis convention; we convert to the RDF convention of Inria PLY files
//! (flip y and z, with the matching quaternion and SH sign changes) so every reader agrees.

use std::io::Read;

use glam::{Quat, Vec3};

use super::FormatError;
use super::bytes::Cursor;
use crate::gaussian::{
    GaussianFrame, MAX_SH_DEGREE, canonical_rotation, logit, sh_rest_count, sigmoid,
};

const MAGIC: u32 = 0x5053_474e;
const HEADER: usize = 16;
/// SPZ stores DC colour scaled by this instead of SH_C0, to leave headroom.
const COLOR_SCALE: f32 = 0.15;
/// Deflate cannot expand data by more than this factor, which bounds a believable point count.
const MAX_DEFLATE_RATIO: usize = 1032;

/// Sign flips of the SH coefficients (degrees 1–3, in SPZ's order) when y and z change sign.
const SH_FLIP_RUB_TO_RDF: [f32; 15] = [
    -1.0, -1.0, 1.0, // degree 1: y, z, x
    -1.0, 1.0, 1.0, -1.0, 1.0, // degree 2: xy, yz, 3z²-1, xz, x²-y²
    -1.0, 1.0, -1.0, -1.0, 1.0, -1.0, 1.0, // degree 3
];

struct Header {
    version: u32,
    count: usize,
    sh_degree: u8,
    fractional_bits: u8,
}

impl Header {
    fn record_size(&self) -> usize {
        let position = if self.version == 1 { 6 } else { 9 };
        let rotation = if self.version >= 3 { 4 } else { 3 };
        position + 1 + 3 + 3 + rotation + 3 * sh_rest_count(self.sh_degree)
    }
}

/// Parses an SPZ file of any version 1 to 4.
pub fn read(bytes: &[u8]) -> Result<GaussianFrame, FormatError> {
    if bytes.starts_with(&MAGIC.to_le_bytes()) {
        return read_v4(bytes);
    }
    let mut gz = flate2::read::GzDecoder::new(bytes);
    let mut head = [0u8; HEADER];
    gz.read_exact(&mut head)
        .map_err(|e| FormatError::Invalid(format!("not a gzip SPZ stream ({e})")))?;
    let header = parse_header(&head, 1..=3)?;
    let size = header
        .count
        .checked_mul(header.record_size())
        .filter(|&s| s <= bytes.len().saturating_mul(MAX_DEFLATE_RATIO))
        .ok_or_else(|| too_many(&header, bytes.len()))?;
    let mut body = Vec::with_capacity(size);
    gz.take(size as u64)
        .read_to_end(&mut body)
        .map_err(|e| FormatError::Invalid(format!("corrupt SPZ stream ({e})")))?;
    if body.len() < size {
        return Err(FormatError::Truncated(format!(
            "{} of {size} data bytes present",
            body.len()
        )));
    }
    decode(&header, &body)
}

fn too_many(header: &Header, compressed: usize) -> FormatError {
    FormatError::Truncated(format!(
        "header declares {} Gaussians, more than {compressed} compressed bytes can hold",
        header.count
    ))
}

fn parse_header(
    head: &[u8],
    versions: std::ops::RangeInclusive<u32>,
) -> Result<Header, FormatError> {
    let mut c = Cursor::new(head);
    if c.u32("magic")? != MAGIC {
        return Err(FormatError::Invalid("bad SPZ magic".into()));
    }
    let header = Header {
        version: c.u32("version")?,
        count: c.u32("count")? as usize,
        sh_degree: c.u8("degree")?,
        fractional_bits: c.u8("fractional bits")?,
    };
    if !versions.contains(&header.version) {
        return Err(FormatError::Unsupported(format!(
            "SPZ version {}",
            header.version
        )));
    }
    if header.sh_degree > MAX_SH_DEGREE {
        return Err(FormatError::Unsupported(format!(
            "SH degree {}",
            header.sh_degree
        )));
    }
    Ok(header)
}

/// Version 4: header, then `streams` (compressed, uncompressed) u64 size pairs at `toc`, then the
/// zstd frames back to back in attribute order.
fn read_v4(bytes: &[u8]) -> Result<GaussianFrame, FormatError> {
    let header = parse_header(bytes, 4..=4)?;
    let mut c = Cursor::new(bytes);
    c.take(15, "header")?;
    let streams = c.u8("stream count")? as usize;
    let toc = c.u32("table offset")? as usize;
    let mut c =
        Cursor::new(bytes.get(toc..).ok_or_else(|| {
            FormatError::Truncated("SPZ table of contents lies past the end".into())
        })?);
    let mut sizes = Vec::with_capacity(streams.min(16));
    for _ in 0..streams {
        let compressed = c.take(8, "table of contents")?;
        let raw = c.take(8, "table of contents")?;
        let as_usize = |b: &[u8]| {
            usize::try_from(u64::from_le_bytes(b.try_into().expect("8 bytes")))
                .map_err(|_| FormatError::Invalid("stream size overflows".into()))
        };
        sizes.push((as_usize(compressed)?, as_usize(raw)?));
    }
    let expected = header
        .count
        .checked_mul(header.record_size())
        .filter(|&s| s <= bytes.len().saturating_mul(MAX_DEFLATE_RATIO))
        .ok_or_else(|| too_many(&header, bytes.len()))?;
    let total = sizes.iter().try_fold(0usize, |t, s| t.checked_add(s.1));
    if total != Some(expected) {
        return Err(FormatError::Invalid(format!(
            "SPZ streams do not add up to the {expected} bytes {} Gaussians need",
            header.count
        )));
    }
    let mut body = Vec::with_capacity(expected);
    for (compressed, raw) in sizes {
        let frame = c.take(compressed, "SPZ stream")?;
        let data = zstd::bulk::decompress(frame, raw)
            .map_err(|e| FormatError::Invalid(format!("corrupt SPZ stream ({e})")))?;
        if data.len() != raw {
            return Err(FormatError::Truncated(
                "SPZ stream shorter than its table entry".into(),
            ));
        }
        body.extend_from_slice(&data);
    }
    decode(&header, &body)
}

fn decode(h: &Header, body: &[u8]) -> Result<GaussianFrame, FormatError> {
    let n = h.count;
    let k = sh_rest_count(h.sh_degree);
    let mut c = Cursor::new(body);
    let positions = c.take(n * if h.version == 1 { 6 } else { 9 }, "positions")?;
    let alphas = c.take(n, "alphas")?;
    let colors = c.take(3 * n, "colours")?;
    let scales = c.take(3 * n, "scales")?;
    let rotations = c.take(n * if h.version >= 3 { 4 } else { 3 }, "rotations")?;
    let sh = c.take(3 * k * n, "SH")?;

    let mut frame = GaussianFrame::with_capacity(n, h.sh_degree);
    let flip = Vec3::new(1.0, -1.0, -1.0);
    let fixed_scale = 1.0 / (1u32 << h.fractional_bits.min(24)) as f32;
    for i in 0..n {
        let p = if h.version == 1 {
            let b = &positions[6 * i..6 * i + 6];
            Vec3::new(
                f16_to_f32(u16::from_le_bytes([b[0], b[1]])),
                f16_to_f32(u16::from_le_bytes([b[2], b[3]])),
                f16_to_f32(u16::from_le_bytes([b[4], b[5]])),
            )
        } else {
            let b = &positions[9 * i..9 * i + 9];
            let fixed = |j: usize| {
                let v = b[j] as i32 | (b[j + 1] as i32) << 8 | (b[j + 2] as i32) << 16;
                ((v << 8) >> 8) as f32 * fixed_scale
            };
            Vec3::new(fixed(0), fixed(3), fixed(6))
        };
        frame.positions.push(p * flip);
        frame.opacity_logits.push(logit(alphas[i] as f32 / 255.0));
        let col = |j: usize| (colors[3 * i + j] as f32 / 255.0 - 0.5) / COLOR_SCALE;
        frame.sh_dc.push(Vec3::new(col(0), col(1), col(2)));
        let sc = |j: usize| scales[3 * i + j] as f32 / 16.0 - 10.0;
        frame.log_scales.push(Vec3::new(sc(0), sc(1), sc(2)));
        let q = if h.version >= 3 {
            smallest_three(&rotations[4 * i..4 * i + 4])
        } else {
            let r = &rotations[3 * i..3 * i + 3];
            let xyz = Vec3::new(r[0] as f32, r[1] as f32, r[2] as f32) / 127.5 - Vec3::ONE;
            Quat::from_xyzw(
                xyz.x,
                xyz.y,
                xyz.z,
                (1.0 - xyz.length_squared()).max(0.0).sqrt(),
            )
        };
        frame.rotations.push(Quat::from_xyzw(q.x, -q.y, -q.z, q.w));
        for coeff in 0..k {
            let s = |j: usize| (sh[3 * (k * i + coeff) + j] as f32 - 128.0) / 128.0;
            frame
                .sh_rest
                .push(Vec3::new(s(0), s(1), s(2)) * SH_FLIP_RUB_TO_RDF[coeff]);
        }
    }
    Ok(frame)
}

/// Serialises a frame as SPZ version 2 (gzip; 24-bit fixed-point positions with as many
/// fractional bits as the extent allows, up to 12; rotations as x, y, z bytes with w ≥ 0), in
/// SPZ's RUB axes. Positions beyond ±2²³ units do not fit and are refused.
pub fn write(frame: &GaussianFrame) -> Result<Vec<u8>, FormatError> {
    use std::io::Write;
    let n = frame.len();
    let k = sh_rest_count(frame.sh_degree);
    let extent = frame
        .positions
        .iter()
        .map(|p| p.abs().max_element())
        .fold(0.0f32, f32::max);
    // The most fractional bits (≤ 12) that keep every coordinate within 24 signed bits.
    let bits = (0..=12u8)
        .rev()
        .find(|&b| extent * (1u32 << b) as f32 <= ((1 << 23) - 1) as f32)
        .ok_or_else(|| {
            FormatError::Unsupported(format!(
                "positions up to {extent} units do not fit SPZ's 24-bit fixed point"
            ))
        })?;
    let count = u32::try_from(n)
        .map_err(|_| FormatError::Unsupported(format!("{n} Gaussians are too many for SPZ")))?;
    let mut out = Vec::with_capacity(HEADER + n * (9 + 1 + 3 + 3 + 3 + 3 * k));
    out.extend(MAGIC.to_le_bytes());
    out.extend(2u32.to_le_bytes());
    out.extend(count.to_le_bytes());
    out.extend([frame.sh_degree, bits, 0, 0]);
    let flip = Vec3::new(1.0, -1.0, -1.0);
    let byte = |v: f32| v.round().clamp(0.0, 255.0) as u8;
    for p in &frame.positions {
        for v in (*p * flip).to_array() {
            let fixed = (v * (1u32 << bits) as f32).round() as i32;
            out.extend(&fixed.to_le_bytes()[..3]);
        }
    }
    out.extend(
        frame
            .opacity_logits
            .iter()
            .map(|&o| byte(sigmoid(o) * 255.0)),
    );
    for c in &frame.sh_dc {
        out.extend(c.to_array().map(|v| byte((v * COLOR_SCALE + 0.5) * 255.0)));
    }
    for s in &frame.log_scales {
        out.extend(s.to_array().map(|v| byte((v + 10.0) * 16.0)));
    }
    for q in &frame.rotations {
        // RDF → RUB: y and z change sign; w ≥ 0 so it can be rebuilt from x, y, z.
        let q = canonical_rotation(Quat::from_xyzw(q.x, -q.y, -q.z, q.w));
        out.extend([q.x, q.y, q.z].map(|v| byte((v + 1.0) * 127.5)));
    }
    if k > 0 {
        for gaussian in frame.sh_rest.chunks_exact(k) {
            for (v, flip) in gaussian.iter().zip(SH_FLIP_RUB_TO_RDF) {
                out.extend((*v * flip).to_array().map(|c| byte(c * 128.0 + 128.0)));
            }
        }
    }
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&out)
        .and_then(|()| gz.finish())
        .map_err(|e| FormatError::Invalid(format!("gzip: {e}")))
}

/// SPZ v3 rotation: 2 bits naming the largest component, then three 10-bit sign+magnitude values.
fn smallest_three(b: &[u8]) -> Quat {
    let mut comp = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
    let largest = (comp >> 30) as usize;
    let mask = (1u32 << 9) - 1;
    let mut q = [0.0f32; 4];
    let mut sum = 0.0;
    for i in (0..4).rev() {
        if i == largest {
            continue;
        }
        let mag = comp & mask;
        let negative = (comp >> 9) & 1 == 1;
        comp >>= 10;
        let v = std::f32::consts::FRAC_1_SQRT_2 * mag as f32 / mask as f32;
        q[i] = if negative { -v } else { v };
        sum += v * v;
    }
    q[largest] = (1.0 - sum).max(0.0).sqrt();
    Quat::from_xyzw(q[0], q[1], q[2], q[3])
}

/// IEEE half to single precision (SPZ v1 positions).
fn f16_to_f32(h: u16) -> f32 {
    let sign = if h & 0x8000 != 0 { -1.0 } else { 1.0 };
    let exp = ((h >> 10) & 0x1f) as i32;
    let frac = (h & 0x3ff) as f32;
    sign * match exp {
        0 => frac * 2f32.powi(-24),
        31 if frac == 0.0 => f32::INFINITY,
        31 => f32::NAN,
        e => (1.0 + frac / 1024.0) * 2f32.powi(e - 15),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn writes_what_it_reads() {
        let mut f = GaussianFrame::with_capacity(3, 2);
        for i in 0..3 {
            let t = i as f32;
            f.positions.push(Vec3::new(100.0 * t, -2.5 * t, 0.125));
            f.rotations
                .push(Quat::from_euler(glam::EulerRot::XYZ, t, 0.4, -0.2 * t));
            f.log_scales.push(Vec3::new(-1.0, -2.0 - t, -3.0));
            f.opacity_logits.push(t - 0.5);
            f.sh_dc.push(Vec3::new(0.3, -0.2, 1.0 - t));
            f.sh_rest
                .extend((0..8).map(|c| Vec3::new(0.1 * c as f32, -0.3, 0.2 * t)));
        }
        let back = read(&write(&f).unwrap()).unwrap();
        assert_eq!(back.sh_degree, 2);
        for i in 0..3 {
            assert!((back.positions[i] - f.positions[i]).abs().max_element() <= 1.0 / 4096.0);
            assert!((back.log_scales[i] - f.log_scales[i]).abs().max_element() <= 1.0 / 32.0);
            assert!((back.sh_dc[i] - f.sh_dc[i]).abs().max_element() < 0.6 / 255.0 / COLOR_SCALE);
            assert!(back.rotations[i].normalize().dot(f.rotations[i]).abs() > 0.999);
        }
        for (a, b) in back.sh_rest.iter().zip(&f.sh_rest) {
            assert!((*a - *b).abs().max_element() <= 1.0 / 128.0, "{a} vs {b}");
        }
        // Far-flung positions lose fractional bits but stay within a step.
        f.positions[0] = Vec3::new(5000.0, 0.0, 0.0);
        let back = read(&write(&f).unwrap()).unwrap();
        assert!((back.positions[0].x - 5000.0).abs() <= 1.0 / 1024.0);
        f.positions[0].x = 1e8;
        assert!(write(&f).is_err());
    }

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn decodes_v3_record_into_rdf() {
        let mut raw = Vec::new();
        for v in [MAGIC, 3, 1] {
            raw.extend(v.to_le_bytes());
        }
        raw.extend([1u8, 12, 0, 0]);
        let fixed = |v: f32| ((v * 4096.0).round() as i32).to_le_bytes()[..3].to_vec();
        for v in [1.5f32, -2.0, 0.25] {
            raw.extend(fixed(v));
        }
        raw.push(255); // alpha
        raw.extend([128, 128, 128]); // colour ≈ 0
        raw.extend([160, 144, 128]); // scales: 0, -1, -2
        // Identity rotation: largest = w (index 3), others zero.
        raw.extend((3u32 << 30).to_le_bytes());
        raw.extend([128 + 64, 128, 128, 128, 128, 128, 128, 128, 128]); // SH degree 1
        let f = read(&gzip(&raw)).unwrap();
        assert_eq!(f.positions[0], Vec3::new(1.5, 2.0, -0.25));
        assert_eq!(f.log_scales[0], Vec3::new(0.0, -1.0, -2.0));
        assert!((f.rotations[0].w - 1.0).abs() < 1e-6);
        assert_eq!(f.sh_degree, 1);
        // First degree-1 coefficient flips sign going to RDF.
        assert!((f.sh_rest[0].x + 0.5).abs() < 1e-6);
        // A header that claims more points than the data holds.
        let mut lying = raw.clone();
        lying[8..12].copy_from_slice(&2u32.to_le_bytes());
        assert!(matches!(
            read(&gzip(&lying)),
            Err(FormatError::Truncated(_))
        ));
    }

    #[test]
    fn v4_table_with_overflowing_sizes_is_an_error() {
        // Found by the fuzzer: stream sizes whose sum overflows.
        let mut b = Vec::new();
        for v in [MAGIC, 4, 1] {
            b.extend(v.to_le_bytes());
        }
        b.extend([0u8, 12, 0, 2]);
        b.extend(32u32.to_le_bytes());
        b.extend([0u8; 12]);
        for _ in 0..2 {
            b.extend(1u64.to_le_bytes());
            b.extend((u64::MAX / 2 + 7).to_le_bytes());
        }
        assert!(read(&b).is_err());
    }

    #[test]
    fn smallest_three_roundtrips_a_rotation() {
        let q = Quat::from_xyzw(0.1, -0.7, 0.2, 0.5).normalize();
        let mut comp = 1u32; // largest is y
        for (i, v) in [q.x, q.y, q.z, q.w].into_iter().enumerate() {
            if i != 1 {
                let neg = ((v < 0.0) ^ (q.y < 0.0)) as u32;
                let mag = (511.0 * v.abs() / std::f32::consts::FRAC_1_SQRT_2 + 0.5) as u32;
                comp = (comp << 10) | (neg << 9) | mag;
            }
        }
        let r = smallest_three(&comp.to_le_bytes());
        assert!(r.dot(q).abs() > 0.999, "{r:?} vs {q:?}");
        assert_eq!(f16_to_f32(0x3c00), 1.0);
    }
}
