//! The sans-IO stream writer: both fragmentations decode to the same frames, per-frame chunks are
//! one-track fragments equal to a GOP fragment split by frame, and a file cut mid-GOP keeps its
//! complete GOPs only.

use std::io::Cursor;
use std::path::PathBuf;

use splatcast_protocol::GaussianFrame;
use splatcast_protocol::av1::{EncoderSettings, PlaneDecoder, Rav1dDecoder};
use splatcast_protocol::container::parse_init;
use splatcast_protocol::container::{media_segment, parse_fragment};
use splatcast_protocol::formats;
use splatcast_protocol::gop::{Attribute, GopPlan, GopStart, KeyframeCoding};
use splatcast_protocol::layout::Grid;
use splatcast_protocol::stream::{
    Chunk, Fragmentation, FrameAssembler, GopAssembler, StreamLayout, StreamReader, StreamWriter,
    TrackSet, WrittenGop, split_by_frame,
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

/// rav1e at speed 10 and base quantizer `quantizer` for every track of `layout`.
fn settings(layout: &StreamLayout, quantizer: u8) -> Vec<EncoderSettings> {
    let one = EncoderSettings {
        speed: 10,
        quantizer,
        fps: 30.0,
        threads: 1,
    };
    vec![one; layout.tracks.len()]
}

/// Writes GOPs of 3 and 2 frames; returns the file and what each GOP produced.
fn write(frames: &[GaussianFrame], fragmentation: Fragmentation) -> (Vec<u8>, Vec<WrittenGop>) {
    let layout = layout(&frames[0]);
    let settings = settings(&layout, 80);
    // Layered keyframe positions: the coarse AV1 picture travels in the side data.
    let mut writer = StreamWriter::new(layout, settings, fragmentation, 1).keyframe_coding(
        KeyframeCoding::Layered {
            quantizer: 60,
            speed: 10,
        },
    );
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

#[test]
fn frame_assembler_releases_each_frame_as_it_completes() {
    let frames = wave(5);
    let (bytes, parts) = write(&frames, Fragmentation::Frame);
    let movie = parse_init(parts[0].init.as_ref().unwrap()).unwrap();
    let tracks = TrackSet::of(&movie).unwrap();
    let mut reader = StreamReader::open(Cursor::new(&bytes)).unwrap();
    let whole: Vec<Vec<Vec<_>>> = (0..2)
        .map(|g| tracks.decode(&reader.gop_fragment(g).unwrap(), &mut Rav1dDecoder::new(1)))
        .map(|d| d.unwrap().2)
        .collect();
    let decoders = || -> Vec<Box<dyn PlaneDecoder>> {
        tracks
            .video
            .iter()
            .map(|_| Box::new(Rav1dDecoder::new(1)) as Box<dyn PlaneDecoder>)
            .collect()
    };

    // Live order (the writer's): every frame comes out as soon as its last chunk is in, and
    // decoding frame by frame gives the file's pictures bit for bit.
    let mut live = FrameAssembler::new(tracks.clone(), 30, 4);
    let mut decoders_live = decoders();
    let mut seen = Vec::new();
    for gop in &parts {
        for chunk in &gop.chunks {
            let out = live.push(gop.index, &chunk.bytes).unwrap();
            // A frame is released by the chunk of the last plane track.
            let last_track = chunk.track == tracks.video.last().copied();
            assert_eq!(
                out.len(),
                usize::from(last_track),
                "chunk {:?}",
                chunk.track
            );
            for f in out {
                assert_eq!(f.frame, chunk.frame);
                let pictures = f.decode(&mut decoders_live).unwrap();
                for (t, picture) in pictures.iter().enumerate() {
                    assert_eq!(picture, &whole[f.group as usize][t][f.index as usize]);
                }
                seen.push((f.group, f.index, f.frame));
            }
        }
    }
    assert_eq!(
        seen,
        vec![(0, 0, 0), (0, 1, 1), (0, 2, 2), (1, 0, 3), (1, 1, 4)]
    );
    // Garbage is refused without harm.
    assert!(live.push(1, b"not a fragment").is_err());

    // Track by track (each group's tracks on their own streams): the same frames in order.
    let mut by_track = FrameAssembler::new(tracks.clone(), 30, 4);
    let mut order = Vec::new();
    for gop in &parts {
        for id in (1..=tracks.side).rev() {
            for c in gop.chunks.iter().filter(|c| c.track == Some(id)) {
                order.push((gop.index, c.bytes.clone()));
            }
        }
    }
    let out: Vec<_> = order
        .iter()
        .flat_map(|(g, c)| by_track.push(*g, c).unwrap())
        .map(|f| f.frame)
        .collect();
    assert_eq!(out, vec![0, 1, 2, 3, 4]);

    // Joining late from a cache that sends the newest GOP first: it starts at the newest.
    let mut late = FrameAssembler::new(tracks.clone(), 30, 4);
    let out: Vec<_> = parts
        .iter()
        .rev()
        .flat_map(|g| g.chunks.iter().map(move |c| (g.index, c)))
        .flat_map(|(g, c)| late.push(g, &c.bytes).unwrap())
        .map(|f| f.frame)
        .collect();
    assert_eq!(out, vec![3, 4]);

    // A group's stream cut on one track (its tail lost): playing waits for the missing frame
    // while the next key frame is recent, and skips to that key frame once it has waited
    // `max_lag` frames.
    let lost = |max_lag| {
        let mut a = FrameAssembler::new(tracks.clone(), max_lag, 4);
        let mut out = Vec::new();
        for gop in &parts {
            for c in &gop.chunks {
                if gop.index == 0 && c.frame >= 1 && c.track == Some(tracks.video[0]) {
                    continue;
                }
                out.extend(a.push(gop.index, &c.bytes).unwrap().iter().map(|f| f.frame));
            }
        }
        out
    };
    assert_eq!(lost(1), vec![0, 3, 4]);
    assert_eq!(lost(30), vec![0]);
}

#[test]
fn live_gops_leave_frame_by_frame_and_may_end_early() {
    let frames = wave(6);
    let layout = layout(&frames[0]);
    let settings = settings(&layout, 0);
    let mut writer = StreamWriter::new(layout.clone(), settings, Fragmentation::Frame, 1);
    // GOP 0 declares 4 frames and ends after 3 (a live encoder's early cut); GOP 1 has 3.
    let mut sent: Vec<(u64, Chunk)> = Vec::new();
    let mut init = None;
    let mut pushed_pictures = Vec::new();
    for (group, range, declared) in [(0u64, 0..3, 4usize), (1, 3..6, 3)] {
        let plan = GopPlan::for_keyframe(
            &frames[range.start],
            layout.grid,
            &layout.tracks,
            1,
            KeyframeCoding::Exact,
            0.25,
            0.5,
        )
        .unwrap();
        let side = plan.side(declared, GopStart::First, vec![0; declared]);
        let mut gop = None;
        for (k, f) in frames[range].iter().enumerate() {
            let pictures = plan.pictures(f);
            let live = gop.get_or_insert_with(|| writer.start_live(&side, &pictures).unwrap());
            let out = writer.push_live(live, &pictures).unwrap();
            // Each frame leaves at most four frames after it was pushed (rav1e's lookahead).
            assert!(live.frames() + 4 > k as u64, "frame {k}: {}", live.frames());
            init = init.or(out.init);
            sent.extend(out.chunks.into_iter().map(|c| (group, c)));
            pushed_pictures.push(pictures);
        }
        let out = writer.finish_live(gop.unwrap()).unwrap();
        init = init.or(out.init);
        sent.extend(out.chunks.into_iter().map(|c| (group, c)));
    }
    let movie = parse_init(&init.expect("an init segment")).unwrap();
    let tracks = TrackSet::of(&movie).unwrap();
    // One chunk per track and frame, the side data first in each GOP.
    assert_eq!(sent.len(), 6 * tracks.video.len() + 2);
    assert_eq!(sent[0].1.track, Some(tracks.side));
    let mut decoders: Vec<Box<dyn PlaneDecoder>> = tracks
        .video
        .iter()
        .map(|_| Box::new(Rav1dDecoder::new(1)) as Box<dyn PlaneDecoder>)
        .collect();
    let mut assembler = FrameAssembler::new(tracks, 30, 4);
    let mut played = Vec::new();
    for (group, chunk) in &sent {
        for f in assembler.push(*group, &chunk.bytes).unwrap() {
            // Quantizer 0: AV1 returns the pushed pictures up to its finest step.
            let pictures = f.decode(&mut decoders).unwrap();
            let worst = pictures
                .iter()
                .zip(&pushed_pictures[f.frame as usize])
                .flat_map(|(a, b)| a.samples.iter().zip(&b.samples))
                .map(|(a, b)| a.abs_diff(*b))
                .max();
            assert!(
                worst.is_some_and(|w| w <= 16),
                "frame {}: {worst:?}",
                f.frame
            );
            played.push(f.frame);
        }
    }
    // The short GOP does not stall the next: every frame plays, in order.
    assert_eq!(played, vec![0, 1, 2, 3, 4, 5]);
}
