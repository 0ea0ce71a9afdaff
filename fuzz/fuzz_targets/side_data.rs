//! Fuzzes the per-GOP side-data parser on decompressed input (compressed here so the fuzzer
//! reaches the parser rather than zstd's checks), then unpacking against it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use splatcast_protocol::gop::GopSide;

fuzz_target!(|data: &[u8]| {
    let compressed = zstd::bulk::compress(data, 1).expect("in-memory");
    let _ = GopSide::from_bytes(&compressed);
});
