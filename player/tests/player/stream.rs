//! The file source and the decode worker: planes match the encoder's own decode, seeking lands
//! on the right frame through the GOP before it, the clock drops late frames instead of
//! waiting, and bad files degrade the way a viewer expects.

use std::time::{Duration, Instant};

use splatcast_player::decode::{DecodeWorker, Position};
use splatcast_player::source::{FileSource, PlaneSource};
use splatcast_protocol::container::Mp4Reader;
use splatcast_protocol::container::writer::{init_segment, media_segment};
use splatcast_protocol::gop::{GopSide, unpack};

use crate::encode_demo;

fn at(frame: u64) -> Position {
    Position { lap: 0, frame }
}

/// Waits (bounded) until the worker holds `n` frames, without moving its clock.
fn buffered(worker: &DecodeWorker, n: usize) {
    let start = Instant::now();
    while worker.buffered() < n {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "{n} frames never came"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Waits (bounded) until the worker has a frame at or after `p`.
fn ready(worker: &DecodeWorker, p: Position) {
    assert!(worker.wait_for(p), "frame {p:?} never came");
}

#[test]
fn planes_unpack_to_the_encoders_frames_and_seeks_land_on_the_frame() {
    let dir = tempfile::tempdir().unwrap();
    let (path, reference) = encode_demo(dir.path(), "g.mp4", 800, 7, 3);
    let mut source = FileSource::open(&path).unwrap();
    assert_eq!((source.frame_count(), source.gop_count()), (7, 3));
    assert_eq!(source.fps(), 30.0);
    assert_eq!(
        [source.gop_of(0), source.gop_of(5), source.gop_of(6)],
        [0, 1, 2]
    );
    let gop = source.decode_gop(1).unwrap();
    assert_eq!((gop.first_frame, gop.frames.len()), (3, 3));
    let tracks: Vec<Vec<_>> = (0..gop.frames[0].len())
        .map(|t| gop.frames.iter().map(|f| f[t].clone()).collect())
        .collect();
    let frames = unpack(&gop.side, &tracks).unwrap();
    for (k, frame) in frames.iter().enumerate() {
        let expected = &reference[3 + k];
        let worst = frame
            .positions
            .iter()
            .zip(&expected.positions)
            .map(|(a, b)| a.distance(*b))
            .fold(0.0f32, f32::max);
        assert!(worst < 0.01 * expected.extent(), "frame {}: {worst}", 3 + k);
    }
    assert!(source.decode_gop(3).is_err());

    let worker = DecodeWorker::spawn(Box::new(source), 4);
    for frame in [5u64, 0, 6, 3] {
        worker.seek(at(frame));
        ready(&worker, at(frame));
        let taken = worker.take(at(frame));
        assert_eq!(taken.frame.map(|f| f.at), Some(at(frame)));
    }
}

#[test]
fn the_clock_drops_late_frames_and_loops_by_lap() {
    let dir = tempfile::tempdir().unwrap();
    let (path, _) = encode_demo(dir.path(), "g.mp4", 300, 6, 2);
    let worker = DecodeWorker::spawn(Box::new(FileSource::open(&path).unwrap()), 8);
    worker.set_looping(true);
    buffered(&worker, 4);
    // The clock is at frame 3: frames 0..3 are dropped, 3 is shown.
    let taken = worker.take(at(3));
    assert_eq!(taken.frame.map(|f| f.at), Some(at(3)));
    assert_eq!(taken.dropped, 3);
    // Nothing new at the same clock: keep showing what is on screen, no waiting.
    assert!(worker.take(at(3)).frame.is_none());
    // Past the end the decoder continues with the next lap.
    let next_lap = Position { lap: 1, frame: 1 };
    ready(&worker, next_lap);
    let taken = worker.take(next_lap);
    assert_eq!(taken.frame.map(|f| f.at), Some(next_lap));
    assert!(worker.stats().decoded >= 8);
}

#[test]
fn decoding_jumps_to_the_clock_when_far_behind() {
    let dir = tempfile::tempdir().unwrap();
    let (path, _) = encode_demo(dir.path(), "g.mp4", 300, 12, 2);
    let worker = DecodeWorker::spawn(Box::new(FileSource::open(&path).unwrap()), 2);
    ready(&worker, at(0));
    // The clock races ahead to frame 10 while the queue is full of frames 0..2: those are
    // dropped, and the decoder goes straight to frame 10's GOP instead of decoding 2..10.
    let taken = worker.take(at(10));
    assert!(taken.frame.is_some());
    ready(&worker, at(10));
    let decoded_before = worker.stats().decoded;
    let taken = worker.take(at(10));
    assert_eq!(taken.frame.map(|f| f.at), Some(at(10)));
    assert!(
        decoded_before <= 8,
        "decoded {decoded_before} frames to reach frame 10"
    );
}

/// Rewrites a file fragment by fragment, changing the side-data sample of GOP `gop`.
fn rewrite_side(bytes: &[u8], gop: usize, change: impl Fn(Vec<u8>) -> Vec<u8>) -> Vec<u8> {
    let mut reader = Mp4Reader::open(std::io::Cursor::new(bytes)).unwrap();
    let mut out = init_segment(&reader.movie);
    for i in 0..reader.fragments.len() {
        let mut fragment = reader.fragment(i).unwrap();
        if i == gop {
            for (_, samples) in &mut fragment.tracks {
                if GopSide::from_bytes(&samples[0].data).is_ok() {
                    samples[0].data = change(std::mem::take(&mut samples[0].data));
                }
            }
        }
        out.extend(media_segment(&fragment));
    }
    out
}

#[test]
fn a_corrupt_gop_is_skipped_and_logged_and_playback_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let (path, _) = encode_demo(dir.path(), "g.mp4", 300, 9, 3);
    let bytes = std::fs::read(&path).unwrap();
    let broken = rewrite_side(&bytes, 1, |data| vec![0xA5; data.len()]);
    let bad = dir.path().join("bad.mp4");
    std::fs::write(&bad, broken).unwrap();
    let source = FileSource::open(&bad).unwrap();
    assert_eq!(source.frame_count(), 9);
    let worker = DecodeWorker::spawn(Box::new(source), 16);
    buffered(&worker, 6);
    let shown: Vec<u64> = std::iter::from_fn(|| {
        let mut f = None;
        for frame in 0..9 {
            if let Some(x) = worker.take(at(frame)).frame {
                f.get_or_insert(Vec::new()).push(x.at.frame);
            }
        }
        f
    })
    .next()
    .unwrap();
    assert_eq!(shown, vec![0, 1, 2, 6, 7, 8]);
    let log = worker.drain_log();
    assert!(
        log.iter()
            .any(|l| l.contains("GOP 1") && l.contains("skipped")),
        "{log:?}"
    );
}

#[test]
fn a_file_cut_mid_fragment_plays_its_complete_gops_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let (path, _) = encode_demo(dir.path(), "g.mp4", 300, 9, 3);
    let bytes = std::fs::read(&path).unwrap();
    let reader = Mp4Reader::open(std::io::Cursor::new(&bytes)).unwrap();
    let last = reader.fragments[2];
    let cut = dir.path().join("cut.mp4");
    std::fs::write(&cut, &bytes[..(last.offset + last.length / 2) as usize]).unwrap();
    let source = FileSource::open(&cut).unwrap();
    assert_eq!(source.frame_count(), 6);
    let message = source.cut_short().unwrap();
    assert!(message.contains("6 frames"), "{message}");
    let worker = DecodeWorker::spawn(Box::new(source), 16);
    assert!(
        worker
            .drain_log()
            .iter()
            .any(|l| l.contains("ends inside a fragment"))
    );
    ready(&worker, at(5));
    assert!(!worker.wait_for(at(6)));
    let start = Instant::now();
    while !worker.finished() {
        worker.take(at(5));
        assert!(start.elapsed() < Duration::from_secs(30));
    }
}

#[test]
fn an_unsupported_version_is_refused_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let (path, _) = encode_demo(dir.path(), "g.mp4", 300, 3, 3);
    let bytes = std::fs::read(&path).unwrap();
    let future = rewrite_side(&bytes, 0, |data| {
        let mut raw = zstd::bulk::decompress(&data, 1 << 24).unwrap();
        raw[4] = 200;
        zstd::bulk::compress(&raw, 3).unwrap()
    });
    let file = dir.path().join("future.mp4");
    std::fs::write(&file, future).unwrap();
    let message = FileSource::open(&file).err().unwrap().to_string();
    assert!(
        message.contains("version 200 is not supported"),
        "{message}"
    );
    assert!(FileSource::open(&dir.path().join("missing.mp4")).is_err());
    std::fs::write(dir.path().join("junk.mp4"), b"not a video at all").unwrap();
    assert!(FileSource::open(&dir.path().join("junk.mp4")).is_err());
}
