//! Fuzzes the transforms.json reader: any text must parse or fail with an error, never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use splatcast_protocol::transforms::parse_transforms;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = parse_transforms(text);
    }
});
