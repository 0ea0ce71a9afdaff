//! iOS entry point: `main.m` calls `splatcast_main`, which plays `stream.mp4` from the app's
//! Documents folder (copied there with Finder / iTunes file sharing, enabled in Info.plist).

use std::path::PathBuf;

use bevy::prelude::*;

/// Runs the player; never returns (UIKit owns the main loop from here).
#[unsafe(no_mangle)]
pub extern "C" fn splatcast_main() {
    let documents = std::env::var_os("HOME")
        .map(|home| PathBuf::from(home).join("Documents"))
        .unwrap_or_default();
    splatcast_player::window::phone_app(&documents.join("stream.mp4")).run();
}
