//! The learnt encoder end to end on a multi-view video rendered here: a known scene whose one
//! part moves, filmed by a ring of cameras (two held out) in the N3DV / LLFF layout and as
//! per-frame transforms.json. The stream must decode, residual frames must leave most Gaussians
//! bit-identical, and the held-out cameras must see the motion. Broken data sets fail naming the
//! file.

use std::path::Path;

use glam::Vec3;
use splatcast_encoder::datasets::Split;
use splatcast_encoder::learn::{LearnEvent, LearnOptions, Refresh, learn};
use splatcast_encoder::multiview::MultiViewVideo;
use splatcast_encoder::quality::ViewScorer;
use splatcast_encoder::residual::ResidualOptions;
use splatcast_encoder::train::{TrainOptions, load_views};
use splatcast_protocol::av1::Rav1dDecoder;
use splatcast_protocol::gop::GopStart;
use splatcast_protocol::stream::StreamReader;
use splatcast_shaders::Camera;

mod common;

use common::{FRAMES, SIZE, poses_bounds, ring, write_png, write_video};

/// Options for a small, fast learning of the test video (SH 0, 10 fps): keyframe steps and
/// budget, residual steps, GOP length.
fn small(iterations: u32, max_gaussians: usize, residual: u32, gop: usize) -> LearnOptions {
    LearnOptions {
        keyframe: TrainOptions {
            iterations,
            max_gaussians,
            sh_degree: 0,
            report_every: iterations,
            ..TrainOptions::default()
        },
        residual: ResidualOptions {
            iterations: residual,
            ..ResidualOptions::default()
        },
        encode: splatcast_encoder::EncodeOptions {
            fps: 10.0,
            gop,
            ..Default::default()
        },
        ..LearnOptions::default()
    }
}

#[test]
fn a_multi_view_video_becomes_a_stream_with_sparse_residual_frames() {
    let dir = tempfile::tempdir().unwrap();
    write_video(dir.path());
    assert!(MultiViewVideo::detect(dir.path()));
    let video = MultiViewVideo::open(dir.path()).unwrap();
    assert_eq!(video.frames, FRAMES);
    assert_eq!(video.camera_counts(), (8, 2));
    assert_eq!(video.fps, Some(10.0));

    // Every Gaussian kept: this small budget leaves half of them faint and still, and the gates
    // must keep those bit-identical.
    let mut options = LearnOptions {
        refresh_iterations: 200,
        ..small(600, 400, 150, 3)
    };
    options.encode.prune_below = Some(0.0);
    let mut gops = 0;
    let learned = learn(&video, &options, Vec::new(), |e| {
        if let splatcast_encoder::learn::LearnEvent::Gop(_) = e {
            gops += 1;
        }
    })
    .unwrap();
    for f in &learned.frames {
        eprintln!("{f:?}");
    }
    assert_eq!(learned.frames.len(), FRAMES);
    assert!(gops >= 2, "GOP length 3 over 5 frames");
    let residual: Vec<_> = learned
        .frames
        .iter()
        .filter(|f| f.keyframe.is_none())
        .collect();
    assert!(!residual.is_empty());
    for f in &residual {
        assert!(
            f.moved < 0.9,
            "frame {}: most Gaussians stay bit-identical ({:.2} moved)",
            f.index,
            f.moved
        );
        assert!(f.moved > 0.0, "frame {}: something moves", f.index);
    }
    assert_eq!(learned.bytes as usize, learned.output.len());

    // The stream decodes to every frame, and the held-out cameras see the scene follow the
    // motion: each decoded frame matches its own photos better than the first frame's.
    let mut reader = StreamReader::open(std::io::Cursor::new(learned.output)).unwrap();
    let mut decoded = Vec::new();
    for g in 0..reader.gop_count() {
        decoded.extend(
            reader
                .read_gop(g, &mut Rav1dDecoder::new(1))
                .unwrap()
                .frames,
        );
    }
    assert_eq!(decoded.len(), FRAMES);
    let held = load_views(&video.frame(0), Split::Test, 1).unwrap();
    let scorer = ViewScorer::new(held.iter().map(|(c, _)| *c).collect(), Vec3::ZERO).unwrap();
    let photos = |t: usize| -> Vec<Vec<[f32; 3]>> {
        load_views(&video.frame(t), Split::Test, 1)
            .unwrap()
            .into_iter()
            .map(|(_, rgb)| rgb)
            .collect()
    };
    let last = FRAMES - 1;
    let own = scorer
        .score(&photos(last), &decoded[last], false)
        .unwrap()
        .psnr;
    let stale = scorer
        .score(&photos(last), &decoded[0], false)
        .unwrap()
        .psnr;
    let first = scorer.score(&photos(0), &decoded[0], false).unwrap().psnr;
    eprintln!("held-out: frame 0 {first:.2} dB, last {own:.2} dB (frame 0 against it {stale:.2})");
    assert!(first > 18.0, "keyframe held-out PSNR {first:.2}");
    assert!(
        own > stale + 1.0,
        "the motion is learnt: {own:.2} vs {stale:.2}"
    );
    assert!(
        own > first - 4.0,
        "quality holds over the GOPs: {own:.2} vs {first:.2}"
    );
}

#[test]
fn a_refresh_that_falls_short_is_trained_from_scratch() {
    let dir = tempfile::tempdir().unwrap();
    write_video(dir.path());
    let mut video = MultiViewVideo::open(dir.path()).unwrap();
    video.frames = 2;
    let options = |refresh, quality_drop| LearnOptions {
        refresh_iterations: 10,
        refresh,
        quality_drop,
        ..small(40, 100, ResidualOptions::default().iterations, 1)
    };
    let steps = |refresh, quality_drop| {
        let learned = learn(&video, &options(refresh, quality_drop), Vec::new(), |_| {}).unwrap();
        learned
            .frames
            .iter()
            .map(|f| f.iterations)
            .collect::<Vec<_>>()
    };
    // A refresh can never come within -100 dB of the anchor: it is followed by a full training.
    assert_eq!(steps(Refresh::Auto, -100.0), [40, 50]);
    // Within 100 dB it is kept; `Resume` and `Scratch` do what they say.
    assert_eq!(steps(Refresh::Auto, 100.0), [40, 10]);
    assert_eq!(steps(Refresh::Resume, -100.0), [40, 10]);
    assert_eq!(steps(Refresh::Scratch, 100.0), [40, 40]);
}

#[test]
fn online_refreshes_fit_the_frame_period() {
    // Live at 10 fps: after the first residual frame has measured the pace, a refresh keyframe
    // is resumed (never from scratch, whatever `--refresh` says) with the steps a period leaves.
    let dir = tempfile::tempdir().unwrap();
    write_video(dir.path());
    let video = MultiViewVideo::open(dir.path()).unwrap();
    let options = LearnOptions {
        refresh_iterations: 100_000,
        refresh: Refresh::Scratch,
        quality_drop: 100.0,
        live_budget: Some(0.1),
        ..small(40, 100, 50, 3)
    };
    let learned = learn(&video, &options, Vec::new(), |_| {}).unwrap();
    let steps: Vec<u32> = learned.frames.iter().map(|f| f.iterations).collect();
    eprintln!("{steps:?}");
    assert_eq!(learned.frames[3].keyframe, Some(GopStart::Length));
    // Resumed: only trainings from scratch (and `auto`) score the keyframe before the codec.
    assert_eq!(learned.frames[3].trained_psnr, None);
    // The first residual frame has no pace yet; the rest, and the refresh, fit a period.
    for t in [2, 3, 4] {
        assert!(
            (1..100_000).contains(&steps[t]),
            "frame {t}: {} steps in a 0.1 s period",
            steps[t]
        );
    }
    // Online, frames are coded one by one into live GOPs; the file holds every frame, the
    // refresh starting the second GOP.
    let mut reader = StreamReader::open(std::io::Cursor::new(learned.output)).unwrap();
    let counts: Vec<usize> = (0..reader.gop_count())
        .map(|g| {
            reader
                .read_gop(g, &mut Rav1dDecoder::new(0))
                .unwrap()
                .frames
                .len()
        })
        .collect();
    assert_eq!(counts, [3, FRAMES - 3]);
}

#[test]
fn online_frames_are_read_ahead_learnt_once_they_arrive_never_refreshed_for_quality() {
    // At 2 fps a tiny residual frame takes far less than its 0.5 s period: frame t must still
    // not be done before it arrives, (t − 1) periods after the first keyframe.
    let dir = tempfile::tempdir().unwrap();
    write_video(dir.path());
    let video = MultiViewVideo::open(dir.path()).unwrap();
    // Every residual frame falls 100 dB short; online that starts no GOP (a refresh would get
    // no more steps than the residual frame had).
    let mut options = LearnOptions {
        quality_drop: -100.0,
        live_budget: Some(0.5),
        ..small(40, 100, 2, 30)
    };
    options.encode.fps = 2.0;
    let mut done = Vec::new();
    let learned = learn(&video, &options, Vec::new(), |e| {
        if let LearnEvent::Frame(..) = e {
            done.push(std::time::Instant::now());
        }
    })
    .unwrap();
    assert_eq!(done.len(), learned.frames.len());
    for (t, at) in done.iter().enumerate().skip(1) {
        let since = at.duration_since(done[0]).as_secs_f64();
        assert!(
            since >= (t - 1) as f64 * 0.5,
            "frame {t} done {since:.3} s in"
        );
    }
    assert!(learned.frames[1..].iter().all(|f| f.keyframe.is_none()));
}

#[test]
fn per_frame_transforms_and_broken_videos() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let gray = vec![128u8; (SIZE * SIZE * 3) as usize];
    // Per-frame nerfstudio files, images beside in camNN/ folders.
    for t in 0..3 {
        let frames: Vec<_> = (0..4)
            .map(|i| {
                write_png(&root.join(format!("cam{i:02}/{t:04}.png")), &gray);
                let c2w = ring(i).world_to_camera.inverse()
                    * glam::DMat4::from_diagonal(glam::DVec4::new(1.0, -1.0, -1.0, 1.0));
                let rows: Vec<[f64; 4]> = (0..4).map(|r| c2w.row(r).to_array()).collect();
                serde_json::json!({
                    "file_path": format!("../../cam{i:02}/{t:04}.png"),
                    "transform_matrix": rows,
                })
            })
            .collect();
        let fl = ring(0).fx;
        let json = serde_json::json!({
            "fl_x": fl, "fl_y": fl, "cx": SIZE as f64 / 2.0, "cy": SIZE as f64 / 2.0,
            "w": SIZE, "h": SIZE, "frames": frames,
        });
        let path = root.join(format!("frames/{t:04}/transforms.json"));
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, json.to_string()).unwrap();
    }
    assert!(MultiViewVideo::detect(root));
    let video = MultiViewVideo::open(root).unwrap();
    assert_eq!(video.frames, 3);
    assert_eq!(
        video.camera_counts(),
        (3, 1),
        "N3DV's convention: cam00 held out"
    );
    let frame = video.frame(2);
    assert!(frame.views[0].path.ends_with("cam00/0002.png"));
    assert_eq!(frame.views[0].split, Split::Test);

    // A camera that moves between frames is not a fixed rig.
    let path = root.join("frames/0001/transforms.json");
    let text = std::fs::read_to_string(&path).unwrap();
    let mut json: serde_json::Value = serde_json::from_str(&text).unwrap();
    json["frames"][2]["transform_matrix"][0][3] = serde_json::json!(5.0);
    std::fs::write(&path, json.to_string()).unwrap();
    let err = MultiViewVideo::open(root).unwrap_err().to_string();
    assert!(
        err.contains("0001/transforms.json") && err.contains("camera 2"),
        "{err}"
    );
    std::fs::write(&path, text).unwrap();

    // N3DV layout with a frame missing in one camera, then with a camera folder short.
    std::fs::remove_dir_all(root.join("frames")).unwrap();
    let cams: Vec<Camera> = (0..4).map(ring).collect();
    std::fs::write(root.join("poses_bounds.npy"), poses_bounds(&cams)).unwrap();
    assert!(MultiViewVideo::detect(root));
    assert_eq!(MultiViewVideo::open(root).unwrap().frames, 3);
    std::fs::remove_file(root.join("cam02/0001.png")).unwrap();
    let err = MultiViewVideo::open(root).unwrap_err().to_string();
    assert!(err.contains("cam02") && err.contains("frame 0001"), "{err}");
    write_png(&root.join("cam02/0001.png"), &gray);
    // A photo of the wrong size is named when the frame is loaded.
    write_png_sized(&root.join("cam03/0002.png"), SIZE / 2);
    let video = MultiViewVideo::open(root).unwrap();
    let err = load_views(&video.frame(2), Split::Train, 1)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("cam03/0002.png") && err.contains("20x20"),
        "{err}"
    );
    // Not a video at all.
    let empty = tempfile::tempdir().unwrap();
    assert!(!MultiViewVideo::detect(empty.path()));
    let err = MultiViewVideo::open(empty.path()).unwrap_err().to_string();
    assert!(err.contains("not a multi-view video"), "{err}");
}

fn write_png_sized(path: &Path, size: u32) {
    let file = std::fs::File::create(path).unwrap();
    let mut enc = png::Encoder::new(std::io::BufWriter::new(file), size, size);
    enc.set_color(png::ColorType::Rgb);
    enc.set_depth(png::BitDepth::Eight);
    enc.write_header()
        .unwrap()
        .write_image_data(&vec![0u8; (size * size * 3) as usize])
        .unwrap();
}

#[test]
fn the_cli_learns_a_video_scores_it_and_refuses_a_broken_one() {
    let dir = tempfile::tempdir().unwrap();
    let video = dir.path().join("video");
    write_video(&video);
    let out = dir.path().join("stream.mp4");
    let run = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_splatcast"))
            .args(args)
            .output()
            .unwrap()
    };
    let (v, o) = (video.to_str().unwrap(), out.to_str().unwrap());
    let small = [
        "--iterations",
        "150",
        "--refresh-iterations",
        "30",
        "--residual-iterations",
        "20",
        "--max-gaussians",
        "200",
        "--sh-degree",
        "0",
        "--gop",
        "3",
    ];
    let encoded = run(&[&["encode", v, "-o", o][..], &small].concat());
    assert!(encoded.status.success(), "{encoded:?}");
    let report: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("stream.learn.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(report["frames"], FRAMES);
    assert_eq!(
        report["bytes"].as_u64().unwrap(),
        std::fs::metadata(&out).unwrap().len()
    );
    // Keyframes leave out faint Gaussians: those below the preset's 0.05, or a lower threshold
    // where the picture needs them, never below the trainer's dead 0.005 (up to the opacity
    // planes' quantisation error). Every one is kept with `--prune-below 0`.
    let mut reader = StreamReader::open(std::fs::File::open(&out).unwrap()).unwrap();
    let keyframe = reader
        .read_gop(0, &mut Rav1dDecoder::new(1))
        .unwrap()
        .frames[0]
        .clone();
    let faintest = keyframe
        .opacity_logits
        .iter()
        .map(|&o| splatcast_protocol::gaussian::sigmoid(o))
        .fold(1.0f32, f32::min);
    assert!(
        keyframe.len() < 200 && faintest > 0.003,
        "{} Gaussians, faintest {faintest}",
        keyframe.len()
    );
    assert_eq!(
        report["per_frame"][0]["gaussians"].as_u64(),
        Some(keyframe.len() as u64)
    );
    let chart = dir.path().join("q.png");
    let scored = run(&["eval-capture", v, o, "--plot", chart.to_str().unwrap()]);
    assert!(scored.status.success(), "{scored:?}");
    for png in [chart.clone(), dir.path().join("q.bytes.png")] {
        assert!(
            std::fs::read(&png).unwrap().starts_with(b"\x89PNG"),
            "{png:?}"
        );
    }
    let text = String::from_utf8_lossy(&scored.stdout);
    assert_eq!(
        text.lines().filter(|l| l.contains("stream.mp4")).count(),
        FRAMES + 2
    );
    assert!(text.contains("mean") && text.contains("worst"), "{text}");

    // A camera missing a frame: one line naming it, non-zero exit, no stream left behind.
    std::fs::remove_file(video.join("cam03/0002.png")).unwrap();
    let broken = dir.path().join("broken.mp4");
    let failed = run(&[&["encode", v, "-o", broken.to_str().unwrap()][..], &small].concat());
    assert!(!failed.status.success());
    let err = String::from_utf8_lossy(&failed.stderr);
    let line = err
        .lines()
        .find(|l| l.starts_with("splatcast:"))
        .unwrap_or_default()
        .to_owned();
    assert!(line.contains("cam03") && line.contains("0002"), "{err}");
    assert!(!broken.exists());
}
