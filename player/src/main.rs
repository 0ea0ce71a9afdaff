//! `splatcast-player`: plays a Splatcast file or a live MoQ broadcast in a window, or renders
//! frames headless.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use bevy::prelude::*;
use bevy::render::view::screenshot::{Screenshot, save_to_disk};
use clap::Parser;
use splatcast_net::{Address, Trust};
use splatcast_player::app::{Budget, Player, PlayerOptions, PlayerSystems, SourceOrError};
use splatcast_player::headless::{self, HeadlessOptions};
use splatcast_player::render::RenderFeedback;
use splatcast_player::window::{WindowSettings, open_file, window_app};
use splatcast_player::{LiveSource, RoomSource, Source, VodSource};
use splatcast_shaders::orbit::{Orbit, Up};
use splatcast_shaders::posed::read_transforms;

/// Plays Splatcast volumetric video.
///
/// Keys: space play/pause · L loop · , . step a frame · [ ] speed · Home/End · arrows orbit
/// (shift: pan) · +/- zoom · R reset view · O overlay. Mouse: left drag orbit, right drag pan,
/// wheel zoom, click or drag the bottom bar to seek. Touch: one finger orbits, two pinch and
/// pan, double tap resets.
#[derive(Parser)]
#[command(version)]
struct Cli {
    /// A Splatcast MP4 (from `splatcast encode`), a live broadcast
    /// (`moq://HOST:PORT/rooms/ROOM/NAME[?jwt=TOKEN]` over raw QUIC, `https://…` over
    /// WebTransport), a whole room side by side (`moq://HOST:PORT/rooms/ROOM`) or a stream
    /// served on demand (`moq://HOST:PORT/vod/NAME`, seekable).
    input: String,
    /// SHA-256 of the relay's certificate, as `splatcast relay` prints it (live broadcasts).
    #[arg(long)]
    fingerprint: Vec<String>,
    /// PEM file of certificates to trust as roots (live broadcasts).
    #[arg(long)]
    ca: Option<PathBuf>,
    /// Render to PNGs without a window.
    #[arg(long)]
    headless: bool,
    /// Frames to render headless: `A..B` (end exclusive), `A..` or one index; of a live
    /// broadcast, that many frames as they arrive (`0..` until it ends).
    #[arg(long, default_value = "0..")]
    frames: String,
    /// Orbit camera: AZIMUTH,ELEVATION[,DISTANCE[,FOV]] (degrees; distance in scene radii).
    #[arg(long)]
    camera: Option<String>,
    /// Cameras from a nerfstudio / instant-ngp transforms.json (headless).
    #[arg(long)]
    transforms: Option<PathBuf>,
    /// View of --transforms.
    #[arg(long, default_value_t = 0)]
    view: usize,
    /// Picture size WIDTHxHEIGHT (headless; the window's initial size otherwise).
    #[arg(long)]
    size: Option<String>,
    /// World direction shown as up.
    #[arg(long, default_value = "-y", allow_hyphen_values = true)]
    up: Up,
    /// Background colour R,G,B in [0, 1].
    #[arg(long, default_value = "0,0,0")]
    background: String,
    /// Folder for headless PNGs (NNNN.png).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Print decode and render timings per frame and their medians (headless).
    #[arg(long)]
    bench: bool,
    /// Most pixels rendered per frame (larger windows are upscaled), e.g. 1200000 on phones.
    #[arg(long)]
    max_pixels: Option<u64>,
    /// Most Gaussians drawn per frame (an even subsample above it), e.g. 250000 on phones.
    #[arg(long)]
    max_gaussians: Option<u32>,
    /// Start paused.
    #[arg(long)]
    paused: bool,
    /// Stop at the end instead of looping.
    #[arg(long)]
    once: bool,
    /// Start without the overlay (O shows it).
    #[arg(long)]
    no_overlay: bool,
    /// Show frame --at paused, save a screenshot of the window to this PNG, and quit (for
    /// tests of the real window).
    #[arg(long)]
    screenshot: Option<PathBuf>,
    /// Frame for --screenshot.
    #[arg(long, default_value_t = 0)]
    at: u64,
}

/// The window-screenshot run: seek, wait until the frame is on screen, save, quit.
#[derive(Resource)]
struct Snapshot {
    path: PathBuf,
    frame: u64,
    settled: u32,
    requested: bool,
}

fn snapshot(
    mut commands: Commands,
    mut player: ResMut<Player>,
    feedback: Res<RenderFeedback>,
    mut snap: ResMut<Snapshot>,
    mut exit: MessageWriter<AppExit>,
) {
    if snap.requested {
        if snap.path.exists() {
            exit.write(AppExit::Success);
        }
        return;
    }
    if snap.settled == 0 {
        player.clock.playing = false;
        let jump = player.clock.seek(snap.frame);
        player.jump(jump);
        snap.settled = 1;
        return;
    }
    if player.shown.is_none_or(|p| p.frame != snap.frame) {
        return;
    }
    // The frame is shown; let a few frames render (the swap chain lags by a frame or two).
    if feedback.get().unpacked == 0 {
        return;
    }
    snap.settled += 1;
    if snap.settled > 5 {
        snap.requested = true;
        commands
            .spawn(Screenshot::primary_window())
            .observe(save_to_disk(snap.path.clone()));
    }
}

fn parse_size(spec: &str) -> Result<(u32, u32)> {
    let (w, h) = spec
        .split_once(['x', 'X'])
        .with_context(|| format!("size '{spec}': expected WIDTHxHEIGHT"))?;
    let (w, h) = (w.trim().parse::<u32>()?, h.trim().parse::<u32>()?);
    if !(8..=8192).contains(&w) || !(8..=8192).contains(&h) {
        bail!("size '{spec}': 8 to 8192 each");
    }
    Ok((w, h))
}

fn parse_frames(spec: &str) -> Result<std::ops::Range<u64>> {
    let bad = || format!("frames '{spec}': expected A..B, A.. or an index");
    Ok(match spec.split_once("..") {
        Some((a, b)) => {
            let a = if a.is_empty() {
                0
            } else {
                a.parse().with_context(bad)?
            };
            let b = if b.is_empty() {
                u64::MAX
            } else {
                b.parse().with_context(bad)?
            };
            a..b
        }
        None => {
            let a: u64 = spec.parse().with_context(bad)?;
            a..a + 1
        }
    })
}

fn parse_background(spec: &str) -> Result<glam::Vec3> {
    let v: Vec<f32> = spec
        .split(',')
        .map(|c| c.trim().parse::<f32>())
        .collect::<Result<_, _>>()
        .with_context(|| format!("background '{spec}': expected R,G,B"))?;
    match v[..] {
        [r, g, b] if v.iter().all(|c| (0.0..=1.0).contains(c)) => Ok(glam::Vec3::new(r, g, b)),
        _ => bail!("background '{spec}': three values in [0, 1]"),
    }
}

fn options(cli: &Cli, size: (u32, u32)) -> Result<PlayerOptions> {
    let camera = match &cli.transforms {
        Some(path) => {
            let views = read_transforms(path)?;
            let view = views.get(cli.view).with_context(|| {
                format!(
                    "{}: view {} requested, it has {}",
                    path.display(),
                    cli.view,
                    views.len()
                )
            })?;
            Some(view.camera.resized(size.0, size.1))
        }
        None => None,
    };
    Ok(PlayerOptions {
        autoplay: !cli.paused,
        looping: !cli.once,
        orbit: cli.camera.as_deref().map(Orbit::parse).transpose()?,
        up: cli.up,
        camera,
        background: parse_background(&cli.background)?,
        budget: Budget {
            max_pixels: cli.max_pixels.unwrap_or(Budget::default().max_pixels),
            max_gaussians: cli.max_gaussians.unwrap_or(u32::MAX),
        },
        ..PlayerOptions::default()
    })
}

/// Opens the input: a live broadcast when it is a URL, a file otherwise.
fn open(cli: &Cli) -> SourceOrError {
    if !cli.input.contains("://") {
        return open_file(Path::new(&cli.input));
    }
    let live = || -> Result<Source> {
        let address: Address = cli.input.parse()?;
        let trust = Trust::from_flags(&cli.fingerprint, cli.ca.as_deref())?;
        // `splatcast serve` puts stored streams under vod/: seekable, fetched GOP by GOP.
        if address.path.starts_with("vod/") {
            return Ok(Source::Stored(Box::new(VodSource::open(&address, trust)?)));
        }
        // A room without a participant: everyone in it, side by side.
        if address.room().is_some() && address.path.split('/').count() == 2 {
            return Ok(Source::Room(Box::new(RoomSource::open(&address, trust)?)));
        }
        Ok(Source::Live(Box::new(LiveSource::open(&address, trust)?)))
    };
    live().map_err(|e| format!("{}: {e:#}", cli.input))
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn run_headless(cli: &Cli) -> Result<()> {
    let size = cli
        .size
        .as_deref()
        .map(parse_size)
        .transpose()?
        .unwrap_or((960, 720));
    if cli.out.is_none() && !cli.bench {
        bail!("--headless needs --out DIR or --bench");
    }
    let source = open(cli).map_err(anyhow::Error::msg)?;
    let report = headless::run(
        HeadlessOptions {
            source,
            frames: parse_frames(&cli.frames)?,
            size,
            player: options(cli, size)?,
            out: cli.out.clone(),
        },
        |_, _| {},
    )?;
    for line in &report.log {
        eprintln!("{line}");
    }
    if cli.bench {
        println!("frame  decode_ms  update_ms  gpu_ms   ({})", report.adapter);
        for t in &report.timings {
            let gpu = t.gpu_ms.map_or_else(|| "-".into(), |g| format!("{g:.3}"));
            println!(
                "{:5}  {:9.2}  {:9.2}  {gpu}",
                t.frame, t.decode_ms, t.update_ms
            );
        }
        let pick = |f: fn(&headless::FrameTiming) -> Option<f64>| {
            let v: Vec<f64> = report.timings.iter().filter_map(f).collect();
            if v.is_empty() {
                "n/a (no timestamp queries)".to_owned()
            } else {
                format!("{:.3} ms", median(v))
            }
        };
        println!(
            "median  decode {} / frame  update {}  gpu {}",
            pick(|t| Some(t.decode_ms)),
            pick(|t| Some(t.update_ms)),
            pick(|t| t.gpu_ms),
        );
    }
    if let Some(out) = &cli.out {
        println!(
            "{}: {} frames at {}x{} on {}",
            out.display(),
            report.timings.len(),
            size.0,
            size.1,
            report.adapter
        );
    }
    Ok(())
}

fn run_window(cli: &Cli) -> Result<()> {
    let size = cli
        .size
        .as_deref()
        .map(parse_size)
        .transpose()?
        .unwrap_or((1280, 720));
    let mut app = window_app(
        open(cli),
        options(cli, size)?,
        WindowSettings {
            title: format!("Splatcast — {}", cli.input),
            size,
            fullscreen: false,
            overlay: !cli.no_overlay,
        },
    );
    if let Some(path) = &cli.screenshot {
        app.insert_resource(Snapshot {
            path: path.clone(),
            frame: cli.at,
            settled: 0,
            requested: false,
        })
        .add_systems(Update, snapshot.after(PlayerSystems::Playback));
    }
    match app.run() {
        AppExit::Success => Ok(()),
        AppExit::Error(code) => bail!("the app exited with code {code}"),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = if cli.headless {
        run_headless(&cli)
    } else {
        run_window(&cli)
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("splatcast-player: {e:#}");
            ExitCode::FAILURE
        }
    }
}
