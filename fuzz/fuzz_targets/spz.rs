//! Fuzzes the spz reader: any bytes must parse or fail with an error, never panic or over-allocate.
#![no_main]

use libfuzzer_sys::fuzz_target;
use splatcast_protocol::formats::{SplatFormat, parse};

fuzz_target!(|data: &[u8]| {
    let _ = parse(data, SplatFormat::Spz);
});
