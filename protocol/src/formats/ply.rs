//! Inria 3DGS PLY: binary (either endianness) and ASCII, any SH degree, with or without normals,
//! any property order; the writer emits the Inria layout trainers and viewers expect.

use glam::{Quat, Vec3};

use super::FormatError;
use super::bytes::check_fits;
use crate::gaussian::{GaussianFrame, logit, sh_degree_for_rest, sh_rest_count};

/// Longest header accepted; real headers are a few hundred bytes.
const MAX_HEADER: usize = 64 * 1024;

#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) enum Encoding {
    Ascii,
    LittleEndian,
    BigEndian,
}

#[derive(Clone, Copy, Debug)]
pub(super) enum Scalar {
    I8,
    U8,
    I16,
    U16,
    I32,
    U32,
    F32,
    F64,
}

impl Scalar {
    fn parse(name: &str) -> Result<Self, FormatError> {
        Ok(match name {
            "char" | "int8" => Self::I8,
            "uchar" | "uint8" => Self::U8,
            "short" | "int16" => Self::I16,
            "ushort" | "uint16" => Self::U16,
            "int" | "int32" => Self::I32,
            "uint" | "uint32" => Self::U32,
            "float" | "float32" => Self::F32,
            "double" | "float64" => Self::F64,
            other => return Err(FormatError::Invalid(format!("unknown PLY type '{other}'"))),
        })
    }

    pub(super) fn size(self) -> usize {
        match self {
            Self::I8 | Self::U8 => 1,
            Self::I16 | Self::U16 => 2,
            Self::I32 | Self::U32 | Self::F32 => 4,
            Self::F64 => 8,
        }
    }

    /// Decodes one binary value (`b` has exactly `size()` bytes).
    pub(super) fn decode(self, b: &[u8], enc: Encoding) -> f64 {
        macro_rules! num {
            ($t:ty) => {{
                let arr = b.try_into().expect("slice has the scalar's size");
                if enc == Encoding::BigEndian {
                    <$t>::from_be_bytes(arr) as f64
                } else {
                    <$t>::from_le_bytes(arr) as f64
                }
            }};
        }
        match self {
            Self::I8 => num!(i8),
            Self::U8 => num!(u8),
            Self::I16 => num!(i16),
            Self::U16 => num!(u16),
            Self::I32 => num!(i32),
            Self::U32 => num!(u32),
            Self::F32 => num!(f32),
            Self::F64 => num!(f64),
        }
    }
}

#[derive(Debug)]
pub(super) enum Property {
    Scalar { name: String, ty: Scalar },
    List { count: Scalar, item: Scalar },
}

#[derive(Debug)]
pub(super) struct Element {
    pub(super) name: String,
    pub(super) count: usize,
    pub(super) properties: Vec<Property>,
}

pub(super) struct Header {
    pub(super) encoding: Encoding,
    pub(super) elements: Vec<Element>,
    pub(super) body_start: usize,
}

fn parse_header(bytes: &[u8]) -> Result<Header, FormatError> {
    let limit = bytes.len().min(MAX_HEADER);
    let end = find(&bytes[..limit], b"end_header")
        .ok_or_else(|| FormatError::Invalid("PLY header has no end_header line".into()))?;
    let mut body_start = end + b"end_header".len();
    if bytes.get(body_start) == Some(&b'\r') {
        body_start += 1;
    }
    if bytes.get(body_start) != Some(&b'\n') {
        return Err(FormatError::Invalid(
            "end_header is not followed by a newline".into(),
        ));
    }
    body_start += 1;
    let text = std::str::from_utf8(&bytes[..end])
        .map_err(|_| FormatError::Invalid("PLY header is not text".into()))?;
    let mut lines = text.lines().map(str::trim);
    if lines.next() != Some("ply") {
        return Err(FormatError::Invalid("missing 'ply' magic".into()));
    }
    let mut encoding = None;
    let mut elements: Vec<Element> = Vec::new();
    for line in lines {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            [] | ["comment", ..] | ["obj_info", ..] => {}
            ["format", fmt, _version] => {
                encoding = Some(match *fmt {
                    "ascii" => Encoding::Ascii,
                    "binary_little_endian" => Encoding::LittleEndian,
                    "binary_big_endian" => Encoding::BigEndian,
                    other => {
                        return Err(FormatError::Invalid(format!(
                            "unknown PLY format '{other}'"
                        )));
                    }
                })
            }
            ["element", name, count] => elements.push(Element {
                name: (*name).to_owned(),
                count: count
                    .parse()
                    .map_err(|_| FormatError::Invalid(format!("bad element count '{count}'")))?,
                properties: Vec::new(),
            }),
            ["property", "list", count, item, _name] => {
                let element = elements
                    .last_mut()
                    .ok_or_else(|| FormatError::Invalid("property before any element".into()))?;
                element.properties.push(Property::List {
                    count: Scalar::parse(count)?,
                    item: Scalar::parse(item)?,
                });
            }
            ["property", ty, name] => {
                let element = elements
                    .last_mut()
                    .ok_or_else(|| FormatError::Invalid("property before any element".into()))?;
                element.properties.push(Property::Scalar {
                    name: (*name).to_owned(),
                    ty: Scalar::parse(ty)?,
                });
            }
            _ => {
                return Err(FormatError::Invalid(format!(
                    "bad PLY header line '{line}'"
                )));
            }
        }
    }
    let encoding =
        encoding.ok_or_else(|| FormatError::Invalid("PLY header has no format line".into()))?;
    Ok(Header {
        encoding,
        elements,
        body_start,
    })
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Where each Gaussian attribute lives in a vertex record (property indices).
struct Columns {
    position: [usize; 3],
    rotation: [usize; 4],
    scale: [usize; 3],
    opacity: usize,
    dc: [usize; 3],
    rest: Vec<usize>,
    degree: u8,
}

impl Columns {
    fn locate(props: &[Property]) -> Result<Self, FormatError> {
        let index = |name: &str| {
            props
                .iter()
                .position(|p| matches!(p, Property::Scalar { name: n, .. } if n == name))
                .ok_or_else(|| not_gaussians(name, props))
        };
        let mut rest = Vec::new();
        while let Ok(i) = index(&format!("f_rest_{}", rest.len())) {
            rest.push(i);
        }
        if rest.len() % 3 != 0 {
            return Err(FormatError::Invalid(format!(
                "{} f_rest properties is not a multiple of 3",
                rest.len()
            )));
        }
        let degree = sh_degree_for_rest(rest.len() / 3).ok_or_else(|| {
            FormatError::Unsupported(format!(
                "{} f_rest properties is no SH degree 0-3",
                rest.len()
            ))
        })?;
        Ok(Self {
            position: [index("x")?, index("y")?, index("z")?],
            rotation: [
                index("rot_0")?,
                index("rot_1")?,
                index("rot_2")?,
                index("rot_3")?,
            ],
            scale: [index("scale_0")?, index("scale_1")?, index("scale_2")?],
            opacity: index("opacity")?,
            dc: [index("f_dc_0")?, index("f_dc_1")?, index("f_dc_2")?],
            rest,
            degree,
        })
    }

    fn push(&self, row: &[f64], frame: &mut GaussianFrame) {
        let v3 = |c: [usize; 3]| Vec3::new(row[c[0]] as f32, row[c[1]] as f32, row[c[2]] as f32);
        frame.positions.push(v3(self.position));
        let r = self.rotation.map(|c| row[c] as f32);
        // Inria stores rot_0 = w, rot_1..3 = x, y, z.
        frame
            .rotations
            .push(Quat::from_xyzw(r[1], r[2], r[3], r[0]));
        frame.log_scales.push(v3(self.scale));
        // Writers put ±inf for fully opaque or clear Gaussians (splat-transform does): opacity
        // 1 or 0, kept finite like every reader's.
        let opacity = row[self.opacity] as f32;
        frame.opacity_logits.push(if opacity.is_infinite() {
            logit(if opacity > 0.0 { 1.0 } else { 0.0 })
        } else {
            opacity
        });
        frame.sh_dc.push(v3(self.dc));
        let k = sh_rest_count(self.degree);
        for coeff in 0..k {
            frame.sh_rest.push(v3([
                self.rest[coeff],
                self.rest[k + coeff],
                self.rest[2 * k + coeff],
            ]));
        }
    }
}

/// What a PLY we cannot read lacks, what it has, and what we read.
fn not_gaussians(missing: &str, props: &[Property]) -> FormatError {
    let names: Vec<&str> = props
        .iter()
        .filter_map(|p| match p {
            Property::Scalar { name, .. } => Some(name.as_str()),
            Property::List { .. } => None,
        })
        .collect();
    let has = match names.len() {
        0 => "no properties".to_owned(),
        n if n <= 6 => names.join(", "),
        n => format!("{} and {} more", names[..6].join(", "), n - 6),
    };
    FormatError::Unsupported(format!(
        "not a Gaussian splat PLY: its vertices lack '{missing}' (they have {has}); readable \
         are Inria 3DGS PLY (x, y, z, f_dc_*, opacity, scale_*, rot_*) and PlayCanvas \
         compressed PLY (chunk and packed_* vertex elements)"
    ))
}

/// Parses a Gaussian splat PLY: Inria 3DGS (binary or ASCII), or PlayCanvas compressed PLY.
pub fn read(bytes: &[u8]) -> Result<GaussianFrame, FormatError> {
    let header = parse_header(bytes)?;
    if super::compressed_ply::is_compressed(&header) {
        return super::compressed_ply::read(bytes, &header);
    }
    let vertex_pos = header
        .elements
        .iter()
        .position(|e| e.name == "vertex")
        .ok_or_else(|| FormatError::Invalid("PLY has no vertex element".into()))?;
    let vertex = &header.elements[vertex_pos];
    let columns = Columns::locate(&vertex.properties)?;
    let body = &bytes[header.body_start..];
    match header.encoding {
        Encoding::Ascii => read_ascii(body, &header.elements[..vertex_pos], vertex, &columns),
        enc => read_binary(body, enc, &header.elements[..vertex_pos], vertex, &columns),
    }
}

fn read_binary(
    body: &[u8],
    enc: Encoding,
    before: &[Element],
    vertex: &Element,
    columns: &Columns,
) -> Result<GaussianFrame, FormatError> {
    let mut pos = 0;
    for element in before {
        pos = skip_binary_element(body, pos, element, enc)?;
    }
    let mut sizes = Vec::with_capacity(vertex.properties.len());
    for p in &vertex.properties {
        match p {
            Property::Scalar { ty, .. } => sizes.push(ty.size()),
            Property::List { .. } => {
                return Err(FormatError::Unsupported(
                    "list property in vertex element".into(),
                ));
            }
        }
    }
    let stride: usize = sizes.iter().sum();
    let body = &body[pos..];
    check_fits(vertex.count, stride, body.len(), "vertices")?;
    let mut frame = GaussianFrame::with_capacity(vertex.count, columns.degree);
    let mut row = vec![0.0f64; sizes.len()];
    for record in body.chunks_exact(stride).take(vertex.count) {
        let mut off = 0;
        for (value, p) in row.iter_mut().zip(&vertex.properties) {
            if let Property::Scalar { ty, .. } = p {
                *value = ty.decode(&record[off..off + ty.size()], enc);
                off += ty.size();
            }
        }
        columns.push(&row, &mut frame);
    }
    Ok(frame)
}

fn skip_binary_element(
    body: &[u8],
    mut pos: usize,
    element: &Element,
    enc: Encoding,
) -> Result<usize, FormatError> {
    let truncated =
        || FormatError::Truncated(format!("element '{}' runs past the end", element.name));
    for _ in 0..element.count {
        for p in &element.properties {
            let len = match p {
                Property::Scalar { ty, .. } => ty.size(),
                Property::List { count, item } => {
                    let b = body.get(pos..pos + count.size()).ok_or_else(truncated)?;
                    pos += count.size();
                    let n = count.decode(b, enc);
                    if !(0.0..=1e9).contains(&n) {
                        return Err(FormatError::Invalid("bad list length".into()));
                    }
                    n as usize * item.size()
                }
            };
            pos = pos
                .checked_add(len)
                .filter(|&p| p <= body.len())
                .ok_or_else(truncated)?;
        }
    }
    Ok(pos)
}

fn read_ascii(
    body: &[u8],
    before: &[Element],
    vertex: &Element,
    columns: &Columns,
) -> Result<GaussianFrame, FormatError> {
    let text = std::str::from_utf8(body)
        .map_err(|_| FormatError::Invalid("ASCII PLY body is not text".into()))?;
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    for element in before {
        for _ in 0..element.count {
            lines.next().ok_or_else(|| {
                FormatError::Truncated(format!("element '{}' is short", element.name))
            })?;
        }
    }
    if vertex
        .properties
        .iter()
        .any(|p| matches!(p, Property::List { .. }))
    {
        return Err(FormatError::Unsupported(
            "list property in vertex element".into(),
        ));
    }
    // Each ASCII value takes at least two bytes, which bounds what a header may make us reserve.
    let cap = vertex
        .count
        .min(body.len() / (2 * vertex.properties.len().max(1)));
    let mut frame = GaussianFrame::with_capacity(cap, columns.degree);
    let mut row = vec![0.0f64; vertex.properties.len()];
    for i in 0..vertex.count {
        let line = lines.next().ok_or_else(|| {
            FormatError::Truncated(format!("{} of {} vertices present", i, vertex.count))
        })?;
        let mut words = line.split_whitespace();
        for value in row.iter_mut() {
            let w = words
                .next()
                .ok_or_else(|| FormatError::Invalid(format!("vertex {i} has too few values")))?;
            *value = w
                .parse()
                .map_err(|_| FormatError::Invalid(format!("vertex {i}: '{w}' is not a number")))?;
        }
        columns.push(&row, &mut frame);
    }
    Ok(frame)
}

/// Serialises a frame as binary little-endian PLY in the Inria layout (with zero normals).
pub fn write(frame: &GaussianFrame) -> Vec<u8> {
    let k = frame.rest_per_gaussian();
    let mut header = String::from("ply\nformat binary_little_endian 1.0\n");
    header += &format!("element vertex {}\n", frame.len());
    let mut names: Vec<String> = [
        "x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    names.extend((0..3 * k).map(|i| format!("f_rest_{i}")));
    names.extend(
        [
            "opacity", "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3",
        ]
        .iter()
        .map(|s| s.to_string()),
    );
    for n in &names {
        header += &format!("property float {n}\n");
    }
    header += "end_header\n";
    let mut out = Vec::with_capacity(header.len() + frame.len() * names.len() * 4);
    out.extend_from_slice(header.as_bytes());
    let mut put = |v: f32| out.extend_from_slice(&v.to_le_bytes());
    for i in 0..frame.len() {
        let p = frame.positions[i];
        [p.x, p.y, p.z, 0.0, 0.0, 0.0]
            .into_iter()
            .for_each(&mut put);
        frame.sh_dc[i].to_array().into_iter().for_each(&mut put);
        let rest = &frame.sh_rest[i * k..(i + 1) * k];
        for channel in 0..3 {
            rest.iter().for_each(|c| put(c[channel]));
        }
        put(frame.opacity_logits[i]);
        frame.log_scales[i]
            .to_array()
            .into_iter()
            .for_each(&mut put);
        let q = frame.rotations[i];
        [q.w, q.x, q.y, q.z].into_iter().for_each(&mut put);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample_frame(degree: u8) -> GaussianFrame {
        let k = sh_rest_count(degree);
        let mut f = GaussianFrame::with_capacity(3, degree);
        for i in 0..3 {
            let t = i as f32;
            f.positions.push(Vec3::new(t, -t, 0.5 * t));
            f.rotations.push(Quat::from_xyzw(0.1 * t, 0.2, 0.3, 0.9));
            f.log_scales.push(Vec3::new(-1.0, -2.0 - t, -3.0));
            f.opacity_logits.push(t - 1.0);
            f.sh_dc.push(Vec3::new(0.1, 0.2, 0.3 + t));
            f.sh_rest
                .extend((0..k).map(|c| Vec3::new(c as f32, -(c as f32), t)));
        }
        f
    }

    #[test]
    fn binary_roundtrip_every_degree() {
        for degree in 0..=3 {
            let f = sample_frame(degree);
            assert_eq!(read(&write(&f)).unwrap(), f, "degree {degree}");
        }
    }

    #[test]
    fn infinite_opacity_means_opaque_or_clear() {
        let mut f = sample_frame(0);
        f.opacity_logits[0] = f32::INFINITY;
        f.opacity_logits[1] = f32::NEG_INFINITY;
        let back = read(&write(&f)).unwrap();
        back.validate().unwrap();
        assert!(crate::gaussian::sigmoid(back.opacity_logits[0]) > 0.99999);
        assert!(crate::gaussian::sigmoid(back.opacity_logits[1]) < 1e-5);
        assert_eq!(back.opacity_logits[2], f.opacity_logits[2]);
    }

    #[test]
    fn ascii_and_big_endian_with_reordered_properties() {
        let names = [
            "rot_0", "rot_1", "rot_2", "rot_3", "x", "y", "z", "opacity", "scale_0", "scale_1",
            "scale_2", "f_dc_0", "f_dc_1", "f_dc_2",
        ];
        let values = [
            0.9f32, 0.1, 0.2, 0.3, 1.0, 2.0, 3.0, -0.5, -1.0, -2.0, -3.0, 0.4, 0.5, 0.6,
        ];
        let mut head = String::from("ply\nformat ascii 1.0\ncomment x\nelement vertex 1\n");
        for n in names {
            head += &format!("property float {n}\n");
        }
        head += "end_header\n";
        let ascii = format!(
            "{head}{}\n",
            values
                .iter()
                .map(|v| v.to_string())
                .collect::<Vec<_>>()
                .join(" ")
        );
        let a = read(ascii.as_bytes()).unwrap();
        let mut be = head.replace("ascii", "binary_big_endian").into_bytes();
        values.iter().for_each(|v| be.extend(v.to_be_bytes()));
        let b = read(&be).unwrap();
        assert_eq!(a, b);
        assert_eq!(a.positions[0], Vec3::new(1.0, 2.0, 3.0));
        assert_eq!(a.rotations[0], Quat::from_xyzw(0.1, 0.2, 0.3, 0.9));
        assert_eq!(a.sh_degree, 0);
    }

    #[test]
    fn rejects_missing_property_and_lying_header() {
        let f = sample_frame(0);
        let bytes = write(&f);
        let end = find(&bytes, b"end_header").unwrap();
        let text = String::from_utf8_lossy(&bytes[..end]).to_string();
        let no_opacity = text.replace("property float opacity\n", "property float opacitx\n");
        let mut b = no_opacity.into_bytes();
        b.extend_from_slice(&bytes[end..]);
        let err = read(&b).unwrap_err().to_string();
        assert!(err.contains("'opacity'"), "{err}");

        let lying = String::from_utf8_lossy(&bytes).replacen(
            "element vertex 3",
            "element vertex 4000000000",
            1,
        );
        let err = read(lying.as_bytes()).unwrap_err();
        assert!(matches!(err, FormatError::Truncated(_)), "{err}");
        assert!(read(&bytes[..bytes.len() - 1]).is_err());
    }
}
