//! PlayCanvas compressed PLY (`*.compressed.ply`, SuperSplat's default export): a `chunk`
//! element of per-256-Gaussian ranges (position, log-scale and optionally colour min/max as
//! floats), a `vertex` element of four packed words per Gaussian (position 11/10/11 bits,
//! rotation as the three smallest quaternion components at 10 bits plus the index of the
//! largest, log-scale 11/10/11 bits, colour and opacity 8 bits each), and an optional `sh`
//! element of higher-order SH coefficients at 8 bits (±4 range).

use glam::{Quat, Vec3};

use super::FormatError;
use super::bytes::check_fits;
use super::ply::{Element, Encoding, Header, Property};
use crate::gaussian::{GaussianFrame, SH_C0, logit, sh_degree_for_rest, sh_rest_count};

/// Gaussians per chunk.
const CHUNK: usize = 256;

/// Whether `header` describes a compressed PLY (a `chunk` element and packed vertices).
pub(super) fn is_compressed(header: &Header) -> bool {
    let has = |e: &Element, name: &str| {
        e.properties
            .iter()
            .any(|p| matches!(p, Property::Scalar { name: n, .. } if n == name))
    };
    header.elements.iter().any(|e| e.name == "chunk")
        && header
            .elements
            .iter()
            .any(|e| e.name == "vertex" && has(e, "packed_position"))
}

/// One element's records in the body.
struct Table<'a> {
    element: &'a Element,
    data: &'a [u8],
    stride: usize,
    encoding: Encoding,
}

impl Table<'_> {
    /// Every record's value of property `name`.
    fn column(&self, name: &str) -> Result<Vec<f64>, FormatError> {
        let mut offset = 0;
        for p in &self.element.properties {
            let Property::Scalar { name: n, ty } = p else {
                unreachable!("lists are refused when the table is made");
            };
            if n == name {
                return Ok(self
                    .data
                    .chunks_exact(self.stride)
                    .map(|r| ty.decode(&r[offset..offset + ty.size()], self.encoding))
                    .collect());
            }
            offset += ty.size();
        }
        Err(FormatError::Invalid(format!(
            "compressed PLY: element '{}' lacks '{name}'",
            self.element.name
        )))
    }

    fn has(&self, name: &str) -> bool {
        self.element
            .properties
            .iter()
            .any(|p| matches!(p, Property::Scalar { name: n, .. } if n == name))
    }

    /// Columns `prefix{x,y,z}` (or the given suffixes) as one vector per record.
    fn vec3(&self, names: [&str; 3]) -> Result<Vec<Vec3>, FormatError> {
        let [x, y, z] = names.map(|n| self.column(n));
        let (x, y, z) = (x?, y?, z?);
        Ok((0..x.len())
            .map(|i| Vec3::new(x[i] as f32, y[i] as f32, z[i] as f32))
            .collect())
    }
}

/// Splits the body into its elements' tables (every element is read past, in order).
fn tables<'a>(bytes: &'a [u8], header: &'a Header) -> Result<Vec<Table<'a>>, FormatError> {
    if header.encoding == Encoding::Ascii {
        return Err(FormatError::Unsupported(
            "compressed PLY in ASCII (only binary is written by SuperSplat)".into(),
        ));
    }
    let mut body = &bytes[header.body_start..];
    let mut out = Vec::with_capacity(header.elements.len());
    for element in &header.elements {
        let mut stride = 0;
        for p in &element.properties {
            match p {
                Property::Scalar { ty, .. } => stride += ty.size(),
                Property::List { .. } => {
                    return Err(FormatError::Unsupported(format!(
                        "compressed PLY: list property in element '{}'",
                        element.name
                    )));
                }
            }
        }
        check_fits(element.count, stride, body.len(), &element.name)?;
        let (data, rest) = body.split_at(element.count * stride);
        out.push(Table {
            element,
            data,
            stride: stride.max(1),
            encoding: header.encoding,
        });
        body = rest;
    }
    Ok(out)
}

/// `bits` bits of `value` starting at `shift`, as a fraction of their range.
fn unorm(value: u32, shift: u32, bits: u32) -> f32 {
    let max = (1u32 << bits) - 1;
    ((value >> shift) & max) as f32 / max as f32
}

/// Per component, `t` of the way from `a` to `b`.
fn mix(a: Vec3, b: Vec3, t: Vec3) -> Vec3 {
    a * (Vec3::ONE - t) + b * t
}

/// 11/10/11-bit fractions.
fn unpack_111011(value: u32) -> Vec3 {
    Vec3::new(
        unorm(value, 21, 11),
        unorm(value, 11, 10),
        unorm(value, 0, 11),
    )
}

/// The quaternion in PLY order (rot_0 = w, rot_1..3 = x, y, z): the largest component's index
/// in the top two bits, the other three at 10 bits each in ±1/√2, the largest rebuilt as the
/// positive remainder of the unit norm.
fn unpack_rotation(value: u32) -> Quat {
    let scale = std::f32::consts::SQRT_2;
    let small = [20, 10, 0].map(|shift| (unorm(value, shift, 10) - 0.5) * scale);
    let largest = (1.0 - small.iter().map(|c| c * c).sum::<f32>())
        .max(0.0)
        .sqrt();
    let which = (value >> 30) as usize;
    let mut r = [0.0f32; 4];
    let mut rest = small.into_iter();
    for (i, slot) in r.iter_mut().enumerate() {
        *slot = if i == which {
            largest
        } else {
            rest.next().unwrap_or(0.0)
        };
    }
    Quat::from_xyzw(r[1], r[2], r[3], r[0])
}

/// An 8-bit higher-order SH coefficient in [-4, 4].
fn sh_coefficient(code: u8) -> f32 {
    let n = match code {
        0 => 0.0,
        255 => 1.0,
        c => (c as f32 + 0.5) / 256.0,
    };
    (n - 0.5) * 8.0
}

/// Reads a compressed PLY whose header is `header`.
pub(super) fn read(bytes: &[u8], header: &Header) -> Result<GaussianFrame, FormatError> {
    let tables = tables(bytes, header)?;
    let find = |name: &str| tables.iter().find(|t| t.element.name == name);
    let chunks = find("chunk").ok_or_else(|| FormatError::Invalid("no chunk element".into()))?;
    let vertices = find("vertex").ok_or_else(|| FormatError::Invalid("no vertex".into()))?;
    let n = vertices.element.count;
    if chunks.element.count < n.div_ceil(CHUNK) {
        return Err(FormatError::Invalid(format!(
            "compressed PLY: {} chunks cannot hold {n} Gaussians ({CHUNK} per chunk)",
            chunks.element.count
        )));
    }
    let lo = chunks.vec3(["min_x", "min_y", "min_z"])?;
    let hi = chunks.vec3(["max_x", "max_y", "max_z"])?;
    let scale_lo = chunks.vec3(["min_scale_x", "min_scale_y", "min_scale_z"])?;
    let scale_hi = chunks.vec3(["max_scale_x", "max_scale_y", "max_scale_z"])?;
    let colour_range = if chunks.has("min_r") {
        Some((
            chunks.vec3(["min_r", "min_g", "min_b"])?,
            chunks.vec3(["max_r", "max_g", "max_b"])?,
        ))
    } else {
        None
    };
    let packed = |name: &str| -> Result<Vec<u32>, FormatError> {
        Ok(vertices
            .column(name)?
            .into_iter()
            .map(|v| v as u32)
            .collect())
    };
    let (position, rotation) = (packed("packed_position")?, packed("packed_rotation")?);
    let (scale, colour) = (packed("packed_scale")?, packed("packed_color")?);

    let sh = match find("sh") {
        None => None,
        Some(t) => {
            if t.element.count != n {
                return Err(FormatError::Invalid(format!(
                    "compressed PLY: {} SH records for {n} Gaussians",
                    t.element.count
                )));
            }
            let count = (0..).take_while(|i| t.has(&format!("f_rest_{i}"))).count();
            let degree = (count % 3 == 0)
                .then(|| sh_degree_for_rest(count / 3))
                .flatten()
                .ok_or_else(|| {
                    FormatError::Unsupported(format!(
                        "compressed PLY: {count} SH coefficients is no SH degree 1-3"
                    ))
                })?;
            let columns = (0..count)
                .map(|i| t.column(&format!("f_rest_{i}")))
                .collect::<Result<Vec<_>, _>>()?;
            Some((degree, columns))
        }
    };
    let degree = sh.as_ref().map_or(0, |(d, _)| *d);
    let mut frame = GaussianFrame::with_capacity(n, degree);
    for i in 0..n {
        let c = i / CHUNK;
        frame
            .positions
            .push(mix(lo[c], hi[c], unpack_111011(position[i])));
        frame.rotations.push(unpack_rotation(rotation[i]));
        frame
            .log_scales
            .push(mix(scale_lo[c], scale_hi[c], unpack_111011(scale[i])));
        let rgb = Vec3::new(
            unorm(colour[i], 24, 8),
            unorm(colour[i], 16, 8),
            unorm(colour[i], 8, 8),
        );
        let rgb = match &colour_range {
            Some((min, max)) => mix(min[c], max[c], rgb),
            None => rgb,
        };
        frame.sh_dc.push((rgb - 0.5) / SH_C0);
        frame
            .opacity_logits
            .push(logit((colour[i] & 0xff) as f32 / 255.0));
        if let Some((degree, columns)) = &sh {
            // Stored channel-major like Inria's f_rest: all of red, then green, then blue.
            let k = sh_rest_count(*degree);
            for coeff in 0..k {
                let at = |j: usize| sh_coefficient(columns[j][i] as u8);
                frame
                    .sh_rest
                    .push(Vec3::new(at(coeff), at(k + coeff), at(2 * k + coeff)));
            }
        }
    }
    Ok(frame)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Position, rotation, log-scale, RGBA bytes and degree-1 SH bytes of one Gaussian.
    type Packed = (Vec3, Quat, Vec3, [u8; 4], [u8; 9]);

    /// A compressed PLY of `gaussians` (positions in [0, 1]³, log-scales in [-4, 0]) with one
    /// chunk per 256 and degree-1 SH: what SuperSplat writes, built by hand.
    fn file(gaussians: &[Packed]) -> Vec<u8> {
        let chunks = gaussians.len().div_ceil(CHUNK);
        let mut out = format!(
            "ply\nformat binary_little_endian 1.0\ncomment made by hand\nelement chunk {chunks}\n"
        );
        for name in [
            "min_x",
            "min_y",
            "min_z",
            "max_x",
            "max_y",
            "max_z",
            "min_scale_x",
            "min_scale_y",
            "min_scale_z",
            "max_scale_x",
            "max_scale_y",
            "max_scale_z",
        ] {
            out += &format!("property float {name}\n");
        }
        out += &format!("element vertex {}\n", gaussians.len());
        for name in [
            "packed_position",
            "packed_rotation",
            "packed_scale",
            "packed_color",
        ] {
            out += &format!("property uint {name}\n");
        }
        out += &format!("element sh {}\n", gaussians.len());
        for i in 0..9 {
            out += &format!("property uchar f_rest_{i}\n");
        }
        out += "end_header\n";
        let mut bytes = out.into_bytes();
        for _ in 0..chunks {
            for v in [
                0.0f32, 0.0, 0.0, 1.0, 1.0, 1.0, -4.0, -4.0, -4.0, 0.0, 0.0, 0.0,
            ] {
                bytes.extend(v.to_le_bytes());
            }
        }
        let pack = |v: Vec3| {
            let q =
                |x: f32, bits: u32| (x.clamp(0.0, 1.0) * ((1 << bits) - 1) as f32).round() as u32;
            q(v.x, 11) << 21 | q(v.y, 10) << 11 | q(v.z, 11)
        };
        for (p, r, s, c, _) in gaussians {
            // PLY order w, x, y, z; the largest made positive, the others at 10 bits.
            let mut q = [r.w, r.x, r.y, r.z];
            let largest = (0..4)
                .max_by(|&a, &b| q[a].abs().total_cmp(&q[b].abs()))
                .unwrap();
            if q[largest] < 0.0 {
                q = q.map(|v| -v);
            }
            let mut word = largest as u32;
            for (i, v) in q.iter().enumerate() {
                if i != largest {
                    let code = ((v / std::f32::consts::SQRT_2 + 0.5) * 1023.0).round() as u32;
                    word = word << 10 | code.min(1023);
                }
            }
            let colour = u32::from_be_bytes(*c);
            for w in [pack(*p), word, pack((*s + 4.0) / 4.0), colour] {
                bytes.extend(w.to_le_bytes());
            }
        }
        for (.., sh) in gaussians {
            bytes.extend(sh);
        }
        bytes
    }

    #[test]
    fn decodes_what_supersplat_packs() {
        let r = Quat::from_euler(glam::EulerRot::XYZ, 0.3, -1.1, 2.0);
        let gaussians: Vec<_> = (0..300)
            .map(|i| {
                let t = i as f32 / 300.0;
                (
                    Vec3::new(t, 1.0 - t, 0.5),
                    if i % 2 == 0 { r } else { -r.conjugate() },
                    Vec3::new(-3.0, -2.0 + t, -1.0),
                    [255, 128, 0, if i == 0 { 255 } else { 64 }],
                    [0, 255, 128, 1, 2, 3, 4, 5, 6],
                )
            })
            .collect();
        let bytes = file(&gaussians);
        let frame = super::super::ply::read(&bytes).unwrap();
        frame.validate().unwrap();
        assert_eq!((frame.len(), frame.sh_degree), (300, 1));
        for (i, (p, r, s, _, _)) in gaussians.iter().enumerate() {
            assert!((frame.positions[i] - *p).abs().max_element() < 1e-3, "{i}");
            assert!((frame.log_scales[i] - *s).abs().max_element() < 4e-3, "{i}");
            let q = frame.rotations[i].normalize();
            assert!(q.dot(*r).abs() > 0.9999, "{i}: {q:?} vs {r:?}");
        }
        // Colour 255/128/0 → DC; opacity 255 stays finite and opaque, 64 → its logit.
        let dc = frame.sh_dc[1] * SH_C0 + 0.5;
        assert!(
            (dc - Vec3::new(1.0, 128.0 / 255.0, 0.0))
                .abs()
                .max_element()
                < 1e-5
        );
        assert!(frame.opacity_logits[0] > 5.0 && frame.opacity_logits[0].is_finite());
        let a = 64.0f32 / 255.0;
        assert!((frame.opacity_logits[1] - (a / (1.0 - a)).ln()).abs() < 1e-5);
        // SH: channel-major codes 0, 255, 128 are red's three coefficients.
        assert_eq!(frame.sh_rest[0].x, -4.0);
        assert_eq!(frame.sh_rest[1].x, 4.0);
        assert!((frame.sh_rest[2].x - 0.015625).abs() < 1e-6);
    }

    #[test]
    fn broken_files_say_what_is_wrong() {
        let one = [(Vec3::ZERO, Quat::IDENTITY, Vec3::ZERO, [0; 4], [0; 9])];
        let good = file(&one);
        // Cut inside the vertex records.
        let cut = &good[..good.len() - 12];
        assert!(matches!(
            super::super::ply::read(cut),
            Err(FormatError::Truncated(_))
        ));
        // More Gaussians than the chunks hold.
        let text =
            String::from_utf8_lossy(&good).replace("element vertex 1\n", "element vertex 257\n");
        let err = super::super::ply::read(text.as_bytes())
            .unwrap_err()
            .to_string();
        assert!(err.contains("chunk") || err.contains("bytes"), "{err}");
        // A point cloud PLY is named as not a splat file, with what it has.
        let cloud = b"ply\nformat ascii 1.0\nelement vertex 1\nproperty float x\nproperty float y\nproperty float z\nproperty uchar red\nend_header\n0 0 0 1\n";
        let err = super::super::ply::read(cloud).unwrap_err().to_string();
        assert!(
            err.contains("not a Gaussian splat PLY") && err.contains("red"),
            "{err}"
        );
    }
}
