//! Headless playback: the same plugin and render pass as the windowed player, drawing into an
//! image instead of a window, one frame at a time and every frame (nothing is dropped), for
//! PNG sequences and timings.

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use bevy::camera::RenderTarget;
use bevy::prelude::*;
use bevy::render::view::screenshot::{Screenshot, ScreenshotCaptured};

use crate::app::{Player, PlayerOptions, PlayerPlugin, splat_camera};
use crate::decode::Position;
use crate::render::RenderFeedback;
use crate::source::Source;
use crate::stage::Stage;

/// Why a headless run failed.
#[derive(Debug, thiserror::Error)]
pub enum HeadlessError {
    /// The options do not fit the file.
    #[error("{0}")]
    Options(String),
    /// A PNG could not be written.
    #[error("{path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The renderer delivered nothing.
    #[error("frame {0}: the renderer delivered no picture within 60 s")]
    Stalled(u64),
    /// A live broadcast stopped sending.
    #[error("live: {0} frames rendered, then none arrived within 30 s or the broadcast ended")]
    LiveEnded(usize),
}

/// What to render.
pub struct HeadlessOptions {
    /// What to play: a file ([`crate::FileSource`]) or a live broadcast ([`crate::LiveSource`]).
    pub source: Source,
    /// Frames to render: of a file, these (end exclusive, clamped to the file); of a live
    /// broadcast, as many as the range holds (an open range: until it ends), each as it
    /// arrives (PNGs named by the frame's number on the broadcast's timeline); of a room, a
    /// picture each time any participant's frame arrives (numbered in arrival order).
    pub frames: Range<u64>,
    /// Picture size.
    pub size: (u32, u32),
    /// Camera, background and up.
    pub player: PlayerOptions,
    /// Where PNGs go (`NNNN.png`); none for timing only.
    pub out: Option<PathBuf>,
}

/// Timings of one frame.
#[derive(Clone, Copy, Debug)]
pub struct FrameTiming {
    /// The frame.
    pub frame: u64,
    /// Decode wall-clock ms per frame of its GOP (tracks in parallel).
    pub decode_ms: f64,
    /// Wall-clock ms of the update that drew it (upload, unpack, render, present, readback).
    pub update_ms: f64,
    /// GPU ms of the splat render, when the device has timestamp queries.
    pub gpu_ms: Option<f64>,
}

/// What a run did.
pub struct HeadlessReport {
    /// Per frame rendered.
    pub timings: Vec<FrameTiming>,
    /// Frames whose GOP could not be decoded (messages).
    pub log: Vec<String>,
    /// Adapter used.
    pub adapter: String,
}

/// Renders `options.frames` of a file through the player's pipeline.
pub fn run(
    options: HeadlessOptions,
    mut progress: impl FnMut(u64, u64),
) -> Result<HeadlessReport, HeadlessError> {
    let (w, h) = options.size;
    if !(8..=8192).contains(&w) || !(8..=8192).contains(&h) {
        return Err(HeadlessError::Options(format!(
            "size {w}x{h} is outside 8 to 8192"
        )));
    }
    let live = matches!(options.source, Source::Live(_) | Source::Room(_));
    let frames = match &options.source {
        Source::Stored(source) => {
            let count = source.frame_count();
            let frames = options.frames.start.min(count)..options.frames.end.min(count);
            if frames.is_empty() {
                return Err(HeadlessError::Options(format!(
                    "no frames in {:?}: the file has {count}",
                    options.frames
                )));
            }
            frames
        }
        Source::Live(_) | Source::Room(_) => options.frames.clone(),
    };
    let wanted = (frames.end - frames.start) as usize;
    let player_options = PlayerOptions {
        autoplay: false,
        looping: false,
        // Live frames are all kept until drawn.
        queue_frames: if live {
            wanted.clamp(1, 4096)
        } else {
            options.player.queue_frames
        },
        budget: crate::app::Budget {
            max_pixels: u64::MAX,
            ..options.player.budget
        },
        ..options.player
    };
    let mut stage = Stage::new(None, |app| {
        app.add_plugins(PlayerPlugin::new(Ok(options.source), player_options, false));
    });
    let adapter = stage
        .world()
        .get_resource::<bevy::render::renderer::RenderAdapterInfo>()
        .map_or_else(String::new, |a| format!("{} ({:?})", a.name, a.backend));
    let target = stage.render_target(w, h);
    let world = stage.world();
    let camera = splat_camera(world.resource::<Player>());
    world.spawn((camera, RenderTarget::Image(target.clone().into())));
    // The camera learns its target's size in its first update.
    stage.update();

    if let Some(dir) = &options.out {
        std::fs::create_dir_all(dir).map_err(|source| HeadlessError::Write {
            path: dir.clone(),
            source,
        })?;
    }
    let (sender, receiver) = mpsc::channel::<(u64, Image)>();
    let mut timings = Vec::with_capacity(wanted.min(4096));
    let mut log = Vec::new();
    let mut written = 0;
    let mut last = None;
    for i in 0..wanted {
        let frame = {
            let world = stage.world();
            let mut player = world.resource_mut::<Player>();
            if live {
                let worker = player.worker.as_ref().expect("opened above");
                // The first update may have taken the first frame already.
                let next = match (last, player.shown) {
                    (None, Some(shown)) => Some(shown),
                    _ => worker.wait_next(last, Duration::from_secs(30)),
                };
                let Some(at) = next else {
                    // An open range plays the broadcast to its end.
                    if options.frames.end == u64::MAX && i > 0 {
                        break;
                    }
                    return Err(HeadlessError::LiveEnded(i));
                };
                last = Some(at);
                player.clock.seek(at.frame);
                at.frame
            } else {
                let frame = frames.start + i as u64;
                let jump = player.clock.seek(frame);
                if i == 0 {
                    player.jump(jump);
                }
                let worker = player.worker.as_ref().expect("opened above");
                worker.wait_for(Position { lap: 0, frame });
                frame
            }
        };
        if options.out.is_some() {
            let sink = sender.clone();
            stage
                .world()
                .spawn(Screenshot::image(target.clone()))
                .observe(move |shot: On<ScreenshotCaptured>| {
                    let _ = sink.send((frame, shot.image.clone()));
                });
        }
        let start = Instant::now();
        stage.update();
        let update_ms = 1e3 * start.elapsed().as_secs_f64();
        let world = stage.world();
        let player = world.resource::<Player>();
        let stats = player
            .worker
            .as_ref()
            .map(|w| w.stats())
            .unwrap_or_default();
        log.extend(player.log.iter().cloned());
        timings.push(FrameTiming {
            frame,
            decode_ms: stats.ms_per_frame,
            update_ms,
            gpu_ms: world.resource::<RenderFeedback>().get().gpu_ms,
        });
        written += write_arrived(&receiver, options.out.as_deref())?;
        progress(i as u64 + 1, wanted as u64);
    }
    // The last screenshots arrive on the following updates.
    let wanted = if options.out.is_some() {
        timings.len()
    } else {
        0
    };
    let waiting = Instant::now();
    drop(sender);
    while written < wanted {
        stage.update();
        written += write_arrived(&receiver, options.out.as_deref())?;
        if waiting.elapsed().as_secs() > 60 {
            return Err(HeadlessError::Stalled(
                last.map_or(frames.end - 1, |p| p.frame),
            ));
        }
    }
    log.dedup();
    Ok(HeadlessReport {
        timings,
        log,
        adapter,
    })
}

/// Writes the screenshots that have arrived; returns how many.
fn write_arrived(
    receiver: &mpsc::Receiver<(u64, Image)>,
    out: Option<&Path>,
) -> Result<usize, HeadlessError> {
    let mut n = 0;
    while let Ok((frame, image)) = receiver.try_recv() {
        n += 1;
        let Some(dir) = out else { continue };
        let path = dir.join(format!("{frame:04}.png"));
        let size = image.size();
        let rgb: Vec<u8> = image
            .data
            .as_deref()
            .unwrap_or_default()
            .chunks_exact(4)
            .flat_map(|p| [p[0], p[1], p[2]])
            .collect();
        write_png(&path, size.x, size.y, 3, &rgb)
            .map_err(|source| HeadlessError::Write { path, source })?;
    }
    Ok(n)
}

/// An 8-bit PNG (`channels` 1 = gray, 3 = RGB), written atomically.
pub fn write_png(
    path: &Path,
    width: u32,
    height: u32,
    channels: u8,
    data: &[u8],
) -> std::io::Result<()> {
    let mut out = Vec::new();
    let mut encoder = png::Encoder::new(&mut out, width, height);
    encoder.set_color(if channels == 1 {
        png::ColorType::Grayscale
    } else {
        png::ColorType::Rgb
    });
    encoder.set_depth(png::BitDepth::Eight);
    encoder.set_compression(png::Compression::Fast);
    encoder
        .write_header()
        .and_then(|mut w| w.write_image_data(data))
        .map_err(std::io::Error::other)?;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    splatcast_protocol::atomic::write_file(path, &out)
}
