//! The sans-IO stream writer: both fragmentations decode to the same frames, per-frame chunks are
//! one-track fragments equal to a GOP fragment split by frame, and a file cut mid-GOP keeps its
//! complete GOPs only.

use std::io::Cursor;
use std::path::PathBuf;

use splatcast_protocol::GaussianFrame;
use splatcast_protocol::av1::{EncoderSettings, Rav1dDecoder};
use splatcast_protocol::container::parse_init;
use splatcast_protocol::container::{media_segment, parse_fragment};
use splatcast_protocol::formats;
use splatcast_protocol::gop::{Attribute, GopStart};
use splatcast_protocol::layout::Grid;
use splatcast_protocol::stream::{
    Fragmentation, GopAssembler, StreamLayout, StreamReader, StreamWriter, TrackSet, WrittenGop,
    split_by_frame,
};

fn wave(frames: usize) -> Vec<GaussianFrame> {
    let dir =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/seq_playcanvas_wave");
    (1..=frames)
        .map(|i| formats::load(&dir.join(format!("wave_{i:04}.sog"))).unwrap())
        .collect()
}

fn layout(frame: &GaussianFrame) -> StreamLayout {
    StreamLayout {
        fps: 30.0,
        grid: Grid::for_count(frame.len()),
        sh_degree: frame.sh_degree,
        tracks: Attribute::for_degree(frame.sh_degree)
            .into_iter()
            .map(|a| (a, 10))
            .collect(),
    }
}

/// Writes GOPs of 3 and 2 frames; returns the file and what each GOP produced.
fn write(frames: &[GaussianFrame], fragmentation: Fragmentation) -> (Vec<u8>, Vec<WrittenGop>) {
    let layout = layout(&frames[0]);
    let settings = vec![
        EncoderSettings {
            speed: 10,
            quantizer: 80,
            bitrate: 0,
            fps: 30.0,
            threads: 1,
        };
        layout.tracks.len()
    ];
    let mut writer = StreamWriter::new(layout, settings, fragmentation, 1);
    let mut out = Vec::new();
    let mut gops = Vec::new();
    for (range, start) in [(0..3, GopStart::First), (3..5, GopStart::Length)] {
        let n = range.len();
        let gop = writer.write_gop(&frames[range], start, vec![0; n]).unwrap();
        if let Some(init) = &gop.init {
            out.extend_from_slice(init);
        }
        for c in &gop.chunks {
            out.extend_from_slice(&c.bytes);
        }
        gops.push(gop);
    }
    out.extend(writer.finish().unwrap());
    (out, gops)
}

fn decode_all(bytes: &[u8]) -> Vec<GaussianFrame> {
    let mut reader = StreamReader::open(Cursor::new(bytes)).unwrap();
    let mut decoder = Rav1dDecoder::new(1);
    (0..reader.gop_count())
        .flat_map(|g| reader.read_gop(g, &mut decoder).unwrap().frames)
        .collect()
}

#[test]
fn both_fragmentations_decode_to_the_same_frames() {
    let frames = wave(5);
    let (by_gop, gop_parts) = write(&frames, Fragmentation::Gop);
    let (by_frame, frame_parts) = write(&frames, Fragmentation::Frame);
    let tracks = layout(&frames[0]).tracks.len();

    let decoded = decode_all(&by_gop);
    assert_eq!(decoded.len(), 5);
    assert_eq!(decoded, decode_all(&by_frame));

    let mut reader = StreamReader::open(Cursor::new(&by_frame)).unwrap();
    assert_eq!(reader.gop_count(), 2);
    assert_eq!(reader.gop_span(1).unwrap(), (3, 2));
    assert!(!reader.truncated());

    for (g, (gop, per_frame)) in gop_parts.iter().zip(&frame_parts).enumerate() {
        assert_eq!(gop.chunks.len(), 1);
        // The side data, then one chunk per frame and track, each a one-track fragment.
        assert_eq!(per_frame.chunks.len(), 1 + gop.frames * tracks);
        assert_eq!(per_frame.chunks[0].track, Some(tracks as u32 + 1));
        for (k, chunk) in per_frame.chunks[1..].iter().enumerate() {
            let f = parse_fragment(&chunk.bytes).unwrap();
            assert_eq!(f.tracks.len(), 1);
            assert_eq!(chunk.track, Some(f.tracks[0].0));
            assert_eq!(f.tracks[0].1[0].sync, k < tracks, "GOP {g} chunk {k}");
            assert_eq!(chunk.frame, gop.first_frame + (k / tracks) as u64);
        }
        // Splitting the GOP's fragment gives exactly the frame-fragmented bytes.
        let whole = parse_fragment(&gop.chunks[0].bytes).unwrap();
        let split: Vec<Vec<u8>> = split_by_frame(&whole, tracks as u32 + 1)
            .iter()
            .map(|(_, _, f)| media_segment(f))
            .collect();
        let chunks: Vec<Vec<u8>> = per_frame.chunks.iter().map(|c| c.bytes.clone()).collect();
        assert_eq!(split, chunks);
    }
}

#[test]
fn frame_fragmented_file_cut_mid_gop_keeps_complete_gops() {
    let frames = wave(5);
    let (bytes, parts) = write(&frames, Fragmentation::Frame);
    let init = parts[0].init.as_ref().unwrap().len();
    let first: usize = parts[0].chunks.iter().map(|c| c.bytes.len()).sum();
    // At a chunk boundary inside the second GOP, and inside a chunk.
    let second = &parts[1].chunks;
    let boundary = init + first + second[0].bytes.len() + second[1].bytes.len();
    for cut in [boundary, boundary + 7] {
        let mut reader = StreamReader::open(Cursor::new(&bytes[..cut])).unwrap();
        assert_eq!(reader.gop_count(), 1, "cut at {cut}");
        assert!(reader.truncated());
        let gop = reader.read_gop(0, &mut Rav1dDecoder::new(1)).unwrap();
        assert_eq!(gop.frames.len(), 3);
    }
}

#[test]
fn assembler_rebuilds_gops_from_interleaved_chunks() {
    let frames = wave(5);
    let (bytes, parts) = write(&frames, Fragmentation::Frame);
    let movie = parse_init(parts[0].init.as_ref().unwrap()).unwrap();
    let tracks = TrackSet::of(&movie).unwrap();
    let mut reader = StreamReader::open(Cursor::new(&bytes)).unwrap();
    // Tracks arrive on their own streams: each GOP track by track, last track first.
    let by_track = |gop: &WrittenGop| -> Vec<(u64, Vec<u8>)> {
        (1..=tracks.side)
            .rev()
            .flat_map(|id| {
                gop.chunks
                    .iter()
                    .filter(move |c| c.track == Some(id))
                    .map(|c| (gop.index, c.bytes.clone()))
            })
            .collect()
    };
    let feed = |assembler: &mut GopAssembler, order: &[(u64, Vec<u8>)]| {
        let mut done = Vec::new();
        for (i, (group, chunk)) in order.iter().enumerate() {
            if i == 3 {
                // Garbage in between is refused without harm.
                assert!(assembler.push(0, &chunk[..chunk.len() / 2]).is_err());
                assert!(assembler.push(0, b"not a fragment").is_err());
            }
            done.extend(assembler.push(*group, chunk).unwrap());
        }
        done
    };

    // Watching from the start: both GOPs, in order, equal to the file's.
    let mut assembler = GopAssembler::new(tracks.clone(), 4);
    let order: Vec<_> = parts.iter().flat_map(by_track).collect();
    let done = feed(&mut assembler, &order);
    assert_eq!(done.iter().map(|g| g.group).collect::<Vec<_>>(), vec![0, 1]);
    for gop in done {
        let want = reader.gop_fragment(gop.group as usize).unwrap();
        let mut decoder = Rav1dDecoder::new(1);
        let got = tracks.decode(&gop.fragment, &mut decoder).unwrap();
        let expect = tracks.decode(&want, &mut decoder).unwrap();
        assert_eq!(got.0, expect.0);
        assert_eq!(got.2, expect.2);
    }

    // Joining late, with both GOPs coming from a cache at once (side data first, newest
    // first): it starts at the newest GOP.
    let mut late = GopAssembler::new(tracks.clone(), 4);
    let mut order: Vec<_> = parts
        .iter()
        .rev()
        .flat_map(|g| {
            g.chunks
                .iter()
                .filter(|c| c.track == Some(tracks.side))
                .map(|c| (g.index, c.bytes.clone()))
        })
        .collect();
    for id in 1..tracks.side {
        for gop in &parts {
            order.extend(
                gop.chunks
                    .iter()
                    .filter(|c| c.track == Some(id))
                    .map(|c| (gop.index, c.bytes.clone())),
            );
        }
    }
    let done = feed(&mut late, &order);
    assert_eq!(done.iter().map(|g| g.group).collect::<Vec<_>>(), vec![1]);

    // A GOP still incomplete when a newer one starts, before anything was shown, is given up.
    let mut behind = GopAssembler::new(tracks.clone(), 2);
    let mut order = by_track(&parts[0]);
    order.truncate(order.len() - 1);
    order.extend(by_track(&parts[1]));
    let done = feed(&mut behind, &order);
    assert_eq!(done.iter().map(|g| g.group).collect::<Vec<_>>(), vec![1]);
    assert_eq!(behind.next_group(), 2);
}
