//! The synthetic capture of the animated fox: joints project onto the rendered model through
//! the written cameras (both `poses_bounds.npy` and each frame's `transforms.json`, read by the
//! trainer's own loaders), frames are non-empty and move, and two runs give the same bytes.

use std::path::{Path, PathBuf};

use glam::DVec3;
use splatcast_capture::rig::Layout;
use splatcast_capture::{Background, CaptureOptions, RigSpec, capture};
use splatcast_encoder::datasets::{Dataset, RgbImage};
use splatcast_shaders::Camera;

fn model(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/data/gltf_animated")
        .join(name)
}

fn options(output: &Path) -> CaptureOptions {
    CaptureOptions {
        model: model("Fox.glb"),
        clip: Some("Run".into()),
        rig: RigSpec {
            layout: Layout::Ring,
            count: 4,
            held_out: 1,
            radius: None,
            height: None,
            look_at: None,
            fov_y: 40.0,
            size: (128, 96),
        },
        fps: 10.0,
        duration: Some(0.3),
        start: 0.0,
        background: Background::Plain([0.2, 0.3, 0.4]),
        masks: true,
        live: false,
        output: output.to_owned(),
    }
}

/// Every file under `dir`, relative, sorted, with its bytes.
fn files(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push((
                    p.strip_prefix(dir).unwrap().to_owned(),
                    std::fs::read(&p).unwrap(),
                ));
            }
        }
    }
    out.sort();
    out
}

/// A PNG's width, height and samples, which must be of colour type `kind`.
fn read_png(path: &Path, kind: png::ColorType) -> (u32, u32, Vec<u8>) {
    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(path).unwrap()));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    assert_eq!(info.color_type, kind);
    (info.width, info.height, buf)
}

fn gray(path: &Path) -> (u32, u32, Vec<u8>) {
    read_png(path, png::ColorType::Grayscale)
}

fn project(c: &Camera, p: DVec3) -> Option<(f64, f64)> {
    let t = c.world_to_camera.transform_point3(p);
    (t.z > 0.0).then(|| (c.fx * t.x / t.z + c.cx, c.fy * t.y / t.z + c.cy))
}

/// Share of joints that land on the mask, and the largest distance (px) of any joint to it.
fn joints_on_mask(dataset: &Dataset, masks: &Path, frame: usize, joints: &[DVec3]) -> (f64, f64) {
    let (mut on, mut all, mut worst) = (0usize, 0usize, 0f64);
    for v in &dataset.views {
        let cam = v.path.parent().unwrap().file_name().unwrap();
        let (w, h, mask) = gray(&masks.join(cam).join(format!("{frame:04}.png")));
        for &p in joints {
            let (u, vv) = project(&v.camera, p).expect("in front of the camera");
            let (x, y) = (u.round() as i64, vv.round() as i64);
            assert!(
                (0..w as i64).contains(&x) && (0..h as i64).contains(&y),
                "joint off image"
            );
            all += 1;
            if mask[(y * w as i64 + x) as usize] > 0 {
                on += 1;
                continue;
            }
            let nearest = (0..h as i64)
                .flat_map(|yy| (0..w as i64).map(move |xx| (xx, yy)))
                .filter(|&(xx, yy)| mask[(yy * w as i64 + xx) as usize] > 0)
                .map(|(xx, yy)| (((xx - x).pow(2) + (yy - y).pow(2)) as f64).sqrt())
                .fold(f64::INFINITY, f64::min);
            worst = worst.max(nearest);
        }
    }
    (on as f64 / all as f64, worst)
}

/// Joint names and positions from a `joints/NNNN.json`.
fn parse_joints(text: &str) -> Vec<(String, glam::Vec3)> {
    let value: serde_json::Value = serde_json::from_str(text).unwrap();
    value["joints"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| {
            let p: Vec<f32> = j["position"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap() as f32)
                .collect();
            (
                j["name"].as_str().unwrap().to_owned(),
                glam::Vec3::from_slice(&p),
            )
        })
        .collect()
}

/// The world positions of the joints of `frame` that are part of the body (not `helper`s).
fn body_joints(out: &Path, frame: usize, helper: impl Fn(&str) -> bool) -> Vec<DVec3> {
    let text = std::fs::read_to_string(out.join(format!("joints/{frame:04}.json"))).unwrap();
    parse_joints(&text)
        .into_iter()
        .filter(|(name, _)| !helper(name))
        .map(|(_, p)| p.as_dvec3())
        .collect()
}

/// Every body joint of every frame lands on the rendered model, through each frame's
/// transforms.json as the trainer's loader reads it.
fn check_joints(out: &Path, frames: usize, helper: impl Fn(&str) -> bool + Copy) {
    for frame in 0..frames {
        let joints = body_joints(out, frame, helper);
        assert!(joints.len() > 10, "a skeleton");
        let per_frame =
            Dataset::open(&out.join(format!("frames/{frame:04}/transforms.json")), 0).unwrap();
        let (share, worst) = joints_on_mask(&per_frame, &out.join("masks"), frame, &joints);
        // At 128×96 a joint of a thin limb can sit on a silhouette pixel's edge.
        assert!(
            share >= 0.95,
            "frame {frame}: only {share} of the joints land on the model"
        );
        assert!(
            worst <= 1.5,
            "frame {frame}: a joint lands {worst} px off the model"
        );
    }
}

#[test]
#[ignore = "needs Vulkan (mesa-vulkan-drivers); .ci/run installs it"]
fn robot_joints_land_on_the_robot() {
    let dir = tempfile::tempdir().unwrap();
    let mut o = options(dir.path());
    o.model = model("RobotExpressive.glb");
    o.clip = None;
    o.rig.layout = Layout::Dome;
    let report = capture(&o, |_, _| {}).unwrap();
    assert_eq!(report.clip.as_deref(), Some("Dance"));
    // "Bone" is the root on the floor, the pole targets steer the knees from outside the body.
    check_joints(dir.path(), 3, |name| {
        name == "Bone" || name.starts_with("PoleTarget")
    });
}

#[test]
#[ignore = "needs Vulkan (mesa-vulkan-drivers); .ci/run installs it"]
fn fox_capture_has_exact_cameras_moves_and_repeats_bit_for_bit() {
    let first = tempfile::tempdir().unwrap();
    let report = capture(&options(first.path()), |_, _| {}).unwrap();
    assert_eq!(report.frames, 3);
    assert_eq!(report.cameras.len(), 5);
    assert_eq!(report.clip.as_deref(), Some("Run"));
    let out = first.path();

    // The trainer's LLFF/N3DV loader reads the rig (first frame of each camera folder), and the
    // held-out camera separately.
    let train = Dataset::open(out, 0).unwrap();
    assert_eq!(train.views.len(), 4);
    assert_eq!(
        Dataset::open(&out.join("heldout"), 0).unwrap().views.len(),
        1
    );

    // Root joints stand on the ground under the fox, not inside it.
    check_joints(out, 3, |name| name.to_lowercase().contains("root"));
    let (share, _) = joints_on_mask(
        &train,
        &out.join("masks"),
        0,
        &body_joints(out, 0, |n| n.to_lowercase().contains("root")),
    );
    assert!(share >= 0.95, "poses_bounds.npy cameras: {share}");

    // Images: the model covers part of the view, and it moves between frames.
    let (w, h, mask) = gray(&out.join("masks/cam00/0000.png"));
    let covered = mask.iter().filter(|&&a| a > 0).count() as f64 / (w * h) as f64;
    assert!((0.02..0.9).contains(&covered), "coverage {covered}");
    let a = RgbImage::read(&out.join("cam00/0000.png")).unwrap();
    let b = RgbImage::read(&out.join("cam00/0002.png")).unwrap();
    let changed = a.data.iter().zip(&b.data).filter(|(x, y)| x != y).count();
    assert!(
        changed > a.data.len() / 200,
        "frames 0 and 2 are too alike: {changed}"
    );
    // Background pixels are the background colour (linear 0.2, 0.3, 0.4 in sRGB bytes).
    let corner = &a.data[..3];
    assert!(
        corner
            .iter()
            .zip([124, 149, 170])
            .all(|(&c, e)| (c as i32 - e).abs() <= 2),
        "{corner:?}"
    );

    // Same arguments, same bytes.
    let second = tempfile::tempdir().unwrap();
    capture(&options(second.path()), |_, _| {}).unwrap();
    let (x, y) = (files(out), files(second.path()));
    assert_eq!(x.len(), y.len());
    for ((pa, da), (pb, db)) in x.iter().zip(&y) {
        assert_eq!(pa, pb);
        assert!(da == db, "{} differs between runs", pa.display());
    }
}

#[test]
#[ignore = "needs Vulkan (mesa-vulkan-drivers); .ci/run installs it"]
fn bad_requests_fail_with_a_message() {
    let dir = tempfile::tempdir().unwrap();
    let mut o = options(dir.path());
    o.model = dir.path().join("missing.glb");
    let e = capture(&o, |_, _| {}).unwrap_err().to_string();
    assert!(
        e.contains("missing.glb") && e.contains("no such file"),
        "{e}"
    );
    let mut o = options(dir.path());
    o.background = Background::Checker;
    assert!(
        capture(&o, |_, _| {})
            .unwrap_err()
            .to_string()
            .contains("plain background")
    );
    let mut o = options(dir.path());
    o.clip = Some("Fly".into());
    let e = capture(&o, |_, _| {}).unwrap_err().to_string();
    assert!(e.contains("no clip Fly") && e.contains("Run"), "{e}");
    let bogus = dir.path().join("bogus.glb");
    std::fs::write(&bogus, b"not a gltf").unwrap();
    let mut o = options(dir.path());
    o.model = bogus;
    let e = capture(&o, |_, _| {}).unwrap_err().to_string();
    assert!(e.contains("bogus.glb"), "{e}");
}

#[test]
#[ignore = "needs Vulkan (mesa-vulkan-drivers); .ci/run installs it"]
fn live_mode_paces_frames_at_the_frame_rate() {
    let dir = tempfile::tempdir().unwrap();
    let mut o = options(dir.path());
    o.live = true;
    o.fps = 8.0;
    o.duration = Some(0.75);
    o.masks = false;
    let mut seen = Vec::new();
    let start = std::time::Instant::now();
    let report = capture(&o, |done, all| seen.push((done, all, start.elapsed()))).unwrap();
    assert_eq!(report.frames, 6);
    assert_eq!(seen.len(), 6);
    // Frame k starts no earlier than k / fps after the first.
    let first = seen[0].2;
    for (k, (done, all, at)) in seen.iter().enumerate() {
        assert_eq!((*done, *all), (k + 1, 6));
        assert!(at.saturating_sub(first).as_secs_f64() >= k as f64 / 8.0 - 0.01);
    }
    assert!(!dir.path().join("masks").exists());
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

fn rgb(path: &Path) -> Vec<[u8; 3]> {
    let (_, _, buf) = read_png(path, png::ColorType::Rgb);
    buf.chunks_exact(3).map(|p| [p[0], p[1], p[2]]).collect()
}

/// Real models carry JPEG textures: a quad textured with one renders in the texture's colour.
/// A model whose texture is missing fails as a user sees it: non-zero exit, one line that
/// names the missing file.
#[test]
#[ignore = "needs Vulkan (mesa-vulkan-drivers); .ci/run installs it"]
fn jpeg_textures_load_and_a_missing_texture_fails_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let mut o = options(dir.path());
    o.model = fixture("jpeg_quad.gltf");
    o.clip = None;
    o.fps = 2.0;
    o.duration = Some(0.5);
    o.masks = false;
    o.rig.held_out = 0;
    capture(&o, |_, _| {}).unwrap();
    // The JPEG is sRGB (230, 120, 30); the material is unlit and tonemapping is off.
    let textured = (0..o.rig.count)
        .flat_map(|c| rgb(&dir.path().join(format!("cam{c:02}/0000.png"))))
        .filter(|p| {
            p.iter()
                .zip([230i32, 120, 30])
                .all(|(&v, want)| (v as i32 - want).abs() <= 12)
        })
        .count();
    assert!(textured > 100, "{textured} pixels show the texture");

    let out = tempfile::tempdir().unwrap();
    let run = std::process::Command::new(env!("CARGO_BIN_EXE_splatcast-capture"))
        .arg(fixture("missing_texture.gltf"))
        .args(["--cameras", "2", "--held-out", "0", "--size", "64x48", "-o"])
        .arg(out.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(!run.status.success());
    // Mesa's Vulkan window-system code may add its own lines about XDG_RUNTIME_DIR; ours is one.
    let ours: Vec<&str> = stderr
        .lines()
        .filter(|l| !l.contains("XDG_RUNTIME_DIR"))
        .collect();
    assert_eq!(ours.len(), 1, "{stderr}");
    assert!(ours[0].starts_with("splatcast-capture: "), "{stderr}");
    assert!(ours[0].contains("not_there.jpg"), "{stderr}");
}
