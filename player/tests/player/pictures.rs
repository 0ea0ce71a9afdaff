//! The player's pictures: headless frames match `splatcast render` of the same frame and camera,
//! and the picture survives its surface being lost and recreated at another size (on whatever
//! bevy finds: GL through llvmpipe on a fresh machine, Vulkan where lavapipe is installed); the
//! real window under Xvfb shows the same splats (Vulkan and Xvfb: `--ignored`, in `.ci/run`).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use bevy::camera::RenderTarget;
use bevy::prelude::*;
use bevy::render::view::screenshot::{Screenshot, ScreenshotCaptured};
use bevy::window::AppLifecycle;
use glam::{DMat4, DVec4};
use splatcast_encoder::scene::{FrameSet, bounds};
use splatcast_player::app::{Budget, Player, PlayerOptions, PlayerPlugin, splat_camera};
use splatcast_player::headless::{self, HeadlessOptions};
use splatcast_player::source::FileSource;
use splatcast_player::stage::Stage;
use splatcast_shaders::orbit::{Orbit, Up};
use splatcast_shaders::posed::read_transforms;
use splatcast_shaders::{Camera, Gpu, Renderer, render_frame};

use crate::encode_demo;

const FRAME: u64 = 4;

/// A stream and a transforms.json with one camera looking at it.
fn scene(dir: &Path) -> (PathBuf, PathBuf) {
    let (path, reference) = encode_demo(dir, "g.mp4", 3000, 6, 3);
    let (centre, radius) = bounds(&reference[FRAME as usize]);
    let orbit = Orbit::parse("30,25,2.2,50").unwrap();
    let cam = orbit.camera(centre, radius, Up::PosZ, 400, 300);
    let gl_to_cv = DMat4::from_diagonal(DVec4::new(1.0, -1.0, -1.0, 1.0));
    let c2w = cam.world_to_camera.inverse() * gl_to_cv;
    let rows: Vec<Vec<f64>> = (0..4).map(|r| c2w.row(r).to_array().to_vec()).collect();
    let json = serde_json::json!({
        "fl_x": cam.fx, "fl_y": cam.fy, "cx": cam.cx, "cy": cam.cy, "w": 400, "h": 300,
        "frames": [{ "file_path": "view0.png", "transform_matrix": rows }],
    });
    let transforms = dir.join("transforms.json");
    std::fs::write(&transforms, json.to_string()).unwrap();
    (path, transforms)
}

/// What `splatcast render <file> --frame FRAME --transforms t --size WxH` draws: the CPU
/// decode of the frame, uploaded and rendered by the shaders crate.
fn cli_render(file: &Path, camera: &Camera) -> Vec<u8> {
    let frame = FrameSet::open(file).unwrap().frame(FRAME as usize).unwrap();
    let gpu = Gpu::new().unwrap();
    let renderer = Renderer::new(&gpu);
    render_frame(&gpu, &renderer, &frame, camera, glam::DVec3::ZERO)
        .unwrap()
        .to_rgb8()
}

fn camera_of(transforms: &Path, w: u32, h: u32) -> Camera {
    read_transforms(transforms).unwrap()[0].camera.resized(w, h)
}

fn read_png(path: &Path) -> (u32, u32, Vec<u8>) {
    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(path).unwrap()));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    let channels = info.color_type.samples();
    let rgb = buf[..info.buffer_size()]
        .chunks_exact(channels)
        .flat_map(|p| [p[0], p[1], p[2]])
        .collect();
    (info.width, info.height, rgb)
}

fn psnr(a: &[u8], b: &[u8]) -> f64 {
    assert_eq!(a.len(), b.len());
    let mse = a
        .iter()
        .zip(b)
        .map(|(x, y)| (*x as f64 - *y as f64).powi(2))
        .sum::<f64>()
        / a.len() as f64;
    if mse == 0.0 {
        100.0
    } else {
        10.0 * (255.0f64.powi(2) / mse).log10()
    }
}

/// Fraction of pixels that are not background.
fn covered(rgb: &[u8]) -> f64 {
    let lit = rgb
        .chunks_exact(3)
        .filter(|p| p.iter().any(|&c| c > 8))
        .count();
    lit as f64 / (rgb.len() / 3) as f64
}

#[test]
fn headless_frames_match_the_cli_render() {
    let dir = tempfile::tempdir().unwrap();
    let (file, transforms) = scene(dir.path());
    let out = dir.path().join("frames");
    let (w, h) = (400, 300);
    let report = headless::run(
        HeadlessOptions {
            source: FileSource::open(&file).unwrap().into(),
            frames: FRAME - 1..FRAME + 1,
            size: (w, h),
            player: PlayerOptions {
                camera: Some(camera_of(&transforms, w, h)),
                ..PlayerOptions::default()
            },
            out: Some(out.clone()),
        },
        |_, _| {},
    )
    .unwrap();
    assert_eq!(report.timings.len(), 2);
    let (pw, ph, player) = read_png(&out.join(format!("{FRAME:04}.png")));
    assert_eq!((pw, ph), (w, h));
    let cli = cli_render(&file, &camera_of(&transforms, w, h));
    let db = psnr(&player, &cli);
    assert!(covered(&cli) > 0.05, "the galaxy fills part of the view");
    eprintln!("headless player vs splatcast render: {db:.2} dB");
    assert!(db >= 45.0, "player vs splatcast render: {db:.2} dB");
    // The frame before differs (the galaxy turns): the player showed the frame asked for.
    let (_, _, before) = read_png(&out.join(format!("{:04}.png", FRAME - 1)));
    assert!(psnr(&before, &player) < db - 3.0);

    // A device budget of a third of the Gaussians draws an even subsample: the whole galaxy,
    // thinner.
    let thin = dir.path().join("thin");
    headless::run(
        HeadlessOptions {
            source: FileSource::open(&file).unwrap().into(),
            frames: FRAME..FRAME + 1,
            size: (w, h),
            player: PlayerOptions {
                camera: Some(camera_of(&transforms, w, h)),
                budget: Budget {
                    max_pixels: u64::MAX,
                    max_gaussians: 1000,
                },
                ..PlayerOptions::default()
            },
            out: Some(thin.clone()),
        },
        |_, _| {},
    )
    .unwrap();
    let (_, _, sparse) = read_png(&thin.join(format!("{FRAME:04}.png")));
    let (full, part) = (covered(&cli), covered(&sparse));
    eprintln!("budget of 1000 of 3000 Gaussians: {part:.3} of the picture covered, full {full:.3}");
    assert!(part > 0.5 * full && part < full, "{part} vs {full}");
    assert!(psnr(&sparse, &cli) < 40.0);
}

/// Updates until a screenshot of `image` arrives.
fn shoot(stage: &mut Stage, image: &Handle<Image>) -> Vec<u8> {
    // A new camera learns its target's size during its first update.
    stage.update();
    let (send, receive) = mpsc::channel();
    stage
        .world()
        .spawn(Screenshot::image(image.clone()))
        .observe(move |shot: On<ScreenshotCaptured>| {
            let _ = send.send(shot.image.clone());
        });
    let start = Instant::now();
    loop {
        stage.update();
        if let Ok(img) = receive.try_recv() {
            let data = img.data.unwrap_or_default();
            return data
                .chunks_exact(4)
                .flat_map(|p| [p[0], p[1], p[2]])
                .collect();
        }
        assert!(start.elapsed() < Duration::from_secs(60), "no screenshot");
    }
}

#[test]
fn the_picture_survives_suspend_and_a_new_surface_of_another_size() {
    let dir = tempfile::tempdir().unwrap();
    let (file, transforms) = scene(dir.path());
    let fixed = camera_of(&transforms, 400, 300);
    let mut stage = Stage::new(None, |app| {
        app.add_plugins(PlayerPlugin::new(
            Ok(FileSource::open(&file).unwrap().into()),
            PlayerOptions {
                autoplay: false,
                camera: Some(fixed),
                ..PlayerOptions::default()
            },
            false,
        ));
    });
    {
        let world = stage.world();
        let mut player = world.resource_mut::<Player>();
        let jump = player.clock.seek(FRAME);
        player.jump(jump);
        let worker = player.worker.as_ref().unwrap();
        assert!(worker.wait_for(splatcast_player::decode::Position {
            lap: 0,
            frame: FRAME
        }));
    }
    let first = stage.render_target(200, 150);
    let bundle = splat_camera(stage.world().resource::<Player>());
    let camera = stage
        .world()
        .spawn((bundle, RenderTarget::Image(first.clone().into())))
        .id();
    let small = shoot(&mut stage, &first);
    let db = psnr(&small, &cli_render(&file, &fixed.resized(200, 150)));
    assert!(db >= 45.0, "before suspend: {db:.2} dB");

    // Suspended: the surface goes away with its camera; nothing renders, nothing breaks.
    stage.world().write_message(AppLifecycle::Suspended);
    stage.world().entity_mut(camera).despawn();
    stage.world().resource_mut::<Assets<Image>>().remove(&first);
    for _ in 0..3 {
        stage.update();
    }
    assert!(stage.world().resource::<Player>().suspended);
    // Resumed on a new surface of another size.
    stage.world().write_message(AppLifecycle::Running);
    let second = stage.render_target(320, 240);
    let bundle = splat_camera(stage.world().resource::<Player>());
    stage
        .world()
        .spawn((bundle, RenderTarget::Image(second.clone().into())));
    let large = shoot(&mut stage, &second);
    let db = psnr(&large, &cli_render(&file, &fixed.resized(320, 240)));
    assert!(db >= 45.0, "after resume: {db:.2} dB");
    assert!(!stage.world().resource::<Player>().suspended);
}

/// An X server of our own for the duration of a test.
struct Xvfb(Child);

impl Drop for Xvfb {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn xvfb(display: u32) -> Xvfb {
    let child = Command::new("Xvfb")
        .args([
            &format!(":{display}"),
            "-screen",
            "0",
            "800x600x24",
            "-nolisten",
            "tcp",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("Xvfb (apt-get install xvfb)");
    let socket = PathBuf::from(format!("/tmp/.X11-unix/X{display}"));
    let start = Instant::now();
    while !socket.exists() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "Xvfb did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    Xvfb(child)
}

#[test]
#[ignore = "needs Xvfb and a Vulkan device (installed by .ci/run)"]
fn the_real_window_shows_the_same_splats() {
    let dir = tempfile::tempdir().unwrap();
    let (file, transforms) = scene(dir.path());
    let display = 90 + std::process::id() % 50;
    let _server = xvfb(display);
    let shot = dir.path().join("window.png");
    let mut child = Command::new(env!("CARGO_BIN_EXE_splatcast-player"))
        .arg(&file)
        .args([
            "--size",
            "320x240",
            "--no-overlay",
            "--at",
            &FRAME.to_string(),
        ])
        .arg("--transforms")
        .arg(&transforms)
        .arg("--screenshot")
        .arg(&shot)
        .env("DISPLAY", format!(":{display}"))
        .env_remove("WAYLAND_DISPLAY")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > Duration::from_secs(120) {
            let _ = child.kill();
            panic!("the player did not finish within 120 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    assert!(status.success(), "player failed: {stderr}");
    let (w, h, window) = read_png(&shot);
    assert_eq!((w, h), (320, 240), "window size");
    let cli = cli_render(&file, &camera_of(&transforms, w, h));
    assert!(covered(&window) > 0.05, "splats are drawn in the window");
    let db = psnr(&window, &cli);
    eprintln!("window vs splatcast render: {db:.2} dB");
    assert!(db >= 45.0, "window vs render: {db:.2} dB");
}
