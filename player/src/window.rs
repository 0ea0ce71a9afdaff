//! The windowed app, shared by the desktop binary and the phone entry points (Android's
//! GameActivity, iOS's static library): default plugins with a window, the player plugin with
//! controls, the overlay and one splat camera.

use std::path::Path;

use bevy::prelude::*;
use bevy::window::{PresentMode, WindowMode};

use crate::app::{Budget, Player, PlayerOptions, PlayerPlugin, SourceOrError, splat_camera};
use crate::overlay::OverlayPlugin;
use crate::source::{FileSource, Source};
use crate::stage::without_models;

/// How the window looks.
pub struct WindowSettings {
    /// Title bar text.
    pub title: String,
    /// Initial size in logical pixels (ignored full screen).
    pub size: (u32, u32),
    /// Full screen (phones).
    pub fullscreen: bool,
    /// Whether the overlay starts shown.
    pub overlay: bool,
}

/// Opens `path` as a source; a failure becomes the message the window shows.
pub fn open_file(path: &Path) -> SourceOrError {
    FileSource::open(path)
        .map(Source::from)
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// The player app in a window; call `run()` on it.
pub fn window_app(source: SourceOrError, options: PlayerOptions, settings: WindowSettings) -> App {
    if let Err(e) = &source {
        error!("{e}");
    }
    let mut app = App::new();
    let mut window = Window {
        title: settings.title,
        resolution: (settings.size.0, settings.size.1).into(),
        present_mode: PresentMode::AutoVsync,
        ..default()
    };
    if settings.fullscreen {
        window.mode = WindowMode::BorderlessFullscreen(MonitorSelection::Primary);
    }
    let overlay = settings.overlay;
    app.add_plugins(without_models(DefaultPlugins.set(WindowPlugin {
        primary_window: Some(window),
        ..default()
    })))
    .add_plugins((PlayerPlugin::new(source, options, true), OverlayPlugin))
    .add_systems(
        Startup,
        move |mut commands: Commands, mut player: ResMut<Player>| {
            player.overlay = overlay;
            commands.spawn(splat_camera(&player));
        },
    );
    app
}

/// The phone app: full screen, touch controls, rendering within [`Budget::phone`], playing
/// `path` (a file in the app's storage) in a loop.
pub fn phone_app(path: &Path) -> App {
    window_app(
        open_file(path),
        PlayerOptions {
            budget: Budget::phone(),
            ..PlayerOptions::default()
        },
        WindowSettings {
            title: "Splatcast".into(),
            size: (1280, 720),
            fullscreen: true,
            overlay: false,
        },
    )
}
