//! The overlay: playback figures (fps, decode ms, GPU ms, bitrate, buffered frames, Gaussian
//! count, dropped frames, speed; for live broadcasts join time, delay and stalls) at the top
//! left, messages, and the timeline bar at the bottom, whose fill follows the clock and which
//! the pointer scrubs (files only). `O` toggles it.

use std::time::Instant;

use bevy::prelude::*;

use crate::app::{Player, PlayerSystems, TIMELINE_HEIGHT};
use crate::render::RenderFeedback;

/// Adds the overlay to an app with a [`crate::app::PlayerPlugin`].
pub struct OverlayPlugin;

impl Plugin for OverlayPlugin {
    fn build(&self, app: &mut App) {
        app.add_systems(Startup, spawn)
            .add_systems(Update, update.after(PlayerSystems::Views));
    }
}

#[derive(Component)]
struct Figures;

#[derive(Component)]
struct Message;

#[derive(Component)]
struct Timeline;

#[derive(Component)]
struct TimelineFill;

/// Frames presented over the last half second, for the fps figure.
#[derive(Resource)]
struct FpsMeter {
    since: Instant,
    frames: u32,
    fps: f64,
}

fn spawn(mut commands: Commands) {
    commands.insert_resource(FpsMeter {
        since: Instant::now(),
        frames: 0,
        fps: 0.0,
    });
    let font = TextFont {
        font_size: FontSize::Px(15.0),
        ..default()
    };
    commands.spawn((
        Figures,
        Text::new(""),
        font.clone(),
        TextColor(Color::srgb(0.9, 0.95, 0.9)),
        BackgroundColor(Color::srgba(0.0, 0.0, 0.0, 0.55)),
        Node {
            position_type: PositionType::Absolute,
            left: Val::Px(8.0),
            top: Val::Px(8.0),
            padding: UiRect::all(Val::Px(6.0)),
            ..default()
        },
    ));
    commands.spawn((
        Message,
        Text::new(""),
        TextFont {
            font_size: FontSize::Px(22.0),
            ..default()
        },
        TextColor(Color::srgb(1.0, 0.75, 0.35)),
        Node {
            position_type: PositionType::Absolute,
            left: Val::Px(8.0),
            bottom: Val::Px(TIMELINE_HEIGHT + 8.0),
            max_width: Val::Percent(95.0),
            ..default()
        },
    ));
    commands
        .spawn((
            Timeline,
            BackgroundColor(Color::srgba(1.0, 1.0, 1.0, 0.18)),
            Node {
                position_type: PositionType::Absolute,
                left: Val::Px(0.0),
                right: Val::Px(0.0),
                bottom: Val::Px(0.0),
                height: Val::Px(TIMELINE_HEIGHT),
                ..default()
            },
        ))
        .with_child((
            TimelineFill,
            BackgroundColor(Color::srgba(0.35, 0.7, 1.0, 0.8)),
            Node {
                height: Val::Percent(100.0),
                width: Val::Percent(0.0),
                ..default()
            },
        ));
}

/// One line per figure.
fn figures(player: &Player, report: &crate::render::RenderReport, fps: f64) -> String {
    let Some(worker) = &player.worker else {
        return String::new();
    };
    let stats = worker.stats();
    let frame = player
        .shown
        .map_or_else(|| "-".into(), |p| p.frame.to_string());
    let gpu = report
        .gpu_ms
        .map_or_else(|| "n/a".into(), |ms| format!("{ms:.2} ms"));
    let paused = if player.clock.playing { "" } else { "  paused" };
    let (position, live) = match &player.live {
        Some(live) => (
            format!("LIVE   frame {frame}{paused}"),
            format!(
                "\njoin {:.0} ms   arrival→screen {:.0} ms   stalls {} (longest {:.0} ms)   \
                 skipped {}",
                stats.joined_ms.unwrap_or(0.0),
                live.delay_ms,
                live.stalls,
                live.longest_stall_ms,
                stats.skipped
            ),
        ),
        None => (
            format!(
                "frame {frame}/{}   {:.2}x{paused}{}",
                player.clock.frame_count(),
                player.clock.speed(),
                if player.clock.looping { "  loop" } else { "" },
            ),
            String::new(),
        ),
    };
    let room = player.room.as_ref().map_or_else(String::new, |room| {
        let names: Vec<&str> = room.names.values().map(String::as_str).collect();
        if names.is_empty() {
            "\nroom: waiting for participants".into()
        } else {
            format!("\nroom: {}", names.join(", "))
        }
    });
    format!(
        "{fps:.0} fps   {position}\n\
         decode {:.1} ms/frame   GPU {gpu}   {:.2} Mbit/s\n\
         buffered {}   dropped {}   {} Gaussians   {}x{}{live}{room}",
        stats.ms_per_frame,
        stats.bits_per_second / 1e6,
        worker.buffered(),
        player.dropped,
        report.gaussians,
        report.size.0,
        report.size.1,
    )
}

#[allow(clippy::type_complexity)]
fn update(
    player: Res<Player>,
    feedback: Res<RenderFeedback>,
    mut meter: ResMut<FpsMeter>,
    mut texts: ParamSet<(
        Query<(&mut Text, &mut Visibility), With<Figures>>,
        Query<&mut Text, With<Message>>,
    )>,
    mut timeline: Query<&mut Visibility, (With<Timeline>, Without<Figures>)>,
    mut fill: Query<&mut Node, With<TimelineFill>>,
) {
    meter.frames += 1;
    let elapsed = meter.since.elapsed().as_secs_f64();
    if elapsed >= 0.5 {
        meter.fps = meter.frames as f64 / elapsed;
        meter.frames = 0;
        meter.since = Instant::now();
    }
    let report = feedback.get();
    let shown = if player.overlay {
        Visibility::Inherited
    } else {
        Visibility::Hidden
    };
    if let Ok((mut text, mut visibility)) = texts.p0().single_mut() {
        *visibility = shown;
        text.0 = figures(&player, &report, meter.fps);
    }
    let message = player
        .fatal
        .iter()
        .chain(&player.log)
        .chain(&report.error)
        .cloned()
        .collect::<Vec<_>>()
        .join("\n");
    if let Ok(mut text) = texts.p1().single_mut()
        && text.0 != message
    {
        text.0 = message;
    }
    if let Ok(mut v) = timeline.single_mut() {
        // A live broadcast has no timeline to scrub.
        *v = if player.live.is_some() {
            Visibility::Hidden
        } else {
            shown
        };
    }
    if let Ok(mut node) = fill.single_mut() {
        node.width = Val::Percent((100.0 * player.clock.progress()) as f32);
    }
}
