//! PlayCanvas SOG v2 ("Spatially Ordered Gaussians"): a zip of `meta.json` and lossless WebP
//! planes — 16-bit log-encoded positions split in two images, codebook indices for scales, DC
//! colour and SH palettes, smallest-three quaternions.

use std::collections::HashMap;

use glam::{Quat, Vec3};
use serde::Deserialize;

use super::FormatError;
use super::zip;
use crate::gaussian::{GaussianFrame, logit, sh_rest_count};

/// Most pixels a SOG plane may have (a 16k × 16k image).
const MAX_PIXELS: u64 = 1 << 28;

#[derive(Deserialize)]
struct Meta {
    version: u32,
    count: usize,
    means: Means,
    scales: Coded,
    quats: Files,
    sh0: Coded,
    #[serde(rename = "shN")]
    sh_n: Option<ShN>,
}

#[derive(Deserialize)]
struct Means {
    mins: [f32; 3],
    maxs: [f32; 3],
    files: Vec<String>,
}

#[derive(Deserialize)]
struct Coded {
    codebook: Vec<f32>,
    files: Vec<String>,
}

#[derive(Deserialize)]
struct Files {
    files: Vec<String>,
}

#[derive(Deserialize)]
struct ShN {
    bands: u8,
    codebook: Vec<f32>,
    files: Vec<String>,
}

/// An RGBA image decoded from one of the bundle's WebP files.
struct Rgba {
    width: usize,
    pixels: Vec<u8>,
}

impl Rgba {
    fn px(&self, i: usize) -> [u8; 4] {
        let p = &self.pixels[4 * i..4 * i + 4];
        [p[0], p[1], p[2], p[3]]
    }

    fn len(&self) -> usize {
        self.pixels.len() / 4
    }
}

struct Bundle<'a> {
    entries: HashMap<String, zip::Entry<'a>>,
}

impl Bundle<'_> {
    fn file(&self, name: &str) -> Result<Vec<u8>, FormatError> {
        self.entries
            .get(name)
            .ok_or_else(|| FormatError::Invalid(format!("SOG bundle lacks '{name}'")))?
            .read()
    }

    fn image(
        &self,
        files: &[String],
        index: usize,
        min_pixels: usize,
    ) -> Result<Rgba, FormatError> {
        let name = files
            .get(index)
            .ok_or_else(|| FormatError::Invalid("meta.json names too few files".into()))?;
        let bytes = self.file(name)?;
        let bad = |e: image_webp::DecodingError| FormatError::Invalid(format!("{name}: {e}"));
        let mut dec = image_webp::WebPDecoder::new(std::io::Cursor::new(&bytes)).map_err(bad)?;
        let (w, h) = dec.dimensions();
        let pixels = w as u64 * h as u64;
        if pixels > MAX_PIXELS || (pixels as usize) < min_pixels {
            return Err(FormatError::Invalid(format!(
                "{name} is {w}x{h}, needs at least {min_pixels} pixels"
            )));
        }
        let channels = if dec.has_alpha() { 4 } else { 3 };
        let mut buf = vec![0u8; pixels as usize * channels];
        dec.read_image(&mut buf).map_err(bad)?;
        let pixels = if channels == 4 {
            buf
        } else {
            buf.chunks_exact(3)
                .flat_map(|p| [p[0], p[1], p[2], 255])
                .collect()
        };
        Ok(Rgba {
            width: w as usize,
            pixels,
        })
    }
}

fn codebook(values: &[f32], what: &str) -> Result<[f32; 256], FormatError> {
    values
        .try_into()
        .map_err(|_| FormatError::Invalid(format!("{what} codebook must have 256 entries")))
}

/// Parses a bundled (zipped) SOG v2 file.
pub fn read(bytes: &[u8]) -> Result<GaussianFrame, FormatError> {
    let bundle = Bundle {
        entries: zip::entries(bytes)?
            .into_iter()
            .map(|e| (e.name.rsplit('/').next().unwrap_or_default().to_owned(), e))
            .collect(),
    };
    let meta: Meta = serde_json::from_slice(&bundle.file("meta.json")?)
        .map_err(|e| FormatError::Invalid(format!("meta.json: {e}")))?;
    if meta.version != 2 {
        return Err(FormatError::Unsupported(format!(
            "SOG version {}",
            meta.version
        )));
    }
    let n = meta.count;
    if n as u64 > MAX_PIXELS {
        return Err(FormatError::Invalid(format!("count {n} is too large")));
    }
    let means_l = bundle.image(&meta.means.files, 0, n)?;
    let means_u = bundle.image(&meta.means.files, 1, n)?;
    let scales = bundle.image(&meta.scales.files, 0, n)?;
    let quats = bundle.image(&meta.quats.files, 0, n)?;
    let sh0 = bundle.image(&meta.sh0.files, 0, n)?;
    let scale_book = codebook(&meta.scales.codebook, "scales")?;
    let sh0_book = codebook(&meta.sh0.codebook, "sh0")?;
    let (degree, palette) = match &meta.sh_n {
        Some(s) if s.bands > 0 => {
            if s.bands > 3 {
                return Err(FormatError::Unsupported(format!("{} SH bands", s.bands)));
            }
            let labels = bundle.image(&s.files, 1, n)?;
            let centroids = bundle.image(&s.files, 0, 0)?;
            (
                s.bands,
                Some((labels, centroids, codebook(&s.codebook, "shN")?)),
            )
        }
        _ => (0, None),
    };
    let k = sh_rest_count(degree);

    let mut frame = GaussianFrame::with_capacity(n, degree);
    let (lo, hi) = (Vec3::from(meta.means.mins), Vec3::from(meta.means.maxs));
    for i in 0..n {
        let (l, u) = (means_l.px(i), means_u.px(i));
        let q16 = |c: usize| (l[c] as u32 | (u[c] as u32) << 8) as f32 / 65535.0;
        let t = lo + (hi - lo) * Vec3::new(q16(0), q16(1), q16(2));
        let unlog = |v: f32| v.signum() * (v.abs().exp() - 1.0);
        frame
            .positions
            .push(Vec3::new(unlog(t.x), unlog(t.y), unlog(t.z)));

        let s = scales.px(i);
        frame.log_scales.push(Vec3::new(
            scale_book[s[0] as usize],
            scale_book[s[1] as usize],
            scale_book[s[2] as usize],
        ));

        frame.rotations.push(unpack_quat(quats.px(i))?);

        let c = sh0.px(i);
        frame.sh_dc.push(Vec3::new(
            sh0_book[c[0] as usize],
            sh0_book[c[1] as usize],
            sh0_book[c[2] as usize],
        ));
        frame.opacity_logits.push(logit(c[3] as f32 / 255.0));

        if let Some((labels, centroids, book)) = &palette {
            let lab = labels.px(i);
            let label = lab[0] as usize | (lab[1] as usize) << 8;
            let offset = (label >> 6) * centroids.width + (label & 63) * k;
            if offset + k > centroids.len() {
                return Err(FormatError::Invalid(format!(
                    "SH label {label} outside the palette"
                )));
            }
            for coeff in 0..k {
                let p = centroids.px(offset + coeff);
                frame.sh_rest.push(Vec3::new(
                    book[p[0] as usize],
                    book[p[1] as usize],
                    book[p[2] as usize],
                ));
            }
        }
    }
    Ok(frame)
}

/// Smallest-three quaternion: alpha = 252 + index of the dropped (largest) component in
/// (w, x, y, z) order; RGB are the other three in order, mapped from [0, 255] to ±1/√2.
fn unpack_quat(p: [u8; 4]) -> Result<Quat, FormatError> {
    let largest = p[3]
        .checked_sub(252)
        .filter(|&m| m < 4)
        .ok_or_else(|| FormatError::Invalid(format!("quaternion mode byte {}", p[3])))?
        as usize;
    let v = |b: u8| (b as f32 / 255.0 - 0.5) * std::f32::consts::SQRT_2;
    let rest = [v(p[0]), v(p[1]), v(p[2])];
    let dropped = (1.0 - rest.iter().map(|r| r * r).sum::<f32>())
        .max(0.0)
        .sqrt();
    let mut wxyz = [0.0f32; 4];
    let mut it = rest.into_iter();
    for (i, c) in wxyz.iter_mut().enumerate() {
        *c = if i == largest {
            dropped
        } else {
            it.next().unwrap_or_default()
        };
    }
    Ok(Quat::from_xyzw(wxyz[1], wxyz[2], wxyz[3], wxyz[0]))
}
