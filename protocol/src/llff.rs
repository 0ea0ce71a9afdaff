//! LLFF / N3DV `poses_bounds.npy`: per camera a 3×5 matrix (rotation columns in LLFF's
//! down-right-back axes, translation, and height-width-focal) and the near/far scene bounds, in
//! NumPy's `.npy` format.

use crate::formats::FormatError;

/// One camera of a `poses_bounds.npy`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LlffCamera {
    /// Camera-to-world in OpenCV axes (x right, y down, z forward), rows of a 3×4 matrix.
    pub camera_to_world: [[f64; 4]; 3],
    /// Image height in pixels, as written.
    pub height: f64,
    /// Image width in pixels, as written.
    pub width: f64,
    /// Focal length in pixels at that size.
    pub focal: f64,
    /// Nearest scene depth.
    pub near: f64,
    /// Farthest scene depth.
    pub far: f64,
}

/// A 2-D float array from an `.npy` file (little-endian f4 or f8, C order).
#[derive(Clone, Debug, PartialEq)]
pub struct Npy {
    /// Rows and columns.
    pub shape: [usize; 2],
    /// Values in row-major order.
    pub values: Vec<f64>,
}

fn invalid(m: impl Into<String>) -> FormatError {
    FormatError::Invalid(m.into())
}

/// The value of `key` in the header dictionary text: up to the next `,` outside parentheses.
fn header_value<'a>(header: &'a str, key: &str) -> Option<&'a str> {
    let at = header.find(&format!("'{key}'"))? + key.len() + 2;
    let rest = header[at..].trim_start().strip_prefix(':')?.trim_start();
    let mut depth = 0;
    let end = rest
        .char_indices()
        .find(|&(_, c)| {
            match c {
                '(' => depth += 1,
                ')' => depth -= 1,
                _ => {}
            }
            depth == 0 && (c == ',' || c == '}')
        })
        .map_or(rest.len(), |(i, c)| if c == ')' { i + 1 } else { i });
    Some(rest[..end].trim())
}

/// Parses a 2-D `.npy` array of little-endian f4 or f8 in C order.
pub fn parse_npy(data: &[u8]) -> Result<Npy, FormatError> {
    if data.len() < 10 || &data[..6] != b"\x93NUMPY" {
        return Err(invalid("not a .npy file (no \\x93NUMPY magic)"));
    }
    let (header_len, start) = match data[6] {
        1 => (u16::from_le_bytes([data[8], data[9]]) as usize, 10usize),
        2 | 3 if data.len() >= 12 => (
            u32::from_le_bytes([data[8], data[9], data[10], data[11]]) as usize,
            12,
        ),
        v => return Err(FormatError::Unsupported(format!(".npy version {v}"))),
    };
    let body = start
        .checked_add(header_len)
        .filter(|&b| b <= data.len())
        .ok_or_else(|| FormatError::Truncated(".npy header".into()))?;
    let header =
        std::str::from_utf8(&data[start..body]).map_err(|_| invalid(".npy header is not text"))?;
    let descr =
        header_value(header, "descr").ok_or_else(|| invalid(".npy header lacks 'descr'"))?;
    let size = match descr.trim_matches(['\'', '"']) {
        "<f8" => 8,
        "<f4" => 4,
        other => {
            return Err(FormatError::Unsupported(format!(
                ".npy dtype {other} (want <f8 or <f4)"
            )));
        }
    };
    if header_value(header, "fortran_order") != Some("False") {
        return Err(FormatError::Unsupported(".npy in Fortran order".into()));
    }
    let shape_text =
        header_value(header, "shape").ok_or_else(|| invalid(".npy header lacks 'shape'"))?;
    let dims: Vec<usize> = shape_text
        .trim_matches(['(', ')'])
        .split(',')
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .map(|d| {
            d.parse()
                .map_err(|_| invalid(format!(".npy shape {shape_text}")))
        })
        .collect::<Result<_, _>>()?;
    let [rows, cols] = dims[..] else {
        return Err(FormatError::Unsupported(format!(
            ".npy with shape {shape_text} (want 2-D)"
        )));
    };
    let count = rows
        .checked_mul(cols)
        .ok_or_else(|| invalid(".npy shape overflows"))?;
    crate::formats::bytes::check_fits(count, size, data.len() - body, ".npy values")?;
    let values = data[body..body + count * size]
        .chunks_exact(size)
        .map(|b| match size {
            8 => f64::from_le_bytes(b.try_into().expect("8 bytes")),
            _ => f32::from_le_bytes(b.try_into().expect("4 bytes")) as f64,
        })
        .collect();
    Ok(Npy {
        shape: [rows, cols],
        values,
    })
}

/// Parses `poses_bounds.npy` (N × 17).
pub fn parse_poses_bounds(data: &[u8]) -> Result<Vec<LlffCamera>, FormatError> {
    let npy = parse_npy(data)?;
    if npy.shape[1] != 17 {
        return Err(invalid(format!(
            "poses_bounds has {} columns, expected 17",
            npy.shape[1]
        )));
    }
    npy.values
        .chunks_exact(17)
        .enumerate()
        .map(|(i, r)| {
            if r.iter().any(|v| !v.is_finite()) {
                return Err(invalid(format!("camera {i}: non-finite value")));
            }
            // Row k of the 3×5 matrix is r[5k..5k + 5]: columns down, right, back, t, hwf.
            let m = |row: usize, col: usize| r[5 * row + col];
            let camera_to_world =
                std::array::from_fn(|row| [m(row, 1), m(row, 0), -m(row, 2), m(row, 3)]);
            Ok(LlffCamera {
                camera_to_world,
                height: m(0, 4),
                width: m(1, 4),
                focal: m(2, 4),
                near: r[15],
                far: r[16],
            })
        })
        .collect()
}

fn write_npy_header(shape: &str) -> Vec<u8> {
    let mut header = format!("{{'descr': '<f8', 'fortran_order': False, 'shape': {shape}, }}");
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend((header.len() as u16).to_le_bytes());
    out.extend(header.as_bytes());
    out
}

/// Writes a `rows` × `cols` array of f8 as a version-1 `.npy` (what `numpy.save` writes), e.g. a
/// `poses_bounds.npy` for a synthetic capture.
pub fn write_npy(rows: usize, cols: usize, values: &[f64]) -> Vec<u8> {
    assert_eq!(values.len(), rows * cols, "values fill the shape");
    let mut out = write_npy_header(&format!("({rows}, {cols})"));
    out.extend(values.iter().flat_map(|v| v.to_le_bytes()));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An `.npy` whose header declares `shape` whatever the values are.
    fn npy_declaring(shape: &str, values: &[f64]) -> Vec<u8> {
        let mut out = write_npy_header(shape);
        out.extend(values.iter().flat_map(|v| v.to_le_bytes()));
        out
    }

    #[test]
    fn poses_bounds_become_opencv_camera_to_world() {
        // LLFF columns (down, right, back): an identity OpenCV camera has down = +y, right = +x,
        // back = -z.
        let row = [
            0.0, 1.0, 0.0, 5.0, 480.0, //
            1.0, 0.0, 0.0, 6.0, 640.0, //
            0.0, 0.0, -1.0, 7.0, 500.0, //
            0.5, 20.0,
        ];
        let cams = parse_poses_bounds(&write_npy(1, 17, &row)).unwrap();
        let c = cams[0];
        assert_eq!(
            c.camera_to_world,
            [
                [1.0, 0.0, 0.0, 5.0],
                [0.0, 1.0, 0.0, 6.0],
                [0.0, 0.0, 1.0, 7.0]
            ]
        );
        assert_eq!(
            (c.height, c.width, c.focal, c.near, c.far),
            (480.0, 640.0, 500.0, 0.5, 20.0)
        );
    }

    #[test]
    fn malformed_npy_fails_cleanly() {
        let good = write_npy(2, 17, &[0.0; 34]);
        assert_eq!(parse_poses_bounds(&good).unwrap().len(), 2);
        for cut in [0, 5, 12, good.len() - 1] {
            assert!(parse_npy(&good[..cut]).is_err(), "cut {cut}");
        }
        assert!(parse_poses_bounds(&write_npy(1, 3, &[0.0; 3])).is_err());
        let fortran = String::from_utf8_lossy(&good).replace("False", "True ");
        assert!(parse_npy(fortran.as_bytes()).is_err());
        assert!(parse_npy(&npy_declaring("(99999999999, 17)", &[0.0; 34])).is_err());
        assert!(parse_npy(&npy_declaring("(18446744073709551615, 17)", &[0.0; 34])).is_err());
        assert!(parse_npy(&npy_declaring("(2, 3, 4)", &[0.0; 24])).is_err());
        assert_eq!(
            parse_npy(&npy_declaring("(2, 3)", &[1.0; 6]))
                .unwrap()
                .values,
            vec![1.0; 6]
        );
    }
}
