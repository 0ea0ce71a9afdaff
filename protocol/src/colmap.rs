//! COLMAP sparse models (`cameras`, `images`, `points3D`), binary and text: the cameras and
//! poses a capture was calibrated with, and the sparse points a trainer starts from.
//!
//! Poses are world-to-camera in COLMAP's (= OpenCV's) axes: x right, y down, z forward.

use std::path::{Path, PathBuf};

use crate::formats::FormatError;
use crate::formats::bytes::{Cursor, check_fits};

/// COLMAP's camera models, with their parameter counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CameraModel {
    /// f, cx, cy
    SimplePinhole,
    /// fx, fy, cx, cy
    Pinhole,
    /// f, cx, cy, k
    SimpleRadial,
    /// f, cx, cy, k1, k2
    Radial,
    /// fx, fy, cx, cy, k1, k2, p1, p2
    OpenCv,
    /// fx, fy, cx, cy, k1, k2, k3, k4
    OpenCvFisheye,
    /// fx, fy, cx, cy, k1, k2, p1, p2, k3, k4, k5, k6
    FullOpenCv,
    /// fx, fy, cx, cy, omega
    Fov,
    /// f, cx, cy, k
    SimpleRadialFisheye,
    /// f, cx, cy, k1, k2
    RadialFisheye,
    /// fx, fy, cx, cy, k1, k2, p1, p2, k3, k4, sx1, sy1
    ThinPrismFisheye,
}

const MODELS: [(CameraModel, &str, usize); 11] = [
    (CameraModel::SimplePinhole, "SIMPLE_PINHOLE", 3),
    (CameraModel::Pinhole, "PINHOLE", 4),
    (CameraModel::SimpleRadial, "SIMPLE_RADIAL", 4),
    (CameraModel::Radial, "RADIAL", 5),
    (CameraModel::OpenCv, "OPENCV", 8),
    (CameraModel::OpenCvFisheye, "OPENCV_FISHEYE", 8),
    (CameraModel::FullOpenCv, "FULL_OPENCV", 12),
    (CameraModel::Fov, "FOV", 5),
    (CameraModel::SimpleRadialFisheye, "SIMPLE_RADIAL_FISHEYE", 4),
    (CameraModel::RadialFisheye, "RADIAL_FISHEYE", 5),
    (CameraModel::ThinPrismFisheye, "THIN_PRISM_FISHEYE", 12),
];

impl CameraModel {
    fn from_id(id: i32) -> Option<Self> {
        MODELS.get(usize::try_from(id).ok()?).map(|m| m.0)
    }

    fn from_name(name: &str) -> Option<Self> {
        MODELS.iter().find(|m| m.1 == name).map(|m| m.0)
    }

    /// COLMAP's name of the model.
    pub fn name(self) -> &'static str {
        MODELS.iter().find(|m| m.0 == self).expect("listed").1
    }

    /// Number of parameters.
    pub fn param_count(self) -> usize {
        MODELS.iter().find(|m| m.0 == self).expect("listed").2
    }
}

/// One camera (intrinsics shared by the images that name it).
#[derive(Clone, Debug, PartialEq)]
pub struct ColmapCamera {
    /// COLMAP's id.
    pub id: u32,
    /// The model.
    pub model: CameraModel,
    /// Image width in pixels.
    pub width: u32,
    /// Image height in pixels.
    pub height: u32,
    /// The model's parameters in COLMAP's order.
    pub params: Vec<f64>,
}

/// A pinhole with OpenCV radial-tangential distortion, principal point with pixel centres at
/// integers (COLMAP's are at half-integers).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Intrinsics {
    /// Focal lengths in pixels.
    pub focal: [f64; 2],
    /// Principal point.
    pub principal: [f64; 2],
    /// k1, k2, p1, p2.
    pub distortion: [f64; 4],
}

impl ColmapCamera {
    /// The camera as a pinhole with k1, k2, p1, p2 distortion; fisheye and higher-order models
    /// are refused.
    pub fn intrinsics(&self) -> Result<Intrinsics, FormatError> {
        let p = &self.params;
        let (focal, c, d) = match self.model {
            CameraModel::SimplePinhole => ([p[0], p[0]], [p[1], p[2]], [0.0; 4]),
            CameraModel::Pinhole => ([p[0], p[1]], [p[2], p[3]], [0.0; 4]),
            CameraModel::SimpleRadial => ([p[0], p[0]], [p[1], p[2]], [p[3], 0.0, 0.0, 0.0]),
            CameraModel::Radial => ([p[0], p[0]], [p[1], p[2]], [p[3], p[4], 0.0, 0.0]),
            CameraModel::OpenCv => ([p[0], p[1]], [p[2], p[3]], [p[4], p[5], p[6], p[7]]),
            other => {
                return Err(FormatError::Unsupported(format!(
                    "camera {} uses the {} model; undistort it with COLMAP first (image_undistorter)",
                    self.id,
                    other.name()
                )));
            }
        };
        Ok(Intrinsics {
            focal,
            principal: [c[0] - 0.5, c[1] - 0.5],
            distortion: d,
        })
    }
}

/// One registered image: its pose and camera.
#[derive(Clone, Debug, PartialEq)]
pub struct ColmapImage {
    /// COLMAP's id.
    pub id: u32,
    /// World-to-camera rotation as a quaternion (w, x, y, z).
    pub rotation: [f64; 4],
    /// World-to-camera translation.
    pub translation: [f64; 3],
    /// The camera's id.
    pub camera_id: u32,
    /// File name relative to the images folder.
    pub name: String,
}

/// One sparse point.
#[derive(Clone, Debug, PartialEq)]
pub struct ColmapPoint {
    /// Position.
    pub position: [f64; 3],
    /// Colour.
    pub color: [u8; 3],
    /// Mean reprojection error in pixels.
    pub error: f64,
}

/// A whole sparse model.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct ColmapModel {
    /// Cameras.
    pub cameras: Vec<ColmapCamera>,
    /// Registered images.
    pub images: Vec<ColmapImage>,
    /// Sparse points (empty when the model has none).
    pub points: Vec<ColmapPoint>,
}

/// A model file that failed.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {error}")]
pub struct ColmapError {
    /// The file.
    pub path: PathBuf,
    /// What went wrong.
    pub error: FormatError,
}

fn invalid(what: String) -> FormatError {
    FormatError::Invalid(what)
}

fn id32(v: i64, what: &str) -> Result<u32, FormatError> {
    u32::try_from(v).map_err(|_| invalid(format!("{what} {v} out of range")))
}

fn size32(v: u64, what: &str) -> Result<u32, FormatError> {
    match u32::try_from(v) {
        Ok(s) if (1..=65_536).contains(&s) => Ok(s),
        _ => Err(invalid(format!("{what} {v} is not an image size"))),
    }
}

/// Parses `cameras.bin`.
pub fn parse_cameras_bin(data: &[u8]) -> Result<Vec<ColmapCamera>, FormatError> {
    let mut c = Cursor::new(data);
    let n = c.u64("camera count")?;
    let n = usize::try_from(n).map_err(|_| invalid("camera count".into()))?;
    check_fits(n, 24, c.remaining(), "cameras")?;
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let id = id32(c.u32("camera id")? as i32 as i64, "camera id")?;
        let model_id = c.u32("camera model")? as i32;
        let model = CameraModel::from_id(model_id)
            .ok_or_else(|| invalid(format!("camera {id}: unknown model id {model_id}")))?;
        let width = size32(c.u64("width")?, "width")?;
        let height = size32(c.u64("height")?, "height")?;
        let params = (0..model.param_count())
            .map(|_| c.f64("camera parameter"))
            .collect::<Result<_, _>>()?;
        out.push(ColmapCamera {
            id,
            model,
            width,
            height,
            params,
        });
    }
    Ok(out)
}

/// Parses `images.bin` (the 2D observations are skipped).
pub fn parse_images_bin(data: &[u8]) -> Result<Vec<ColmapImage>, FormatError> {
    let mut c = Cursor::new(data);
    let n = usize::try_from(c.u64("image count")?).map_err(|_| invalid("image count".into()))?;
    check_fits(n, 4 + 56 + 4 + 1 + 8, c.remaining(), "images")?;
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let id = id32(c.u32("image id")? as i32 as i64, "image id")?;
        let rotation = [c.f64("qw")?, c.f64("qx")?, c.f64("qy")?, c.f64("qz")?];
        let translation = [c.f64("tx")?, c.f64("ty")?, c.f64("tz")?];
        let camera_id = id32(c.u32("camera id")? as i32 as i64, "camera id")?;
        let name = String::from_utf8(c.c_string("image name")?.to_vec())
            .map_err(|_| invalid(format!("image {id}: name is not UTF-8")))?;
        let points = usize::try_from(c.u64("2D point count")?)
            .map_err(|_| invalid("2D point count".into()))?;
        check_fits(points, 24, c.remaining(), "2D points")?;
        c.take(points * 24, "2D points")?;
        out.push(ColmapImage {
            id,
            rotation,
            translation,
            camera_id,
            name,
        });
    }
    Ok(out)
}

/// Parses `points3D.bin` (tracks are skipped).
pub fn parse_points_bin(data: &[u8]) -> Result<Vec<ColmapPoint>, FormatError> {
    let mut c = Cursor::new(data);
    let n = usize::try_from(c.u64("point count")?).map_err(|_| invalid("point count".into()))?;
    check_fits(n, 8 + 24 + 3 + 8 + 8, c.remaining(), "points")?;
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        c.u64("point id")?;
        let position = [c.f64("x")?, c.f64("y")?, c.f64("z")?];
        let color = [c.u8("r")?, c.u8("g")?, c.u8("b")?];
        let error = c.f64("error")?;
        let track =
            usize::try_from(c.u64("track length")?).map_err(|_| invalid("track length".into()))?;
        check_fits(track, 8, c.remaining(), "track entries")?;
        c.take(track * 8, "track")?;
        out.push(ColmapPoint {
            position,
            color,
            error,
        });
    }
    Ok(out)
}

/// The data lines of a COLMAP text file (comments and blank lines dropped), numbered from 1.
fn lines(text: &str) -> impl Iterator<Item = (usize, Vec<&str>)> {
    text.lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.trim()))
        .filter(|(_, l)| !l.is_empty() && !l.starts_with('#'))
        .map(|(i, l)| (i, l.split_whitespace().collect()))
}

fn field<T: std::str::FromStr>(fields: &[&str], k: usize, line: usize) -> Result<T, FormatError> {
    fields
        .get(k)
        .and_then(|f| f.parse().ok())
        .ok_or_else(|| invalid(format!("line {line}: field {} missing or malformed", k + 1)))
}

/// Parses `cameras.txt`.
pub fn parse_cameras_txt(text: &str) -> Result<Vec<ColmapCamera>, FormatError> {
    lines(text)
        .map(|(line, f)| {
            let model = CameraModel::from_name(f.get(1).copied().unwrap_or(""))
                .ok_or_else(|| invalid(format!("line {line}: unknown camera model")))?;
            if f.len() != 4 + model.param_count() {
                return Err(invalid(format!(
                    "line {line}: {} needs {} parameters",
                    model.name(),
                    model.param_count()
                )));
            }
            Ok(ColmapCamera {
                id: field(&f, 0, line)?,
                model,
                width: size32(field(&f, 2, line)?, "width")?,
                height: size32(field(&f, 3, line)?, "height")?,
                params: (4..f.len())
                    .map(|k| field(&f, k, line))
                    .collect::<Result<_, _>>()?,
            })
        })
        .collect()
}

/// Parses `images.txt` (every other data line holds 2D observations, skipped).
pub fn parse_images_txt(text: &str) -> Result<Vec<ColmapImage>, FormatError> {
    // An image with no observations has an empty second line, which `lines` drops: pair lines
    // by content instead (a pose line has exactly 10 fields and an integer id).
    let mut out = Vec::new();
    for (line, f) in lines(text) {
        // Observation lines hold triples (X Y POINT3D_ID), so never exactly 10 fields.
        let is_pose = f.len() == 10 && f[0].parse::<u32>().is_ok() && f[8].parse::<u32>().is_ok();
        if !is_pose {
            continue;
        }
        out.push(ColmapImage {
            id: field(&f, 0, line)?,
            rotation: [
                field(&f, 1, line)?,
                field(&f, 2, line)?,
                field(&f, 3, line)?,
                field(&f, 4, line)?,
            ],
            translation: [
                field(&f, 5, line)?,
                field(&f, 6, line)?,
                field(&f, 7, line)?,
            ],
            camera_id: field(&f, 8, line)?,
            name: f[9].to_owned(),
        });
    }
    Ok(out)
}

/// Parses `points3D.txt`.
pub fn parse_points_txt(text: &str) -> Result<Vec<ColmapPoint>, FormatError> {
    lines(text)
        .map(|(line, f)| {
            Ok(ColmapPoint {
                position: [
                    field(&f, 1, line)?,
                    field(&f, 2, line)?,
                    field(&f, 3, line)?,
                ],
                color: [
                    field(&f, 4, line)?,
                    field(&f, 5, line)?,
                    field(&f, 6, line)?,
                ],
                error: field(&f, 7, line)?,
            })
        })
        .collect()
}

/// Reads the model in `dir` (a `sparse/0` folder): binary files when present, else text;
/// `points3D` may be missing.
pub fn read_model(dir: &Path) -> Result<ColmapModel, ColmapError> {
    fn load<T>(
        dir: &Path,
        stem: &str,
        bin: fn(&[u8]) -> Result<Vec<T>, FormatError>,
        txt: fn(&str) -> Result<Vec<T>, FormatError>,
    ) -> Result<Option<Vec<T>>, ColmapError> {
        let io = |path: &Path, e: std::io::Error| ColmapError {
            path: path.to_owned(),
            error: invalid(e.to_string()),
        };
        let (b, t) = (
            dir.join(format!("{stem}.bin")),
            dir.join(format!("{stem}.txt")),
        );
        if b.exists() {
            let data = std::fs::read(&b).map_err(|e| io(&b, e))?;
            return bin(&data)
                .map(Some)
                .map_err(|error| ColmapError { path: b, error });
        }
        if t.exists() {
            let text = std::fs::read_to_string(&t).map_err(|e| io(&t, e))?;
            return txt(&text)
                .map(Some)
                .map_err(|error| ColmapError { path: t, error });
        }
        Ok(None)
    }
    let missing = |stem: &str| ColmapError {
        path: dir.join(format!("{stem}.bin")),
        error: invalid("missing (neither .bin nor .txt)".into()),
    };
    Ok(ColmapModel {
        cameras: load(dir, "cameras", parse_cameras_bin, parse_cameras_txt)?
            .ok_or_else(|| missing("cameras"))?,
        images: load(dir, "images", parse_images_bin, parse_images_txt)?
            .ok_or_else(|| missing("images"))?,
        points: load(dir, "points3D", parse_points_bin, parse_points_txt)?.unwrap_or_default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A two-camera, two-image, one-point model in COLMAP's binary layout.
    fn binary_model() -> (Vec<u8>, Vec<u8>, Vec<u8>) {
        let mut cams = 2u64.to_le_bytes().to_vec();
        cams.extend(1i32.to_le_bytes());
        cams.extend(1i32.to_le_bytes()); // PINHOLE
        cams.extend(640u64.to_le_bytes());
        cams.extend(480u64.to_le_bytes());
        for v in [500.0f64, 510.0, 320.0, 240.0] {
            cams.extend(v.to_le_bytes());
        }
        cams.extend(2i32.to_le_bytes());
        cams.extend(4i32.to_le_bytes()); // OPENCV
        cams.extend(100u64.to_le_bytes());
        cams.extend(50u64.to_le_bytes());
        for v in [90.0f64, 91.0, 50.0, 25.0, 0.1, -0.05, 0.001, 0.002] {
            cams.extend(v.to_le_bytes());
        }
        let mut imgs = 2u64.to_le_bytes().to_vec();
        for (id, cam, name) in [(7i32, 1i32, "a.jpg"), (9, 2, "sub/b.png")] {
            imgs.extend(id.to_le_bytes());
            for v in [1.0f64, 0.0, 0.0, 0.0, 0.5, -1.0, 2.0] {
                imgs.extend(v.to_le_bytes());
            }
            imgs.extend(cam.to_le_bytes());
            imgs.extend(name.as_bytes());
            imgs.push(0);
            imgs.extend(1u64.to_le_bytes());
            imgs.extend(3.0f64.to_le_bytes());
            imgs.extend(4.0f64.to_le_bytes());
            imgs.extend((-1i64).to_le_bytes());
        }
        let mut pts = 1u64.to_le_bytes().to_vec();
        pts.extend(5u64.to_le_bytes());
        for v in [1.0f64, 2.0, 3.0] {
            pts.extend(v.to_le_bytes());
        }
        pts.extend([10, 20, 30]);
        pts.extend(0.5f64.to_le_bytes());
        pts.extend(2u64.to_le_bytes());
        pts.extend(
            [
                7i32.to_le_bytes(),
                0i32.to_le_bytes(),
                9i32.to_le_bytes(),
                0i32.to_le_bytes(),
            ]
            .concat(),
        );
        (cams, imgs, pts)
    }

    #[test]
    fn binary_and_text_models_agree() {
        let (cams, imgs, pts) = binary_model();
        let bin = ColmapModel {
            cameras: parse_cameras_bin(&cams).unwrap(),
            images: parse_images_bin(&imgs).unwrap(),
            points: parse_points_bin(&pts).unwrap(),
        };
        let text = ColmapModel {
            cameras: parse_cameras_txt(
                "# Camera list\n1 PINHOLE 640 480 500 510 320 240\n2 OPENCV 100 50 90 91 50 25 0.1 -0.05 0.001 0.002\n",
            )
            .unwrap(),
            images: parse_images_txt(
                "# Image list\n7 1 0 0 0 0.5 -1 2 1 a.jpg\n3 4 -1\n9 1 0 0 0 0.5 -1 2 2 sub/b.png\n\n",
            )
            .unwrap(),
            points: parse_points_txt("5 1 2 3 10 20 30 0.5 7 0 9 0\n").unwrap(),
        };
        assert_eq!(bin, text);
        assert_eq!(bin.images[1].name, "sub/b.png");
        let k = bin.cameras[1].intrinsics().unwrap();
        assert_eq!(k.focal, [90.0, 91.0]);
        assert_eq!(k.principal, [49.5, 24.5]);
        assert_eq!(k.distortion, [0.1, -0.05, 0.001, 0.002]);
    }

    #[test]
    fn truncated_and_hostile_headers_fail_cleanly() {
        let (cams, imgs, pts) = binary_model();
        for cut in [0, 7, 20, cams.len() - 1] {
            assert!(parse_cameras_bin(&cams[..cut]).is_err());
        }
        for cut in [9, 40, imgs.len() - 3] {
            assert!(parse_images_bin(&imgs[..cut]).is_err());
        }
        assert!(parse_points_bin(&pts[..pts.len() - 1]).is_err());
        let mut huge = u64::MAX.to_le_bytes().to_vec();
        huge.extend([0; 64]);
        assert!(
            parse_cameras_bin(&huge).is_err()
                && parse_images_bin(&huge).is_err()
                && parse_points_bin(&huge).is_err()
        );
        assert!(parse_cameras_txt("1 FISHEYE_X 10 10 1").is_err());
        assert!(parse_cameras_txt("1 PINHOLE 10 10 1 2").is_err());
        let fisheye = ColmapCamera {
            id: 3,
            model: CameraModel::OpenCvFisheye,
            width: 10,
            height: 10,
            params: vec![1.0; 8],
        };
        assert!(matches!(
            fisheye.intrinsics(),
            Err(FormatError::Unsupported(_))
        ));
    }
}
