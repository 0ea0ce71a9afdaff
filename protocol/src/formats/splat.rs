//! antimatter15 `.splat`: 32 bytes per Gaussian — position and linear scale as f32, RGBA as
//! bytes (colour already through SH_C0, alpha the sigmoid opacity), rotation as 4 bytes (w,x,y,z).
//! No higher-order SH: writing one keeps the DC colour only.

use glam::{Quat, Vec3};

use super::FormatError;
use super::bytes::Cursor;
use crate::gaussian::{GaussianFrame, SH_C0, canonical_rotation, logit, sigmoid};

const RECORD: usize = 32;

/// Parses a `.splat` file.
pub fn read(bytes: &[u8]) -> Result<GaussianFrame, FormatError> {
    if !bytes.len().is_multiple_of(RECORD) {
        return Err(FormatError::Truncated(format!(
            "{} bytes is not a whole number of 32-byte splats",
            bytes.len()
        )));
    }
    let n = bytes.len() / RECORD;
    let mut frame = GaussianFrame::with_capacity(n, 0);
    let mut c = Cursor::new(bytes);
    for _ in 0..n {
        let mut v3 = || -> Result<Vec3, FormatError> {
            Ok(Vec3::new(c.f32("splat")?, c.f32("splat")?, c.f32("splat")?))
        };
        let position = v3()?;
        let scale = v3()?;
        let rgba = c.take(4, "colour")?;
        let rot = c.take(4, "rotation")?;
        frame.positions.push(position);
        frame.log_scales.push(Vec3::new(
            scale.x.max(1e-12).ln(),
            scale.y.max(1e-12).ln(),
            scale.z.max(1e-12).ln(),
        ));
        frame.sh_dc.push(Vec3::new(
            (rgba[0] as f32 / 255.0 - 0.5) / SH_C0,
            (rgba[1] as f32 / 255.0 - 0.5) / SH_C0,
            (rgba[2] as f32 / 255.0 - 0.5) / SH_C0,
        ));
        frame.opacity_logits.push(logit(rgba[3] as f32 / 255.0));
        let q = |b: u8| (b as f32 - 128.0) / 128.0;
        frame
            .rotations
            .push(Quat::from_xyzw(q(rot[1]), q(rot[2]), q(rot[3]), q(rot[0])));
    }
    Ok(frame)
}

/// Serialises a frame as `.splat` (higher-order SH dropped).
pub fn write(frame: &GaussianFrame) -> Vec<u8> {
    let byte = |v: f32| (v * 255.0).round().clamp(0.0, 255.0) as u8;
    let mut out = Vec::with_capacity(frame.len() * RECORD);
    for i in 0..frame.len() {
        for v in frame.positions[i].to_array() {
            out.extend(v.to_le_bytes());
        }
        for v in frame.log_scales[i].to_array() {
            out.extend(v.exp().to_le_bytes());
        }
        let colour = frame.sh_dc[i] * SH_C0 + 0.5;
        out.extend([
            byte(colour.x),
            byte(colour.y),
            byte(colour.z),
            byte(sigmoid(frame.opacity_logits[i])),
        ]);
        let q = canonical_rotation(frame.rotations[i]);
        out.extend(
            [q.w, q.x, q.y, q.z].map(|c| (c * 128.0 + 128.0).round().clamp(0.0, 255.0) as u8),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_what_it_reads() {
        let mut f = GaussianFrame::with_capacity(2, 0);
        for i in 0..2 {
            let t = i as f32;
            f.positions.push(Vec3::new(t, -2.0 * t, 0.5));
            f.rotations
                .push(Quat::from_euler(glam::EulerRot::XYZ, t, 0.4, -0.2 * t));
            f.log_scales.push(Vec3::new(-1.0, -2.0 - t, -3.0));
            f.opacity_logits.push(t - 0.5);
            f.sh_dc.push(Vec3::new(0.3, -0.2, 1.0 - t));
        }
        let back = read(&write(&f)).unwrap();
        for i in 0..2 {
            assert_eq!(back.positions[i], f.positions[i]);
            assert!((back.log_scales[i] - f.log_scales[i]).abs().max_element() < 1e-5);
            assert!((back.sh_dc[i] - f.sh_dc[i]).abs().max_element() < 0.6 / 255.0 / SH_C0);
            let (a, b) = (
                sigmoid(back.opacity_logits[i]),
                sigmoid(f.opacity_logits[i]),
            );
            assert!((a - b).abs() < 0.6 / 255.0);
            assert!(back.rotations[i].normalize().dot(f.rotations[i]).abs() > 0.999);
        }
    }

    #[test]
    fn decodes_one_record() {
        let mut b = Vec::new();
        [1.0f32, 2.0, 3.0, 0.5, 0.25, 1.0]
            .iter()
            .for_each(|v| b.extend(v.to_le_bytes()));
        b.extend([255, 128, 0, 191]);
        b.extend([255, 128, 128, 128]);
        let f = read(&b).unwrap();
        assert_eq!(f.positions[0], Vec3::new(1.0, 2.0, 3.0));
        assert!((f.log_scales[0].x - 0.5f32.ln()).abs() < 1e-6);
        assert!((0.5 + SH_C0 * f.sh_dc[0].x - 1.0).abs() < 1e-5);
        assert!((sigmoid(f.opacity_logits[0]) - 191.0 / 255.0).abs() < 1e-4);
        assert!((f.rotations[0].w - 127.0 / 128.0).abs() < 1e-6);
        assert!(read(&b[..31]).is_err());
    }
}
