//! Headless playback: the same plugin and render pass as the windowed player, drawing into an
//! image instead of a window, one frame at a time and every frame (nothing is dropped), for
//! PNG sequences and timings.

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Instant;

use bevy::camera::RenderTarget;
use bevy::prelude::*;
use bevy::render::view::screenshot::{Screenshot, ScreenshotCaptured};

use crate::app::{Player, PlayerOptions, PlayerPlugin, splat_camera};
use crate::capture_files::write_png;
use crate::decode::Position;
use crate::render::RenderFeedback;
use crate::source::{FileSource, PlaneSource};
use crate::stage::Stage;

/// Why a headless run failed.
#[derive(Debug, thiserror::Error)]
pub enum HeadlessError {
    /// The file could not be opened.
    #[error("{path}: {message}")]
    Source {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
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
}

/// What to render.
pub struct HeadlessOptions {
    /// The Splatcast file.
    pub input: PathBuf,
    /// Frames to render (end exclusive, clamped to the file).
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
    let source = FileSource::open(&options.input).map_err(|e| HeadlessError::Source {
        path: options.input.clone(),
        message: e.to_string(),
    })?;
    let count = source.frame_count();
    let frames = options.frames.start.min(count)..options.frames.end.min(count);
    if frames.is_empty() {
        return Err(HeadlessError::Options(format!(
            "no frames in {:?}: the file has {count}",
            options.frames
        )));
    }
    let player_options = PlayerOptions {
        autoplay: false,
        looping: false,
        budget: crate::app::Budget {
            max_pixels: u64::MAX,
            ..options.player.budget
        },
        ..options.player
    };
    let mut stage = Stage::new(None, false, |app| {
        app.add_plugins(PlayerPlugin::new(
            Ok(Box::new(source)),
            player_options,
            false,
        ));
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
    let mut timings = Vec::with_capacity((frames.end - frames.start) as usize);
    let mut log = Vec::new();
    let mut written = 0;
    for (i, frame) in frames.clone().enumerate() {
        {
            let world = stage.world();
            let mut player = world.resource_mut::<Player>();
            let jump = player.clock.seek(frame);
            if i == 0 {
                player.jump(jump);
            }
            let worker = player.worker.as_ref().expect("opened above");
            worker.wait_for(Position { lap: 0, frame });
        }
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
        progress(i as u64 + 1, frames.end - frames.start);
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
            return Err(HeadlessError::Stalled(frames.end - 1));
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
