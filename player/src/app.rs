//! The player plugin: playback clock, decode worker, camera controls and the splat cameras.
//! Any bevy app can add [`PlayerPlugin`] with a source and spawn [`splat_camera`]s; the
//! `splatcast-player` binary is such an app, with the overlay on top.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use bevy::core_pipeline::tonemapping::{DebandDither, Tonemapping};
use bevy::input::mouse::{AccumulatedMouseMotion, AccumulatedMouseScroll, MouseScrollUnit};
use bevy::input::touch::TouchPhase;
use bevy::prelude::*;
use bevy::window::{AppLifecycle, PrimaryWindow};
use glam::Vec3 as GVec3;
use splatcast_shaders::orbit::{Orbit, Up};

use crate::controls::{Gesture, OrbitView, TouchGestures};
use crate::decode::{DecodeWorker, DecodedFrame, Position};
use crate::playback::{Clock, Jump};
use crate::render::{Layer, ShownFrame, SplatRenderPlugin, SplatView};
use crate::room::Seating;
use crate::source::Source;

/// Height of the timeline bar at the bottom of the window, logical pixels.
pub const TIMELINE_HEIGHT: f32 = 22.0;

/// What a device can afford: renders above `max_pixels` are made at a lower resolution and
/// scaled up (phones render at a fraction of their panel's pixels), and frames with more than
/// `max_gaussians` draw an even subsample of them.
#[derive(Clone, Copy, Debug)]
pub struct Budget {
    /// Most pixels rendered per frame.
    pub max_pixels: u64,
    /// Most Gaussians drawn per frame.
    pub max_gaussians: u32,
}

impl Default for Budget {
    fn default() -> Self {
        Self {
            max_pixels: 3840 * 2160,
            max_gaussians: u32::MAX,
        }
    }
}

impl Budget {
    /// A budget for phones: about 1.2 megapixels (a 1080p panel at 0.75 scale) and 250k
    /// Gaussians (V³ plays 100k-Gaussian frames at 27 fps on an A15).
    pub fn phone() -> Self {
        Self {
            max_pixels: 1_200_000,
            max_gaussians: 250_000,
        }
    }

    /// Render size for a target of `size` pixels: the same aspect, at most `max_pixels`.
    pub fn render_size(&self, size: UVec2) -> (u32, u32) {
        let (w, h) = (size.x.max(1), size.y.max(1));
        let pixels = w as u64 * h as u64;
        if pixels <= self.max_pixels {
            return (w, h);
        }
        let s = (self.max_pixels as f64 / pixels as f64).sqrt();
        (
            ((w as f64 * s).floor() as u32).max(1),
            ((h as f64 * s).floor() as u32).max(1),
        )
    }
}

/// How the player starts.
#[derive(Clone, Debug)]
pub struct PlayerOptions {
    /// Start playing at once.
    pub autoplay: bool,
    /// Wrap around at the end.
    pub looping: bool,
    /// Initial orbit (defaults to [`Orbit::default`] around the first GOP's extent).
    pub orbit: Option<Orbit>,
    /// World up.
    pub up: Up,
    /// A fixed camera instead of the orbit (headless renders from a capture's views); it is
    /// rescaled to each target's size.
    pub camera: Option<splatcast_shaders::Camera>,
    /// Background colour.
    pub background: GVec3,
    /// Render resolution budget.
    pub budget: Budget,
    /// Frames the decoder may hold ready.
    pub queue_frames: usize,
}

impl Default for PlayerOptions {
    fn default() -> Self {
        Self {
            autoplay: true,
            looping: true,
            orbit: None,
            up: Up::NegY,
            camera: None,
            background: GVec3::ZERO,
            budget: Budget::default(),
            queue_frames: 32,
        }
    }
}

/// The player's state in the main world.
#[derive(Resource)]
pub struct Player {
    /// The decode worker; `None` when the source could not be opened.
    pub worker: Option<DecodeWorker>,
    /// Why there is nothing to play, shown in place of the video.
    pub fatal: Option<String>,
    /// The playback clock.
    pub clock: Clock,
    /// The camera.
    pub view: OrbitView,
    /// Start-up options.
    pub options: PlayerOptions,
    /// Position of the frame on screen.
    pub shown: Option<Position>,
    /// Frames the clock passed before they were decoded.
    pub dropped: u64,
    /// Recent messages (skipped GOPs, a cut-short file), newest last.
    pub log: Vec<String>,
    /// Whether the app is in the background.
    pub suspended: bool,
    /// Whether the overlay is shown.
    pub overlay: bool,
    /// Live broadcasts: delays and stalls as the viewer sees them.
    pub live: Option<LiveFigures>,
    /// The room view: who is on screen and where.
    pub room: Option<RoomView>,
    /// Whether the timeline is being dragged.
    scrubbing: bool,
    touches: TouchGestures,
}

/// The room view's state: each participant's newest frame and its seat.
pub struct RoomView {
    /// Where everyone stands.
    pub seating: Seating,
    /// Each participant's newest frame, by member number.
    frames: BTreeMap<u64, Arc<DecodedFrame>>,
    /// Names of those on screen.
    pub names: BTreeMap<u64, String>,
}

/// What a live viewer experiences.
#[derive(Clone, Copy, Debug, Default)]
pub struct LiveFigures {
    /// The last shown frame's last chunk arriving → the frame taken for the screen, in ms.
    pub delay_ms: f64,
    /// Gaps between new frames longer than 100 ms (and two frame intervals) while playing.
    pub stalls: u32,
    /// The longest such gap, in ms.
    pub longest_stall_ms: f64,
    last_frame: Option<Instant>,
}

impl Player {
    /// A player for `source` (or for the error opening it).
    pub fn new(source: SourceOrError, options: PlayerOptions) -> Self {
        let (worker, fatal, centre_radius) = match source {
            Ok(source) => {
                let bounds = source.first_side().map(|s| s.bounds());
                let worker = match source {
                    Source::Stored(s) => DecodeWorker::spawn(s, options.queue_frames),
                    Source::Live(l) => DecodeWorker::spawn_live(*l, options.queue_frames),
                    Source::Room(r) => DecodeWorker::spawn_room(*r, options.queue_frames),
                };
                worker.set_looping(options.looping);
                (Some(worker), None, bounds)
            }
            Err(e) => (None, Some(e), None),
        };
        let live = worker
            .as_ref()
            .is_some_and(DecodeWorker::live)
            .then(LiveFigures::default);
        let room = worker
            .as_ref()
            .is_some_and(DecodeWorker::room)
            .then(|| RoomView {
                seating: Seating::new(options.up),
                frames: BTreeMap::new(),
                names: BTreeMap::new(),
            });
        let (centre, radius) = centre_radius.unwrap_or((GVec3::ZERO, 1.0));
        let (fps, frames) = worker
            .as_ref()
            .map_or((30.0, 1), |w| (w.fps(), w.frame_count()));
        Self {
            clock: Clock::new(fps, frames, options.autoplay, options.looping),
            view: OrbitView::new(
                centre,
                radius,
                options.up,
                options.orbit.unwrap_or_default(),
            ),
            worker,
            fatal,
            shown: None,
            dropped: 0,
            log: Vec::new(),
            suspended: false,
            overlay: true,
            live,
            room,
            scrubbing: false,
            touches: TouchGestures::default(),
            options,
        }
    }

    /// Applies a clock operation's jump to the decoder.
    pub fn jump(&mut self, jump: Jump) {
        if let (Jump::Seek(at), Some(worker)) = (jump, &self.worker) {
            worker.seek(at);
        }
    }

    /// Takes the frame the clock is on from the decoder, if it is new; never waits.
    pub fn pull(&mut self, shown: &mut ShownFrame) {
        let Some(worker) = &self.worker else {
            return;
        };
        worker.set_looping(self.clock.looping);
        if worker.live()
            && self.clock.playing
            && let Some(edge) = worker.newest()
        {
            // Live: the newest decoded frame is the one to show.
            self.clock.seek(edge.frame);
        }
        if worker.room() {
            self.pull_room(shown);
        } else {
            let taken = worker.take(self.clock.position());
            self.dropped += taken.dropped;
            if let Some(frame) = taken.frame {
                self.arrived(&frame);
                shown.show(frame);
            }
        }
        let Some(worker) = &self.worker else {
            return;
        };
        for line in worker.drain_log() {
            warn!("{line}");
            self.log.push(line);
        }
        if self.log.len() > 4 {
            self.log.drain(..self.log.len() - 4);
        }
    }

    /// The room view: everyone's newest frame, each in its seat; the camera takes in the
    /// whole row when someone joins or leaves.
    fn pull_room(&mut self, shown: &mut ShownFrame) {
        let (Some(worker), Some(room)) = (&self.worker, &mut self.room) else {
            return;
        };
        let members = worker.members();
        let mut newest = None;
        let mut changed = false;
        let mut moved = false;
        let gone: Vec<u64> = room
            .frames
            .keys()
            .filter(|m| !members.contains_key(m))
            .copied()
            .collect();
        for member in gone {
            room.frames.remove(&member);
            room.names.remove(&member);
            room.seating.leave(member);
            (changed, moved) = (true, true);
        }
        for frame in worker.take_all() {
            let Some(name) = members.get(&frame.member) else {
                continue;
            };
            if !room.seating.seated(frame.member) {
                let (centre, radius) = frame.side.bounds();
                room.seating.seat(frame.member, centre, radius);
                room.names.insert(frame.member, name.clone());
                moved = true;
            }
            room.frames.insert(frame.member, frame.clone());
            newest = Some(frame);
            changed = true;
        }
        if moved && let Some((centre, radius)) = room.seating.framing() {
            self.view = OrbitView::new(centre, radius, self.options.up, self.view.orbit);
        }
        if changed {
            shown.layers = room
                .frames
                .iter()
                .map(|(&key, frame)| Layer {
                    key,
                    frame: frame.clone(),
                    offset: Vec3::from_array(
                        room.seating.offset(key).unwrap_or_default().to_array(),
                    ),
                })
                .collect();
            shown.serial += 1;
        }
        if let Some(frame) = newest {
            self.arrived(&frame);
        }
    }

    /// A new frame is on screen: live delay and stalls.
    fn arrived(&mut self, frame: &DecodedFrame) {
        if let (Some(live), Some(arrived)) = (&mut self.live, frame.arrived) {
            let now = Instant::now();
            live.delay_ms = 1e3 * (now - arrived).as_secs_f64();
            if let Some(last) = live.last_frame.replace(now) {
                let gap = 1e3 * (now - last).as_secs_f64();
                if self.clock.playing && gap > 100f64.max(2e3 / self.clock.fps()) {
                    live.stalls += 1;
                    live.longest_stall_ms = live.longest_stall_ms.max(gap);
                }
            }
        }
        self.shown = Some(frame.at);
    }
}

/// A camera that shows the splats: a 2D camera (no 3D passes to pay for) without
/// multisampling, tonemapping or dithering, so the picture keeps the renderer's colours.
pub fn splat_camera(player: &Player) -> impl Bundle {
    (
        Camera2d,
        Msaa::Off,
        Tonemapping::None,
        DebandDither::Disabled,
        SplatView {
            camera: player.view.camera(16, 16),
            background: Vec3::from_array(player.options.background.to_array()),
            max_gaussians: player.options.budget.max_gaussians,
        },
    )
}

/// A source to play, or why it could not be opened (shown instead of the video).
pub type SourceOrError = Result<Source, String>;

/// Plays a [`Source`] into every [`splat_camera`].
pub struct PlayerPlugin {
    start: Mutex<Option<(SourceOrError, PlayerOptions)>>,
    /// Whether mouse, keyboard and touch drive the player (off for headless rendering).
    pub interactive: bool,
}

impl PlayerPlugin {
    /// Plays `source`; an `Err` is shown as a message instead of the video.
    pub fn new(source: SourceOrError, options: PlayerOptions, interactive: bool) -> Self {
        Self {
            start: Mutex::new(Some((source, options))),
            interactive,
        }
    }
}

/// Player systems, in order.
#[derive(SystemSet, Debug, Clone, PartialEq, Eq, Hash)]
pub enum PlayerSystems {
    /// Input → clock and camera.
    Controls,
    /// Clock → shown frame.
    Playback,
    /// Camera → splat views.
    Views,
}

impl Plugin for PlayerPlugin {
    fn build(&self, app: &mut App) {
        let start = self.start.lock().unwrap_or_else(|e| e.into_inner()).take();
        let player = match start {
            Some((source, options)) => Player::new(source, options),
            None => Player::new(Err("the player plugin was added twice".into()), default()),
        };
        app.add_plugins(SplatRenderPlugin)
            .insert_resource(player)
            .configure_sets(
                Update,
                (
                    PlayerSystems::Controls,
                    PlayerSystems::Playback,
                    PlayerSystems::Views,
                )
                    .chain(),
            )
            .add_systems(
                Update,
                (
                    lifecycle.in_set(PlayerSystems::Controls),
                    advance.in_set(PlayerSystems::Playback),
                    sync_views.in_set(PlayerSystems::Views),
                ),
            );
        if self.interactive {
            app.add_systems(
                Update,
                (keyboard, mouse, touch).in_set(PlayerSystems::Controls),
            );
        }
    }
}

fn advance(time: Res<Time>, mut player: ResMut<Player>, mut shown: ResMut<ShownFrame>) {
    if !player.suspended {
        player.clock.advance(time.delta_secs_f64());
    }
    player.pull(&mut shown);
}

fn sync_views(player: Res<Player>, mut views: Query<(&Camera, &mut SplatView)>) {
    for (camera, mut view) in &mut views {
        let Some(size) = camera.physical_target_size() else {
            continue;
        };
        let (w, h) = player.options.budget.render_size(size);
        let wanted = match &player.options.camera {
            Some(fixed) => fixed.resized(w, h),
            None => player.view.camera(w, h),
        };
        if view.camera != wanted {
            view.camera = wanted;
        }
    }
}

fn keyboard(keys: Res<ButtonInput<KeyCode>>, time: Res<Time>, mut player: ResMut<Player>) {
    let player = &mut *player;
    let clock = &mut player.clock;
    let mut jump = Jump::None;
    for key in keys.get_just_pressed() {
        match key {
            KeyCode::Space | KeyCode::KeyK => jump = clock.toggle(),
            KeyCode::KeyL => clock.looping = !clock.looping,
            KeyCode::Period => jump = clock.step(true),
            KeyCode::Comma => jump = clock.step(false),
            KeyCode::BracketRight => clock.step_speed(true),
            KeyCode::BracketLeft => clock.step_speed(false),
            KeyCode::Home => jump = clock.seek(0),
            KeyCode::End => jump = clock.seek(u64::MAX),
            KeyCode::KeyR => player.view.reset(),
            KeyCode::KeyO | KeyCode::F3 => player.overlay = !player.overlay,
            _ => {}
        }
    }
    player.jump(jump);
    // Held keys: arrows orbit (pan with shift), +/- and page keys zoom.
    let dt = time.delta_secs();
    let axis = |neg: KeyCode, pos: KeyCode| {
        f32::from(u8::from(keys.pressed(pos))) - f32::from(u8::from(keys.pressed(neg)))
    };
    let arrows = Vec2::new(
        axis(KeyCode::ArrowLeft, KeyCode::ArrowRight),
        axis(KeyCode::ArrowUp, KeyCode::ArrowDown),
    );
    if arrows != Vec2::ZERO {
        let shift = keys.any_pressed([KeyCode::ShiftLeft, KeyCode::ShiftRight]);
        let pixels = Vec2::new(arrows.x, arrows.y) * 300.0 * dt;
        if shift {
            player.view.pan(pixels, 720);
        } else {
            player.view.rotate(pixels);
        }
    }
    let zoom = axis(KeyCode::Equal, KeyCode::Minus) + axis(KeyCode::PageUp, KeyCode::PageDown);
    if zoom != 0.0 {
        player.view.zoom((1.0 + 1.5 * dt as f64).powf(zoom as f64));
    }
}

/// The window's size and, when the pointer is over the timeline, the fraction it points at.
fn timeline_at(window: &Window, at: Vec2) -> Option<f64> {
    (at.y >= window.height() - TIMELINE_HEIGHT).then(|| (at.x / window.width().max(1.0)) as f64)
}

fn mouse(
    buttons: Res<ButtonInput<MouseButton>>,
    motion: Res<AccumulatedMouseMotion>,
    scroll: Res<AccumulatedMouseScroll>,
    windows: Query<&Window, With<PrimaryWindow>>,
    mut player: ResMut<Player>,
) {
    let Ok(window) = windows.single() else {
        return;
    };
    let cursor = window.cursor_position();
    let player = &mut *player;
    if buttons.just_pressed(MouseButton::Left) {
        player.scrubbing = cursor.and_then(|c| timeline_at(window, c)).is_some();
    }
    if !buttons.pressed(MouseButton::Left) {
        player.scrubbing = false;
    }
    let delta = Vec2::new(motion.delta.x, motion.delta.y);
    if player.scrubbing {
        if let Some(c) = cursor {
            let jump = player.clock.scrub((c.x / window.width().max(1.0)) as f64);
            if buttons.just_pressed(MouseButton::Left) || delta != Vec2::ZERO {
                player.jump(jump);
            }
        }
    } else if buttons.pressed(MouseButton::Left) {
        player.view.rotate(delta);
    } else if buttons.any_pressed([MouseButton::Right, MouseButton::Middle]) {
        player.view.pan(delta, window.physical_height());
    }
    let lines = match scroll.unit {
        MouseScrollUnit::Line => scroll.delta.y,
        MouseScrollUnit::Pixel => scroll.delta.y / 40.0,
    };
    if lines != 0.0 {
        player.view.zoom(0.9f64.powf(lines as f64));
    }
}

fn touch(
    mut touches: MessageReader<TouchInput>,
    time: Res<Time<Real>>,
    windows: Query<&Window, With<PrimaryWindow>>,
    mut player: ResMut<Player>,
) {
    let window = windows.single().ok();
    let height = window.map_or(720, Window::physical_height);
    let player = &mut *player;
    for t in touches.read() {
        let at = Vec2::new(t.position.x, t.position.y);
        let on_timeline = window.and_then(|w| timeline_at(w, t.position));
        let gestures = match t.phase {
            TouchPhase::Started if on_timeline.is_some() => {
                player.scrubbing = true;
                let jump = player.clock.scrub(on_timeline.unwrap_or(0.0));
                player.jump(jump);
                Vec::new()
            }
            TouchPhase::Started => {
                player.touches.start(t.id, at);
                Vec::new()
            }
            TouchPhase::Moved if player.scrubbing => {
                if let Some(w) = window {
                    let jump = player
                        .clock
                        .scrub((t.position.x / w.width().max(1.0)) as f64);
                    player.jump(jump);
                }
                Vec::new()
            }
            TouchPhase::Moved => player.touches.moved(t.id, at),
            TouchPhase::Ended | TouchPhase::Canceled => {
                player.scrubbing = false;
                player.touches.end(t.id, time.elapsed_secs_f64())
            }
        };
        for g in gestures {
            if g == Gesture::Reset {
                info!("view reset");
            }
            g.apply(&mut player.view, height);
        }
    }
}

/// Phones suspend apps (the window surface goes away): stop the clock and the decoder, and
/// carry on where we were on resume.
fn lifecycle(mut events: MessageReader<AppLifecycle>, mut player: ResMut<Player>) {
    for event in events.read() {
        let suspended = matches!(event, AppLifecycle::WillSuspend | AppLifecycle::Suspended);
        if suspended != player.suspended {
            player.suspended = suspended;
            if let Some(w) = &player.worker {
                w.set_suspended(suspended);
            }
        }
    }
}
