//! Multi-view video: a fixed rig of calibrated cameras filming a performance, one photo per
//! camera per frame. Read from the N3DV / LLFF layout (`poses_bounds.npy` + `cam00/0000.png` …
//! frame folders, or `cam00.mp4` … videos that ffmpeg decodes), from nerfstudio per-frame
//! `frames/0000/transforms.json`, and from `splatcast-capture`'s output (both layouts, held-out
//! cameras in `heldout/`). Without a `heldout/` rig, N3DV's convention holds out `cam00`.
//!
//! Every camera must have every frame: a camera with a missing frame or fewer frames is an
//! error naming its folder and the first missing frame (never a silent shift of the sequence).
//! Photos are checked against their camera's size when they are loaded.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::datasets::{
    Dataset, DatasetError, DatasetKind, DatasetView, Split, fail, image_files, llff_views_with,
};

/// A multi-view video data set.
#[derive(Debug)]
pub struct MultiViewVideo {
    /// The folder.
    pub root: PathBuf,
    /// Frames per camera.
    pub frames: usize,
    /// Frame rate, when the data set says (`capture.json`).
    pub fps: Option<f64>,
    kind: DatasetKind,
    /// Per camera: its frame-0 view and its frames' photos.
    cameras: Vec<(DatasetView, Vec<PathBuf>)>,
    /// Videos decoded to frames live here while the data set is open.
    _decoded: Option<tempfile::TempDir>,
}

impl MultiViewVideo {
    /// True when `path` looks like a multi-view video (rather than a Gaussian sequence or a
    /// single-time photo set): per-camera frame folders with more than one frame or per-camera
    /// videos beside `poses_bounds.npy`, or per-frame `frames/*/transforms.json`.
    pub fn detect(path: &Path) -> bool {
        if !path.is_dir() {
            return false;
        }
        if path.join("frames/0000/transforms.json").exists() {
            return true;
        }
        path.join("poses_bounds.npy").exists()
            && camera_entries(path).iter().any(|p| {
                p.extension().is_some_and(|e| e == "mp4")
                    || (p.is_dir() && image_files(p).len() > 1)
            })
    }

    /// Opens the data set at `root`.
    pub fn open(root: &Path) -> Result<Self, DatasetError> {
        let fps = read_fps(root);
        if root.join("poses_bounds.npy").exists() {
            let (folders, decoded) = camera_folders(root)?;
            let mut cameras = rig(root, &folders, Split::Train)?;
            let held = root.join("heldout");
            if held.join("poses_bounds.npy").exists() {
                let (folders, _) = camera_folders(&held)?;
                cameras.extend(rig(&held, &folders, Split::Test)?);
            } else if cameras.len() > 2 {
                // N3DV holds out its first camera.
                cameras[0].0.split = Split::Test;
            }
            return Self::checked(root, DatasetKind::Llff, cameras, fps, decoded);
        }
        let frames = per_frame_transforms(root);
        if frames.is_empty() {
            return Err(fail(
                root,
                "not a multi-view video: no poses_bounds.npy with cam00/ frame folders or cam00.mp4 videos, and no frames/0000/transforms.json",
            ));
        }
        let mut cameras = transforms_rig(&frames, Split::Train)?;
        let held = per_frame_transforms(&root.join("heldout"));
        if !held.is_empty() {
            cameras.extend(transforms_rig(&held, Split::Test)?);
        } else if cameras.len() > 2 {
            cameras[0].0.split = Split::Test;
        }
        Self::checked(root, DatasetKind::Transforms, cameras, fps, None)
    }

    fn checked(
        root: &Path,
        kind: DatasetKind,
        cameras: Vec<(DatasetView, Vec<PathBuf>)>,
        fps: Option<f64>,
        decoded: Option<tempfile::TempDir>,
    ) -> Result<Self, DatasetError> {
        let frames = cameras.iter().map(|(_, f)| f.len()).min().unwrap_or(0);
        if frames == 0 {
            return Err(fail(root, "the data set has no frames"));
        }
        if !cameras.iter().any(|(v, _)| v.split == Split::Train) {
            return Err(fail(root, "the data set has no training cameras"));
        }
        Ok(Self {
            root: root.to_owned(),
            frames,
            fps,
            kind,
            cameras,
            _decoded: decoded,
        })
    }

    /// Training and held-out cameras.
    pub fn camera_counts(&self) -> (usize, usize) {
        let train = self
            .cameras
            .iter()
            .filter(|(v, _)| v.split == Split::Train)
            .count();
        (train, self.cameras.len() - train)
    }

    /// The views of frame `t` as a data set (training and held-out cameras).
    pub fn frame(&self, t: usize) -> Dataset {
        Dataset {
            root: self.root.clone(),
            kind: self.kind,
            views: self
                .cameras
                .iter()
                .filter_map(|(v, frames)| {
                    frames.get(t).map(|p| DatasetView {
                        path: p.clone(),
                        ..v.clone()
                    })
                })
                .collect(),
            points: Vec::new(),
        }
    }
}

fn read_fps(root: &Path) -> Option<f64> {
    let text = std::fs::read_to_string(root.join("capture.json")).ok()?;
    let value: serde_json::Value = serde_json::from_str(&text).ok()?;
    value
        .get("fps")?
        .as_f64()
        .filter(|f| f.is_finite() && *f > 0.0)
}

/// `cam*` entries of `root`, sorted.
fn camera_entries(root: &Path) -> Vec<PathBuf> {
    let mut cams: Vec<PathBuf> = std::fs::read_dir(root)
        .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    cams.retain(|p| {
        p.file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with("cam"))
    });
    cams.sort();
    cams
}

/// Per-camera frame folders; videos (`cam00.mp4`) are decoded with ffmpeg into a temporary
/// folder first.
fn camera_folders(root: &Path) -> Result<(Vec<PathBuf>, Option<tempfile::TempDir>), DatasetError> {
    let entries = camera_entries(root);
    let folders: Vec<PathBuf> = entries.iter().filter(|p| p.is_dir()).cloned().collect();
    if !folders.is_empty() {
        return Ok((folders, None));
    }
    let videos: Vec<&PathBuf> = entries
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "mp4"))
        .collect();
    if videos.is_empty() {
        return Err(fail(root, "no cam00/ frame folders or cam00.mp4 videos"));
    }
    let dir = tempfile::tempdir().map_err(|e| fail(root, format!("temporary folder: {e}")))?;
    let mut out = Vec::new();
    for video in videos {
        let name = video.file_stem().unwrap_or_default();
        let folder = dir.path().join(name);
        std::fs::create_dir_all(&folder).map_err(|e| fail(&folder, e.to_string()))?;
        let status = Command::new("ffmpeg")
            .args(["-v", "error", "-nostdin", "-i"])
            .arg(video)
            .arg(folder.join("%04d.png"))
            .status()
            .map_err(|e| {
                fail(
                    video,
                    format!(
                        "decoding camera videos needs ffmpeg on PATH ({e}); install it (apt-get install ffmpeg) or extract the frames to {}/%04d.png",
                        name.to_string_lossy()
                    ),
                )
            })?;
        if !status.success() {
            return Err(fail(
                video,
                format!("ffmpeg could not decode it ({status})"),
            ));
        }
        out.push(folder);
    }
    Ok((out, Some(dir)))
}

/// The frame names every camera must have: those of the first camera. A camera missing one is
/// an error naming it.
fn check_frames(cameras: &[(PathBuf, Vec<PathBuf>)]) -> Result<(), DatasetError> {
    let Some((first_dir, first)) = cameras.first() else {
        return Ok(());
    };
    let names = |v: &[PathBuf]| -> Vec<String> {
        v.iter()
            .map(|p| {
                p.file_stem()
                    .map_or_else(String::new, |s| s.to_string_lossy().into_owned())
            })
            .collect()
    };
    let want = names(first);
    for (dir, frames) in cameras {
        let got = names(frames);
        if got == want {
            continue;
        }
        let message = match want.iter().find(|n| !got.contains(n)) {
            Some(missing) => format!(
                "frame {missing} is missing ({} frames, {} has {})",
                got.len(),
                first_dir.display(),
                want.len()
            ),
            None => format!(
                "frame {} is not in {} ({} frames against {})",
                got.iter().find(|n| !want.contains(n)).map_or("?", |s| s),
                first_dir.display(),
                got.len(),
                want.len()
            ),
        };
        return Err(fail(dir, message));
    }
    Ok(())
}

/// The LLFF rig of `root`: one view per camera folder (poses from `poses_bounds.npy`), with each
/// folder's frames.
fn rig(
    root: &Path,
    folders: &[PathBuf],
    split: Split,
) -> Result<Vec<(DatasetView, Vec<PathBuf>)>, DatasetError> {
    let frames: Vec<(PathBuf, Vec<PathBuf>)> = folders
        .iter()
        .map(|f| (f.clone(), image_files(f)))
        .collect();
    if let Some((dir, _)) = frames.iter().find(|(_, v)| v.is_empty()) {
        return Err(fail(dir, "no frames in this camera folder"));
    }
    check_frames(&frames)?;
    let views = llff_views_with(root, |count| {
        if count != frames.len() {
            return Err(fail(
                &root.join("poses_bounds.npy"),
                format!("{count} poses for {} camera folders", frames.len()),
            ));
        }
        Ok(frames.iter().map(|(_, v)| v[0].clone()).collect())
    })?;
    Ok(views
        .into_iter()
        .zip(frames)
        .map(|(mut view, (_, photos))| {
            view.split = split;
            (view, photos)
        })
        .collect())
}

/// `root/frames/*/transforms.json` in frame order.
fn per_frame_transforms(root: &Path) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(root.join("frames"))
        .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    dirs.retain(|d| d.join("transforms.json").is_file());
    dirs.sort_by(|a, b| {
        splatcast_protocol::sequence::natural_cmp(
            &a.file_name().unwrap_or_default().to_string_lossy(),
            &b.file_name().unwrap_or_default().to_string_lossy(),
        )
    });
    dirs.into_iter()
        .map(|d| d.join("transforms.json"))
        .collect()
}

/// A rig from per-frame `transforms.json` files: every frame must list the same cameras (same
/// count, intrinsics and poses, in the same order) as the first.
fn transforms_rig(
    files: &[PathBuf],
    split: Split,
) -> Result<Vec<(DatasetView, Vec<PathBuf>)>, DatasetError> {
    let mut rig: Vec<(DatasetView, Vec<PathBuf>)> = Vec::new();
    for (t, file) in files.iter().enumerate() {
        let mut views = Dataset::open(file, 0)?.views;
        // `Dataset::open` sorts by file name, which is the frame's name for every camera.
        views.sort_by(|a, b| a.path.cmp(&b.path));
        if t == 0 {
            rig = views
                .into_iter()
                .map(|v| (v.clone(), vec![v.path]))
                .collect();
            for (v, _) in &mut rig {
                v.split = split;
            }
            continue;
        }
        if views.len() != rig.len() {
            return Err(fail(
                file,
                format!(
                    "{} cameras, frame 0 ({}) has {}",
                    views.len(),
                    files[0].display(),
                    rig.len()
                ),
            ));
        }
        for (i, ((first, photos), v)) in rig.iter_mut().zip(views).enumerate() {
            let (a, b) = (&first.camera, &v.camera);
            let moved = (a.world_to_camera - b.world_to_camera)
                .to_cols_array()
                .iter()
                .any(|d| d.abs() > 1e-5);
            if (a.width, a.height) != (b.width, b.height)
                || (a.fx - b.fx).abs() > 1e-6 * a.fx.abs().max(1.0)
                || moved
            {
                return Err(fail(
                    file,
                    format!(
                        "camera {i} differs from frame 0 ({}): a multi-view video needs a fixed rig",
                        files[0].display()
                    ),
                ));
            }
            photos.push(v.path);
        }
    }
    Ok(rig)
}
