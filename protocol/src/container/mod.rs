//! Fragmented MP4 (ISOBMFF / CMAF style): an init segment (`ftyp` + `moov` with `mvex`), then
//! one `moof` + `mdat` fragment per GOP carrying every track's samples, then an `mfra` index.
//!
//! The same fragments go to disk, over QUIC and into MoQ unchanged. `ffprobe` lists the tracks and
//! `ffmpeg` decodes each `av01` track; per-GOP side data rides in a timed-metadata (`mett`) track.
//! Writing is sans-IO (bytes in, bytes out); [`reader::Mp4Reader`] adds seeking over a file.

mod boxes;
pub mod reader;
pub mod writer;

pub use reader::{
    FragmentEntry, FragmentSpan, Mp4Reader, parse_fragment, parse_fragment_span, parse_init,
};
pub use writer::{IndexEntry, fragment_index, init_segment, media_segment};

/// What a track carries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TrackKind {
    /// Monochrome AV1 planes.
    Av1 {
        /// Picture width in pixels.
        width: u16,
        /// Picture height in pixels.
        height: u16,
        /// Bits per sample (8 or 10).
        bit_depth: u8,
        /// The sequence header OBU, stored in `av1C`.
        sequence_header: Vec<u8>,
    },
    /// Timed metadata (`mett`) with the given MIME type.
    Metadata {
        /// MIME type of the samples.
        mime: String,
    },
}

/// One track of the movie.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Track {
    /// Track ID (1-based, unique).
    pub id: u32,
    /// Human-readable name (the handler name ffprobe shows).
    pub name: String,
    /// What the samples are.
    pub kind: TrackKind,
}

/// The movie header: every track shares one timescale.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Movie {
    /// Ticks per second.
    pub timescale: u32,
    /// The tracks.
    pub tracks: Vec<Track>,
}

/// One sample of a track.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sample {
    /// Payload.
    pub data: Vec<u8>,
    /// Duration in timescale ticks.
    pub duration: u32,
    /// True for random-access points (AV1 key frames, metadata).
    pub sync: bool,
}

/// One fragment: consecutive samples of each track starting at `base_time`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fragment {
    /// Fragment sequence number (1-based).
    pub sequence: u32,
    /// Decode time of the first sample, in timescale ticks.
    pub base_time: u64,
    /// Samples per track ID, in track order.
    pub tracks: Vec<(u32, Vec<Sample>)>,
}

impl Fragment {
    /// The samples of track `id`.
    pub fn samples(&self, id: u32) -> Option<&[Sample]> {
        self.tracks
            .iter()
            .find(|(t, _)| *t == id)
            .map(|(_, s)| s.as_slice())
    }
}

/// Why bytes are not a container we can read.
#[derive(Debug, thiserror::Error)]
pub enum ContainerError {
    /// Reading the file failed.
    #[error("read failed")]
    Io(#[from] std::io::Error),
    /// A box is malformed.
    #[error("malformed MP4: {0}")]
    Malformed(String),
    /// The data ends inside a box.
    #[error("truncated MP4: {0}")]
    Truncated(String),
    /// Valid MP4 without what we need.
    #[error("unsupported MP4: {0}")]
    Unsupported(String),
}
