//! Fuzzes the container: init-segment and fragment parsers and the seeking file reader.
#![no_main]

use libfuzzer_sys::fuzz_target;
use splatcast_protocol::container::{Mp4Reader, parse_fragment, parse_fragment_span, parse_init};

fuzz_target!(|data: &[u8]| {
    let _ = parse_init(data);
    let _ = parse_fragment(data);
    let _ = parse_fragment_span(data);
    if let Ok(mut reader) = Mp4Reader::open(std::io::Cursor::new(data)) {
        for i in 0..reader.fragments.len().min(8) {
            let _ = reader.fragment(i);
            let _ = reader.fragment_span(i);
        }
    }
});
