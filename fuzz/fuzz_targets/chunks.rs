//! Fuzzes what a network subscriber parses: a stream reader over arbitrary bytes, and chunks of
//! arbitrary groups fed to the GOP and frame assemblers (hostile or corrupt peers must not crash
//! a player).
#![no_main]

use libfuzzer_sys::fuzz_target;
use splatcast_protocol::stream::{FrameAssembler, GopAssembler, StreamReader, TrackSet};

fuzz_target!(|data: &[u8]| {
    if let Ok(mut reader) = StreamReader::open(std::io::Cursor::new(data)) {
        for g in 0..reader.gop_count().min(4) {
            let _ = reader.gop_span(g);
            let _ = reader.gop_sizes(g);
        }
    }
    let tracks = TrackSet {
        side: 3,
        video: vec![1, 2],
    };
    let mut assembler = GopAssembler::new(tracks.clone(), 2);
    let mut frames = FrameAssembler::new(tracks, 3, 3);
    // Split the input into chunks: a group byte, a length byte, then that many bytes.
    let mut rest = data;
    while rest.len() >= 2 {
        let (group, len) = (rest[0] as u64, rest[1] as usize);
        let end = (2 + len).min(rest.len());
        let _ = assembler.push(group, &rest[2..end]);
        let _ = frames.push(group, &rest[2..end]);
        rest = &rest[end..];
    }
});
