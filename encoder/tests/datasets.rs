//! Dataset loading: the real fox photos (transforms.json with lens distortion), and small COLMAP
//! and LLFF folders written here; bad folders fail naming the file.

use std::path::{Path, PathBuf};

use splatcast_encoder::datasets::{Dataset, DatasetKind, Split};

fn data(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/data")
        .join(rel)
}

fn write_png(path: &Path, width: u32, height: u32) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let file = std::fs::File::create(path).unwrap();
    let mut enc = png::Encoder::new(std::io::BufWriter::new(file), width, height);
    enc.set_color(png::ColorType::Rgb);
    enc.set_depth(png::BitDepth::Eight);
    let pixels: Vec<u8> = (0..width * height * 3).map(|i| (i % 251) as u8).collect();
    enc.write_header()
        .unwrap()
        .write_image_data(&pixels)
        .unwrap();
}

#[test]
fn fox_photos_load_undistorted_with_the_protocol_split() {
    let ds = Dataset::open(&data("mv_fox_instant_ngp"), 8).unwrap();
    assert_eq!(ds.kind, DatasetKind::Transforms);
    assert_eq!(ds.views.len(), 67);
    assert_eq!(ds.split(Split::Test).count(), 9);
    assert_eq!(ds.split(Split::Train).count(), 58);
    let names: Vec<_> = ds
        .views
        .iter()
        .map(|v| v.path.file_name().unwrap().to_owned())
        .collect();
    assert!(names.windows(2).all(|w| w[0] < w[1]), "sorted by file name");
    assert_eq!(ds.views[0].split, Split::Test);
    let (camera, image) = ds.views[3].load().unwrap();
    assert_eq!((image.width, image.height), (540, 960));
    // Alpha 0 zooms in slightly: a longer focal length than the lens's.
    assert!(camera.fx > ds.views[3].camera.fx && (camera.fx - 695.38).abs() < 0.01);
    let mean = image.data.iter().map(|&v| v as f64).sum::<f64>() / image.data.len() as f64;
    assert!(mean > 20.0 && mean < 235.0, "a real photo: mean {mean}");
}

#[test]
fn colmap_text_model_with_points() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::create_dir_all(root.join("sparse/0")).unwrap();
    std::fs::write(
        root.join("sparse/0/cameras.txt"),
        "1 PINHOLE 32 24 30 30 16 12\n2 SIMPLE_RADIAL 16 16 20 8 8 0.01\n",
    )
    .unwrap();
    std::fs::write(
        root.join("sparse/0/images.txt"),
        "1 1 0 0 0 0 0 3 1 b.png\n\n2 0.7071067811865476 0 0.7071067811865476 0 0 0 3 2 a.png\n10 10 1\n",
    )
    .unwrap();
    std::fs::write(
        root.join("sparse/0/points3D.txt"),
        "1 0.1 0.2 0.3 200 100 50 0.4 1 0\n",
    )
    .unwrap();
    write_png(&root.join("images/a.png"), 16, 16);
    write_png(&root.join("images/b.png"), 32, 24);
    let ds = Dataset::open(root, 0).unwrap();
    assert_eq!(ds.kind, DatasetKind::Colmap);
    assert_eq!(ds.views.len(), 2);
    assert!(ds.views[0].path.ends_with("a.png"), "sorted by name");
    assert_eq!(ds.points.len(), 1);
    assert_eq!(ds.points[0].1, [200, 100, 50]);
    // Image b is at the origin of its camera, 3 units behind the world origin.
    let b = &ds.views[1].camera;
    assert!((b.world_to_camera.transform_point3(glam::DVec3::ZERO).z - 3.0).abs() < 1e-12);
    assert_eq!(ds.views[0].distortion, [0.01, 0.0, 0.0, 0.0]);
    for v in &ds.views {
        let (cam, img) = v.load().unwrap();
        assert_eq!((img.width, img.height), (cam.width, cam.height));
    }
    // A photo whose size disagrees with its intrinsics.
    write_png(&root.join("images/b.png"), 20, 20);
    let err = ds.views[1].load().unwrap_err().to_string();
    assert!(err.contains("b.png") && err.contains("20x20"), "{err}");
}

#[test]
fn llff_folders_and_n3dv_videos() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let pose = |tx: f64| {
        [
            0.0, 1.0, 0.0, tx, 48.0, 1.0, 0.0, 0.0, 0.0, 64.0, 0.0, 0.0, -1.0, 0.0, 100.0, 0.5, 9.0,
        ]
    };
    std::fs::write(
        root.join("poses_bounds.npy"),
        splatcast_protocol::llff::write_npy(2, 17, &[pose(0.0), pose(1.0)].concat()),
    )
    .unwrap();
    // N3DV: per-camera videos only → a message saying what to run.
    std::fs::write(root.join("cam00.mp4"), b"").unwrap();
    std::fs::write(root.join("cam01.mp4"), b"").unwrap();
    let err = Dataset::open(root, 8).unwrap_err().to_string();
    assert!(err.contains("ffmpeg"), "{err}");
    // Frames extracted at half size: focal halves.
    write_png(&root.join("cam00/0001.png"), 32, 24);
    write_png(&root.join("cam01/0001.png"), 32, 24);
    let ds = Dataset::open(root, 8).unwrap();
    assert_eq!(ds.kind, DatasetKind::Llff);
    assert_eq!(ds.views.len(), 2);
    assert!((ds.views[0].camera.fx - 50.0).abs() < 1e-12);
    let centre = ds.views[1].camera.position();
    assert!((centre - glam::DVec3::new(1.0, 0.0, 0.0)).length() < 1e-12);
}

#[test]
fn folders_in_no_format_or_with_missing_photos_fail_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let err = Dataset::open(dir.path(), 8).unwrap_err().to_string();
    assert!(err.contains("not a dataset"), "{err}");
    std::fs::write(
        dir.path().join("transforms.json"),
        r#"{"camera_angle_x": 1.0, "w": 8, "h": 8, "frames": [{"file_path": "missing.png", "transform_matrix": [[1,0,0,0],[0,1,0,0],[0,0,1,0],[0,0,0,1]]}]}"#,
    )
    .unwrap();
    let ds = Dataset::open(dir.path(), 8).unwrap();
    let err = ds.views[0].load().unwrap_err().to_string();
    assert!(err.contains("missing.png"), "{err}");
    std::fs::write(
        dir.path().join("transforms.json"),
        r#"{"camera_angle_x": 1.0, "w": 8, "h": 8, "frames": [{"file_path": "x.png", "transform_matrix": [[2,0,0,0],[0,1,0,0],[0,0,1,0],[0,0,0,1]]}]}"#,
    )
    .unwrap();
    let err = Dataset::open(dir.path(), 8).unwrap_err().to_string();
    assert!(
        err.contains("transforms.json") && err.contains("rotation"),
        "{err}"
    );
}
