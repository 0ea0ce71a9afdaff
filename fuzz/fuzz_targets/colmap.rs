//! Fuzzes the COLMAP model readers (binary and text): the first byte picks the file kind.
#![no_main]

use libfuzzer_sys::fuzz_target;
use splatcast_protocol::colmap;

fuzz_target!(|data: &[u8]| {
    let Some((&kind, rest)) = data.split_first() else {
        return;
    };
    let text = std::str::from_utf8(rest).unwrap_or("");
    match kind % 6 {
        0 => drop(colmap::parse_cameras_bin(rest)),
        1 => drop(colmap::parse_images_bin(rest)),
        2 => drop(colmap::parse_points_bin(rest)),
        3 => drop(colmap::parse_cameras_txt(text)),
        4 => drop(colmap::parse_images_txt(text)),
        _ => drop(colmap::parse_points_txt(text)),
    }
});
