//! Fuzzes the `.npy` / `poses_bounds.npy` reader.
#![no_main]

use libfuzzer_sys::fuzz_target;
use splatcast_protocol::llff::parse_poses_bounds;

fuzz_target!(|data: &[u8]| {
    let _ = parse_poses_bounds(data);
});
