//! Captured scenes the trainer learns from: nerfstudio / instant-ngp `transforms.json`, COLMAP
//! sparse models (`sparse/0`, binary or text) and LLFF / N3DV `poses_bounds.npy`. Every view
//! becomes a pinhole [`Camera`] plus its photo; lens distortion (k1, k2, p1, p2) is removed by
//! resampling onto the largest all-valid pinhole view of the same size. Views are sorted by file
//! name and every `hold_out`-th (index % hold_out == 0) is held out for evaluation.

mod undistort;

use std::path::{Path, PathBuf};

use glam::{DMat4, DQuat, DVec2, DVec3, DVec4};
use splatcast_protocol::{colmap, llff};
use splatcast_shaders::Camera;

pub use undistort::{Distortion, distort, optimal_pinhole, undistort, undistort_point};

use crate::views::{orthonormalized, read_transforms};

/// Why a dataset cannot be read.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {message}")]
pub struct DatasetError {
    /// The file or folder at fault.
    pub path: PathBuf,
    /// What is wrong.
    pub message: String,
}

pub(crate) fn fail(path: &Path, message: impl Into<String>) -> DatasetError {
    DatasetError {
        path: path.to_owned(),
        message: message.into(),
    }
}

/// An 8-bit RGB photo.
#[derive(Clone, Debug, PartialEq)]
pub struct RgbImage {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// RGB, row-major.
    pub data: Vec<u8>,
}

impl RgbImage {
    /// Bilinear sample at pixel coordinates (pixel centres at integers); black outside.
    pub fn bilinear(&self, p: DVec2) -> [u8; 3] {
        let (w, h) = (self.width as i64, self.height as i64);
        let (x0, y0) = (p.x.floor(), p.y.floor());
        let (fx, fy) = (p.x - x0, p.y - y0);
        let mut acc = [0.0f64; 3];
        for (dx, dy, wgt) in [
            (0, 0, (1.0 - fx) * (1.0 - fy)),
            (1, 0, fx * (1.0 - fy)),
            (0, 1, (1.0 - fx) * fy),
            (1, 1, fx * fy),
        ] {
            let (x, y) = (x0 as i64 + dx, y0 as i64 + dy);
            if wgt == 0.0 || x < 0 || y < 0 || x >= w || y >= h {
                continue;
            }
            let at = ((y * w + x) * 3) as usize;
            for (a, v) in acc.iter_mut().zip(&self.data[at..at + 3]) {
                *a += wgt * *v as f64;
            }
        }
        acc.map(|v| v.round().clamp(0.0, 255.0) as u8)
    }

    /// Reads a JPEG or PNG (8-bit RGB, RGBA or grey; alpha dropped).
    pub fn read(path: &Path) -> Result<Self, DatasetError> {
        let bytes = std::fs::read(path).map_err(|e| fail(path, e.to_string()))?;
        if bytes.starts_with(b"\x89PNG") {
            return read_png(&bytes).map_err(|m| fail(path, m));
        }
        if bytes.starts_with(&[0xff, 0xd8]) {
            use zune_jpeg::zune_core::bytestream::ZCursor;
            use zune_jpeg::zune_core::colorspace::ColorSpace;
            use zune_jpeg::zune_core::options::DecoderOptions;
            let options = DecoderOptions::default().jpeg_set_out_colorspace(ColorSpace::RGB);
            let mut decoder =
                zune_jpeg::JpegDecoder::new_with_options(ZCursor::new(&bytes), options);
            let data = decoder
                .decode()
                .map_err(|e| fail(path, format!("JPEG: {e:?}")))?;
            let info = decoder
                .info()
                .ok_or_else(|| fail(path, "JPEG without a header"))?;
            return Ok(Self {
                width: info.width as u32,
                height: info.height as u32,
                data,
            });
        }
        Err(fail(path, "not a JPEG or PNG image"))
    }
}

fn read_png(bytes: &[u8]) -> Result<RgbImage, String> {
    let mut decoder = png::Decoder::new(std::io::Cursor::new(bytes));
    decoder.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
    let mut reader = decoder.read_info().map_err(|e| format!("PNG: {e}"))?;
    let size = reader.output_buffer_size().ok_or("PNG too large")?;
    let mut buf = vec![0; size];
    let info = reader
        .next_frame(&mut buf)
        .map_err(|e| format!("PNG: {e}"))?;
    let channels = info.color_type.samples();
    let data = buf[..info.buffer_size()]
        .chunks(channels)
        .flat_map(|p| match channels {
            1 | 2 => [p[0]; 3],
            _ => [p[0], p[1], p[2]],
        })
        .collect();
    Ok(RgbImage {
        width: info.width,
        height: info.height,
        data,
    })
}

/// Which format a dataset folder is in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DatasetKind {
    /// `transforms.json`.
    Transforms,
    /// COLMAP `sparse/0`.
    Colmap,
    /// `poses_bounds.npy`.
    Llff,
}

/// Training or held-out evaluation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Split {
    /// Used for training.
    Train,
    /// Held out.
    Test,
}

/// One view as captured.
#[derive(Clone, Debug)]
pub struct DatasetView {
    /// The photo.
    pub path: PathBuf,
    /// The camera as calibrated (with its lens distortion, below).
    pub camera: Camera,
    /// k1, k2, p1, p2 (zeros for a pinhole).
    pub distortion: Distortion,
    /// Train or test.
    pub split: Split,
}

impl DatasetView {
    /// The pinhole camera the photo is resampled onto.
    pub fn pinhole(&self) -> Camera {
        if self.distortion == [0.0; 4] {
            self.camera
        } else {
            optimal_pinhole(&self.camera, self.distortion)
        }
    }

    /// Reads the photo, checks its size against the intrinsics, and undistorts it; returns the
    /// pinhole camera it now matches.
    pub fn load(&self) -> Result<(Camera, RgbImage), DatasetError> {
        let photo = RgbImage::read(&self.path)?;
        if (photo.width, photo.height) != (self.camera.width, self.camera.height) {
            return Err(fail(
                &self.path,
                format!(
                    "image is {}x{}, its intrinsics say {}x{}",
                    photo.width, photo.height, self.camera.width, self.camera.height
                ),
            ));
        }
        let pinhole = self.pinhole();
        if pinhole == self.camera {
            return Ok((pinhole, photo));
        }
        Ok((
            pinhole,
            undistort(&photo, &self.camera, self.distortion, &pinhole),
        ))
    }
}

/// A captured scene: views (sorted by file name, split) and, when the format has them, sparse
/// points with colours.
#[derive(Clone, Debug)]
pub struct Dataset {
    /// The folder.
    pub root: PathBuf,
    /// Its format.
    pub kind: DatasetKind,
    /// Views in file-name order.
    pub views: Vec<DatasetView>,
    /// Sparse points (COLMAP), for initialisation.
    pub points: Vec<(DVec3, [u8; 3])>,
}

impl Dataset {
    /// Opens `root` (a folder, or a `transforms.json` in one), holding out every `hold_out`-th
    /// view (0: none).
    pub fn open(root: &Path, hold_out: usize) -> Result<Self, DatasetError> {
        let (root, transforms) = if root.is_file() {
            (
                root.parent().unwrap_or(Path::new(".")).to_owned(),
                Some(root.to_owned()),
            )
        } else {
            (root.to_owned(), None)
        };
        let transforms =
            transforms.or_else(|| Some(root.join("transforms.json")).filter(|p| p.exists()));
        let sparse = [root.join("sparse/0"), root.join("sparse"), root.clone()]
            .into_iter()
            .find(|d| d.join("cameras.bin").exists() || d.join("cameras.txt").exists());
        let (kind, mut views, points) = if let Some(json) = transforms {
            (
                DatasetKind::Transforms,
                transforms_views(&json)?,
                Vec::new(),
            )
        } else if let Some(dir) = sparse {
            let (views, points) = colmap_views(&root, &dir)?;
            (DatasetKind::Colmap, views, points)
        } else if root.join("poses_bounds.npy").exists() {
            (DatasetKind::Llff, llff_views(&root)?, Vec::new())
        } else {
            return Err(fail(
                &root,
                "not a dataset: no transforms.json, COLMAP sparse model (sparse/0/cameras.bin|txt) or poses_bounds.npy",
            ));
        };
        if views.is_empty() {
            return Err(fail(&root, "the dataset has no views"));
        }
        views.sort_by(|a, b| {
            a.path
                .file_name()
                .cmp(&b.path.file_name())
                .then(a.path.cmp(&b.path))
        });
        for (i, v) in views.iter_mut().enumerate() {
            v.split = if hold_out > 0 && i % hold_out == 0 {
                Split::Test
            } else {
                Split::Train
            };
        }
        Ok(Self {
            root,
            kind,
            views,
            points,
        })
    }

    /// Views of one split.
    pub fn split(&self, split: Split) -> impl Iterator<Item = &DatasetView> {
        self.views.iter().filter(move |v| v.split == split)
    }
}

fn with_image_extension(path: PathBuf) -> PathBuf {
    if path.extension().is_some() || path.exists() {
        return path;
    }
    ["png", "jpg", "jpeg", "JPG", "PNG"]
        .iter()
        .map(|e| path.with_extension(e))
        .find(|p| p.exists())
        .unwrap_or(path)
}

fn transforms_views(json: &Path) -> Result<Vec<DatasetView>, DatasetError> {
    let dir = json.parent().unwrap_or(Path::new("."));
    let views = read_transforms(json).map_err(|e| fail(json, e.to_string()))?;
    views
        .into_iter()
        .enumerate()
        .map(|(i, v)| {
            let rel = v
                .view
                .file_path
                .clone()
                .ok_or_else(|| fail(json, format!("frame {i} has no file_path")))?;
            Ok(DatasetView {
                path: with_image_extension(dir.join(rel)),
                camera: v.camera,
                distortion: v.view.distortion,
                split: Split::Train,
            })
        })
        .collect()
}

type Points = Vec<(DVec3, [u8; 3])>;

fn colmap_views(root: &Path, sparse: &Path) -> Result<(Vec<DatasetView>, Points), DatasetError> {
    let model = colmap::read_model(sparse).map_err(|e| fail(&e.path, e.error.to_string()))?;
    let images = root.join("images");
    let views = model
        .images
        .iter()
        .map(|im| {
            let cam = model
                .cameras
                .iter()
                .find(|c| c.id == im.camera_id)
                .ok_or_else(|| {
                    fail(
                        sparse,
                        format!(
                            "image {} names camera {}, which is not in cameras",
                            im.name, im.camera_id
                        ),
                    )
                })?;
            let k = cam.intrinsics().map_err(|e| fail(sparse, e.to_string()))?;
            let [w, x, y, z] = im.rotation;
            let q = DQuat::from_xyzw(x, y, z, w);
            if !q.is_finite() || (q.length() - 1.0).abs() > 1e-3 {
                return Err(fail(
                    sparse,
                    format!("image {}: rotation is not a unit quaternion", im.name),
                ));
            }
            let pose =
                DMat4::from_rotation_translation(q.normalize(), DVec3::from_array(im.translation));
            let camera = Camera {
                fx: k.focal[0],
                fy: k.focal[1],
                cx: k.principal[0],
                cy: k.principal[1],
                width: cam.width,
                height: cam.height,
                world_to_camera: pose,
            };
            camera
                .validate()
                .map_err(|e| fail(sparse, format!("image {}: {e}", im.name)))?;
            Ok(DatasetView {
                path: images.join(&im.name),
                camera,
                distortion: k.distortion,
                split: Split::Train,
            })
        })
        .collect::<Result<_, _>>()?;
    let points = model
        .points
        .iter()
        .map(|p| (DVec3::from_array(p.position), p.color))
        .collect();
    Ok((views, points))
}

fn llff_views(root: &Path) -> Result<Vec<DatasetView>, DatasetError> {
    llff_views_with(root, |count| llff_photos(root, count))
}

/// The cameras of `root/poses_bounds.npy`, one per photo that `photos` lists for their count
/// (in pose order; the photo's size sets the intrinsics' scale).
pub(crate) fn llff_views_with(
    root: &Path,
    photos: impl FnOnce(usize) -> Result<Vec<PathBuf>, DatasetError>,
) -> Result<Vec<DatasetView>, DatasetError> {
    let npy = root.join("poses_bounds.npy");
    let data = std::fs::read(&npy).map_err(|e| fail(&npy, e.to_string()))?;
    let cameras = llff::parse_poses_bounds(&data).map_err(|e| fail(&npy, e.to_string()))?;
    let photos = photos(cameras.len())?;
    cameras
        .iter()
        .zip(photos)
        .map(|(c, path)| {
            let (w, h) = image_size(&path)?;
            // hwf is for the full-size capture; downscaled image folders scale the focal length.
            let scale = w as f64 / c.width;
            let m = c.camera_to_world;
            let c2w = DMat4::from_cols(
                DVec4::new(m[0][0], m[1][0], m[2][0], 0.0),
                DVec4::new(m[0][1], m[1][1], m[2][1], 0.0),
                DVec4::new(m[0][2], m[1][2], m[2][2], 0.0),
                DVec4::new(m[0][3], m[1][3], m[2][3], 1.0),
            );
            let c2w = orthonormalized(c2w)
                .ok_or_else(|| fail(&npy, format!("{}: pose is not a rotation", path.display())))?;
            let camera = Camera {
                fx: c.focal * scale,
                fy: c.focal * scale,
                cx: 0.5 * w as f64 - 0.5,
                cy: 0.5 * h as f64 - 0.5,
                width: w,
                height: h,
                world_to_camera: c2w.inverse(),
            };
            camera.validate().map_err(|e| fail(&npy, e.to_string()))?;
            Ok(DatasetView {
                path,
                camera,
                distortion: [0.0; 4],
                split: Split::Train,
            })
        })
        .collect()
}

/// The LLFF photos: `images/` in name order, or N3DV's per-camera frame folders (`cam00/…`,
/// first frame of each).
fn llff_photos(root: &Path, count: usize) -> Result<Vec<PathBuf>, DatasetError> {
    let list = image_files;
    let images = list(&root.join("images"));
    if !images.is_empty() {
        if images.len() != count {
            return Err(fail(
                &root.join("images"),
                format!("{} images for {count} poses", images.len()),
            ));
        }
        return Ok(images);
    }
    let mut cams: Vec<PathBuf> = std::fs::read_dir(root)
        .map_err(|e| fail(root, e.to_string()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("cam"))
        })
        .collect();
    cams.sort();
    let folders: Vec<PathBuf> = cams.iter().filter(|p| p.is_dir()).cloned().collect();
    if folders.len() == count {
        return folders
            .iter()
            .map(|f| {
                list(f)
                    .into_iter()
                    .next()
                    .ok_or_else(|| fail(f, "no frames in this camera folder"))
            })
            .collect();
    }
    if cams
        .iter()
        .any(|p| p.extension().is_some_and(|e| e == "mp4"))
    {
        return Err(fail(
            root,
            "per-camera videos need frames first: for v in cam*.mp4; do mkdir -p ${v%.mp4}; ffmpeg -i $v ${v%.mp4}/%04d.png; done",
        ));
    }
    Err(fail(
        root,
        format!("no images/ folder or {count} per-camera frame folders"),
    ))
}

/// The PNG and JPEG files of `dir` in file-name order (none if it cannot be read).
pub(crate) fn image_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    v.retain(|p| {
        p.is_file()
            && p.extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| ["png", "jpg", "jpeg"].contains(&e.to_ascii_lowercase().as_str()))
    });
    v.sort();
    v
}

fn image_size(path: &Path) -> Result<(u32, u32), DatasetError> {
    let img = RgbImage::read(path)?;
    Ok((img.width, img.height))
}
