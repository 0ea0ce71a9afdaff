//! The controls inside a real bevy app (no GPU needed): simulated touches orbit, pinch, pan,
//! double-tap reset and scrub the timeline; suspend stops the clock and the decoder, resume
//! carries on.

use std::time::Duration;

use bevy::input::InputPlugin;
use bevy::input::touch::{TouchInput, TouchPhase};
use bevy::prelude::*;
use bevy::window::{AppLifecycle, PrimaryWindow, WindowResolution};
use splatcast_player::app::{Player, PlayerOptions, PlayerPlugin};
use splatcast_player::source::FileSource;

use crate::encode_demo;

struct Phone {
    app: App,
    window: Entity,
}

impl Phone {
    fn new(path: &std::path::Path) -> Self {
        let source = FileSource::open(path).map_err(|e| e.to_string());
        Self::with(source.map(Into::into))
    }

    fn with(source: splatcast_player::app::SourceOrError) -> Self {
        let mut app = App::new();
        app.add_plugins((MinimalPlugins, InputPlugin))
            .add_message::<AppLifecycle>();
        app.add_plugins(PlayerPlugin::new(source, PlayerOptions::default(), true));
        let window = app
            .world_mut()
            .spawn((
                Window {
                    resolution: WindowResolution::new(640, 480),
                    ..default()
                },
                PrimaryWindow,
            ))
            .id();
        app.update();
        Self { app, window }
    }

    fn touch(&mut self, id: u64, phase: TouchPhase, x: f32, y: f32) {
        let window = self.window;
        self.app.world_mut().write_message(TouchInput {
            phase,
            position: Vec2::new(x, y),
            window,
            force: None,
            id,
        });
        self.app.update();
    }

    fn player(&self) -> &Player {
        self.app.world().resource::<Player>()
    }
}

#[test]
fn touches_drive_the_camera_and_the_timeline() {
    let dir = tempfile::tempdir().unwrap();
    let (path, _) = encode_demo(dir.path(), "g.mp4", 300, 6, 3);
    let mut phone = Phone::new(&path);
    let home = phone.player().view.clone();

    phone.touch(1, TouchPhase::Started, 100.0, 100.0);
    phone.touch(1, TouchPhase::Moved, 160.0, 100.0);
    phone.touch(1, TouchPhase::Ended, 160.0, 100.0);
    let turned = phone.player().view.orbit.azimuth - home.orbit.azimuth;
    assert!(
        (turned + 18.0).abs() < 1e-6,
        "one-finger drag turned {turned}°"
    );

    phone.touch(2, TouchPhase::Started, 200.0, 200.0);
    phone.touch(3, TouchPhase::Started, 300.0, 200.0);
    phone.touch(3, TouchPhase::Moved, 400.0, 200.0);
    let ratio = phone.player().view.orbit.distance / home.orbit.distance;
    assert!(
        (ratio - 0.5).abs() < 1e-6,
        "pinch to twice the spread zoomed {ratio}x"
    );
    let centre = phone.player().view.centre;
    phone.touch(2, TouchPhase::Moved, 200.0, 260.0);
    phone.touch(3, TouchPhase::Moved, 400.0, 260.0);
    assert!(
        phone.player().view.centre.distance(centre) > 1e-4,
        "two-finger drag pans"
    );
    phone.touch(2, TouchPhase::Ended, 200.0, 260.0);
    phone.touch(3, TouchPhase::Ended, 400.0, 260.0);

    phone.touch(4, TouchPhase::Started, 50.0, 50.0);
    phone.touch(4, TouchPhase::Ended, 50.0, 50.0);
    phone.touch(5, TouchPhase::Started, 52.0, 51.0);
    phone.touch(5, TouchPhase::Ended, 52.0, 51.0);
    assert_eq!(phone.player().view, home, "double tap resets the view");

    // A touch on the timeline bar seeks: the middle of the bar is the middle of the stream.
    phone.touch(6, TouchPhase::Started, 320.0, 475.0);
    phone.touch(6, TouchPhase::Ended, 320.0, 475.0);
    assert_eq!(phone.player().clock.position().frame, 3);
    assert_eq!(
        phone.player().view,
        home,
        "scrubbing does not move the camera"
    );
}

#[test]
fn suspend_stops_the_clock_and_resume_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let (path, _) = encode_demo(dir.path(), "g.mp4", 300, 30, 10);
    let mut phone = Phone::new(&path);
    phone
        .app
        .world_mut()
        .write_message(AppLifecycle::WillSuspend);
    phone.app.world_mut().write_message(AppLifecycle::Suspended);
    phone.app.update();
    assert!(phone.player().suspended);
    let paused_at = phone.player().clock.position();
    for _ in 0..5 {
        std::thread::sleep(Duration::from_millis(20));
        phone.app.update();
    }
    assert_eq!(phone.player().clock.position(), paused_at);
    phone
        .app
        .world_mut()
        .write_message(AppLifecycle::WillResume);
    phone.app.world_mut().write_message(AppLifecycle::Running);
    phone.app.update();
    assert!(!phone.player().suspended);
    for _ in 0..10 {
        std::thread::sleep(Duration::from_millis(20));
        phone.app.update();
    }
    assert!(
        phone.player().clock.position() > paused_at,
        "the clock moves again"
    );
    assert!(phone.player().shown.is_some(), "frames reach the screen");
}

#[test]
fn a_file_that_cannot_be_played_is_a_message_not_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let (path, _) = encode_demo(dir.path(), "g.mp4", 300, 3, 3);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes.truncate(100);
    let broken = dir.path().join("broken.mp4");
    std::fs::write(&broken, bytes).unwrap();
    let mut phone = Phone::with(splatcast_player::window::open_file(&broken));
    let fatal = phone.player().fatal.clone().unwrap();
    assert!(
        fatal.contains("broken.mp4") && fatal.contains("moov"),
        "{fatal}"
    );
    // Controls and the clock keep working on nothing.
    phone.touch(1, TouchPhase::Started, 10.0, 10.0);
    phone.touch(1, TouchPhase::Moved, 40.0, 10.0);
    phone.touch(1, TouchPhase::Ended, 40.0, 10.0);
    phone.touch(2, TouchPhase::Started, 300.0, 475.0);
    phone.touch(2, TouchPhase::Ended, 300.0, 475.0);
    for _ in 0..3 {
        phone.app.update();
    }
    assert!(phone.player().shown.is_none());
}
