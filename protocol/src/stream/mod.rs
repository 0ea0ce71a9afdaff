//! A Splatcast stream: the fixed track set of a file, GOPs as container fragments, a sans-IO
//! writer (Gaussian frames in, init segment + chunks + index out) and a reader that decodes any
//! GOP back into Gaussian frames.
//!
//! Two fragmentations share one track set. [`Fragmentation::Gop`] writes one `moof`+`mdat` per
//! GOP carrying every track (smallest files). [`Fragmentation::Frame`] writes, per frame, one
//! `moof`+`mdat` per track (CMAF's one-track fragments), the side data first at each GOP start:
//! every chunk is exactly what a MoQ track carries as one frame, so the file and the live stream
//! are the same bytes and live latency is a frame, not a GOP.

mod live;
mod rate;
mod reader;
mod tracks;
mod writer;

pub use live::{FrameAssembler, LiveFrame};
pub use reader::{DecodedGop, GopSizes, StreamError, StreamReader};
pub use tracks::{AssembledGop, GopAssembler, GopPlanes, TrackSet};
pub use writer::{Chunk, LiveChunks, LiveGop, StreamWriter, WriteError, WrittenGop};

use crate::av1::CodedGop;
use crate::container::{Fragment, Movie, Sample, Track, TrackKind};
use crate::gop::{Attribute, Tiles};
use crate::layout::Grid;

/// MIME type of the side-data track's samples.
pub const SIDE_DATA_MIME: &str = "application/vnd.splatcast.gop+zstd";
/// Timescale ticks per frame; the timescale is `fps * FRAME_TICKS`.
pub const FRAME_TICKS: u32 = 1000;

/// How samples are grouped into container fragments.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Fragmentation {
    /// One fragment per GOP with every track: the least overhead, for files.
    #[default]
    Gop,
    /// One fragment per frame and track (the side data at each GOP start): for live streams,
    /// and files that replay into MoQ unchanged.
    Frame,
}

/// The track set of a stream: fixed for a whole file so players configure decoders once.
#[derive(Clone, Debug, PartialEq)]
pub struct StreamLayout {
    /// Frames per second.
    pub fps: f64,
    /// Plane size (sized for the largest frame of the sequence).
    pub grid: Grid,
    /// SH degree of every frame.
    pub sh_degree: u8,
    /// Each AV1 track's attribute and bit depth; track IDs are 1, 2, … in this order and the
    /// side-data track comes last.
    pub tracks: Vec<(Attribute, u8)>,
}

impl StreamLayout {
    /// Timescale in ticks per second.
    pub fn timescale(&self) -> u32 {
        ((self.fps * FRAME_TICKS as f64).round() as u32).max(1)
    }

    /// Track ID of the side-data track.
    pub fn side_track_id(&self) -> u32 {
        self.tracks.len() as u32 + 1
    }

    /// The movie header, given each AV1 track's sequence header.
    pub fn movie(&self, sequence_headers: &[Vec<u8>]) -> Movie {
        let mut tracks: Vec<Track> = self
            .tracks
            .iter()
            .zip(sequence_headers)
            .enumerate()
            .map(|(i, (&(attribute, bit_depth), header))| {
                let (width, height) =
                    Tiles::new(attribute.channels(self.sh_degree), self.grid).picture_size();
                Track {
                    id: i as u32 + 1,
                    name: format!("splatcast {}", attribute.name()),
                    kind: TrackKind::Av1 {
                        width: width as u16,
                        height: height as u16,
                        bit_depth,
                        sequence_header: header.clone(),
                    },
                }
            })
            .collect();
        tracks.push(Track {
            id: self.side_track_id(),
            name: "splatcast gop side data".into(),
            kind: TrackKind::Metadata {
                mime: SIDE_DATA_MIME.into(),
            },
        });
        Movie {
            timescale: self.timescale(),
            tracks,
        }
    }

    /// The fragment of GOP number `sequence` (1-based) starting at frame `first_frame`, every
    /// track in one fragment.
    pub fn fragment(
        &self,
        sequence: u32,
        first_frame: u64,
        side: Vec<u8>,
        coded: &[CodedGop],
    ) -> Fragment {
        let frames = coded.first().map_or(0, |c| c.samples.len()) as u32;
        let mut tracks: Vec<(u32, Vec<Sample>)> = coded
            .iter()
            .enumerate()
            .map(|(i, gop)| {
                let samples = gop
                    .samples
                    .iter()
                    .enumerate()
                    .map(|(k, data)| Sample {
                        data: data.clone(),
                        duration: FRAME_TICKS,
                        sync: k == 0,
                    })
                    .collect();
                (i as u32 + 1, samples)
            })
            .collect();
        tracks.push((
            self.side_track_id(),
            vec![Sample {
                data: side,
                duration: FRAME_TICKS * frames,
                sync: true,
            }],
        ));
        Fragment {
            sequence,
            base_time: first_frame * FRAME_TICKS as u64,
            tracks,
        }
    }
}

/// Splits a GOP's fragment (every track, every frame) into one-track, one-sample fragments in
/// stream order: the side data, then frame by frame each track in track order. Sequence numbers
/// follow from the frame and track alone, so a GOP-fragmented file replays into exactly the
/// chunks a frame-fragmented file holds.
pub fn split_by_frame(fragment: &Fragment, side_track: u32) -> Vec<(u32, u64, Fragment)> {
    let first_frame = fragment.base_time / FRAME_TICKS as u64;
    let slots = fragment.tracks.len() as u64;
    let sequence = |frame: u64, track: u32| {
        let slot = if track == side_track { 0 } else { track as u64 };
        u32::try_from(frame * slots + slot + 1).unwrap_or(u32::MAX)
    };
    let mut out = Vec::new();
    let one = |track: u32, frame: u64, time: u64, sample: &Sample| {
        (
            track,
            frame,
            Fragment {
                sequence: sequence(frame, track),
                base_time: time,
                tracks: vec![(track, vec![sample.clone()])],
            },
        )
    };
    if let Some(side) = fragment.samples(side_track).and_then(|s| s.first()) {
        out.push(one(side_track, first_frame, fragment.base_time, side));
    }
    let frames = fragment
        .tracks
        .iter()
        .filter(|(id, _)| *id != side_track)
        .map(|(_, s)| s.len())
        .max()
        .unwrap_or(0);
    for k in 0..frames {
        for (id, samples) in fragment.tracks.iter().filter(|(id, _)| *id != side_track) {
            if let Some(sample) = samples.get(k) {
                let offset: u64 = samples[..k].iter().map(|s| s.duration as u64).sum();
                let time = fragment.base_time + offset;
                out.push(one(*id, first_frame + k as u64, time, sample));
            }
        }
    }
    out
}
