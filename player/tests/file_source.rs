//! The file source seeks to any frame through the GOP index and returns the decoded frame.

use std::io::Write;

use splatcast_encoder::{EncodeOptions, SequenceEncoder, demo, stream_layout};
use splatcast_player::{FileSource, FrameSource};

#[test]
fn seeks_across_gops_and_rejects_frames_past_the_end() {
    let options = EncodeOptions {
        gop: 3,
        ..EncodeOptions::default()
    };
    let mut enc = SequenceEncoder::new(Vec::new(), stream_layout(&options, 800, 1), options, true);
    for t in 0..7 {
        enc.push(demo::galaxy_frame(800, t, 30.0)).unwrap();
    }
    let encoded = enc.finish().unwrap();
    assert_eq!(encoded.reports.len(), 3);
    let (bytes, reference) = (encoded.output, encoded.reference.unwrap());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("g.mp4");
    std::fs::File::create(&path)
        .unwrap()
        .write_all(&bytes)
        .unwrap();

    let mut source = FileSource::open(&path).unwrap();
    assert_eq!(source.frame_count(), 7);
    assert_eq!(source.fps(), 30.0);
    for index in [5u64, 0, 6, 3] {
        let frame = source.frame(index).unwrap();
        let expected = &reference[index as usize];
        assert_eq!(frame.len(), 800);
        let worst = frame
            .positions
            .iter()
            .zip(&expected.positions)
            .map(|(a, b)| a.distance(*b))
            .fold(0.0f32, f32::max);
        assert!(worst < 0.05 * expected.extent(), "frame {index}: {worst}");
    }
    assert!(source.frame(7).is_err());
}
