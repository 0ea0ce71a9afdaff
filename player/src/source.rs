//! Where coded frames come from: sources with a timeline (a file; a served file on demand) yield
//! a GOP's decoded planes by index through one trait; a live broadcast ([`LiveSource`]) yields
//! frames as they arrive. Either way the GPU rebuilds the Gaussians; the CPU never touches them.

use std::fs::File;
use std::io::BufReader;
use std::path::Path;
use std::sync::Arc;

use splatcast_protocol::av1::{Picture, PlaneDecoder, Rav1dDecoder};
use splatcast_protocol::gop::{GopSide, SideError};
use splatcast_protocol::stream::{GopPlanes, StreamError, StreamReader};

use crate::live::LiveSource;
use crate::room::RoomSource;

/// Why a source could not deliver.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The file could not be opened or read.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// The stream is broken or of a version this build cannot read.
    #[error(transparent)]
    Stream(#[from] StreamError),
    /// A GOP index past the end.
    #[error("GOP {0} does not exist")]
    NoSuchGop(usize),
    /// The connection, the MoQ session or the subscription failed.
    #[error(transparent)]
    Net(#[from] splatcast_net::NetError),
    /// Connected, but no frame came.
    #[error("no frame arrived within {} s", .0.as_secs())]
    Silent(std::time::Duration),
    /// A live frame could not be assembled or decoded; playing goes on at the next key frame.
    #[error("{0}")]
    Broken(String),
    /// The connection or the publisher went away; the source is rejoining.
    #[error("{0}")]
    Rejoining(String),
    /// The broadcast ended.
    #[error("the broadcast ended")]
    Ended,
}

/// What the player plays: a stream with a timeline, or a live broadcast.
pub enum Source {
    /// A file (or a file served on demand): seekable, with a known length.
    Stored(Box<dyn PlaneSource>),
    /// A live broadcast: frames as they arrive, the clock following the newest.
    Live(Box<LiveSource>),
    /// Everyone in a room, side by side.
    Room(Box<RoomSource>),
}

impl From<FileSource> for Source {
    fn from(file: FileSource) -> Self {
        Source::Stored(Box::new(file))
    }
}

impl Source {
    /// The side data of the first GOP: the scene's extent, for the initial view.
    pub fn first_side(&self) -> Option<&GopSide> {
        match self {
            Source::Stored(s) => s.first_side(),
            Source::Live(l) => Some(l.first_side()),
            Source::Room(_) => None,
        }
    }
}

/// One GOP's planes, ready for the GPU.
pub struct DecodedGop {
    /// Which GOP.
    pub index: usize,
    /// Index of its first frame.
    pub first_frame: u64,
    /// Its side data (shared by every frame of the GOP on its way to the GPU).
    pub side: Arc<GopSide>,
    /// Per frame, one picture per track in side-data order.
    pub frames: Vec<Vec<Picture>>,
    /// Coded bytes of the GOP (pictures and side data), for the bitrate display.
    pub coded_bytes: usize,
}

impl DecodedGop {
    /// GOP `index` from its decoded planes (per track, one picture per frame), checked against
    /// its side data and turned frame-major.
    pub(crate) fn new(
        index: usize,
        (first_frame, side, tracks): GopPlanes,
        coded_bytes: usize,
    ) -> Result<Self, SourceError> {
        let frame_count = side.frame_count as usize;
        if tracks.iter().any(|t| t.len() != frame_count) {
            return Err(StreamError::Inconsistent(format!(
                "GOP {index}: tracks disagree with the side data's {frame_count} frames"
            ))
            .into());
        }
        Ok(Self {
            index,
            first_frame,
            side: Arc::new(side),
            frames: transpose(tracks, frame_count),
            coded_bytes,
        })
    }
}

/// Anything that yields decoded GOPs by index: a file, a network stream.
pub trait PlaneSource: Send {
    /// Frames per second.
    fn fps(&self) -> f64;
    /// Number of GOPs available.
    fn gop_count(&self) -> usize;
    /// Index of GOP `gop`'s first frame.
    fn gop_start(&self, gop: usize) -> u64;
    /// Frames available (in complete GOPs).
    fn frame_count(&self) -> u64;
    /// The side data of the first GOP: the scene's extent, for the initial view.
    fn first_side(&self) -> Option<&GopSide>;
    /// Why the source ends early, when it does (a file cut mid-fragment).
    fn cut_short(&self) -> Option<String>;
    /// Decodes GOP `gop`.
    fn decode_gop(&mut self, gop: usize) -> Result<DecodedGop, SourceError>;

    /// The GOP holding `frame` (the last one for frames past the end).
    fn gop_of(&self, frame: u64) -> usize {
        let (mut lo, mut hi) = (0, self.gop_count());
        while lo < hi {
            let mid = (lo + hi) / 2;
            if self.gop_start(mid) <= frame {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        lo.saturating_sub(1)
    }
}

/// A Splatcast MP4 on disk. GOPs are found through the fragment index; each GOP's tracks are
/// decoded in parallel, one AV1 decoder per track.
pub struct FileSource {
    reader: StreamReader<BufReader<File>>,
    decoders: Vec<Box<dyn PlaneDecoder>>,
    gop_starts: Vec<u64>,
    frame_count: u64,
    first_side: Option<GopSide>,
    cut_short: Option<String>,
}

impl FileSource {
    /// Opens a file and indexes its GOPs. A GOP whose fragment cannot be read is kept in the
    /// index (its frames are skipped when played), so one bad fragment does not lose the file.
    pub fn open(path: &Path) -> Result<Self, SourceError> {
        Self::open_with(path, || Box::new(Rav1dDecoder::new(1)))
    }

    /// [`FileSource::open`] with decoders from `decoder` (one per track): where a platform's
    /// hardware decoder (MediaCodec, VideoToolbox) implements [`PlaneDecoder`], it plugs in here.
    pub fn open_with(
        path: &Path,
        decoder: impl Fn() -> Box<dyn PlaneDecoder>,
    ) -> Result<Self, SourceError> {
        let mut reader = StreamReader::open(BufReader::new(File::open(path)?))?.with_gops()?;
        let gops = reader.gop_count();
        // The first GOP's side data: the format version (refused clearly when unknown), the
        // track count and the scene's extent. A first GOP broken otherwise is skipped like any.
        let first_side = match reader.gop_sizes(0) {
            Ok(sizes) => Some(sizes.side),
            Err(StreamError::Side(SideError::Version(v))) => {
                return Err(StreamError::Side(SideError::Version(v)).into());
            }
            Err(_) => (1..gops).find_map(|g| reader.gop_sizes(g).ok().map(|s| s.side)),
        };
        let tracks = first_side.as_ref().map_or(0, |s| s.tracks.len());
        // Every GOP's place in time from its moof alone; an unreadable one is assumed as long as
        // the one before (its frames are skipped when played).
        let mut gop_starts = Vec::with_capacity(gops);
        let (mut frame_count, mut last_len) = (0u64, 1u64);
        for g in 0..gops {
            match reader.gop_span(g) {
                Ok((first, frames)) if frames > 0 => {
                    gop_starts.push(first.max(frame_count));
                    last_len = frames;
                }
                _ => gop_starts.push(frame_count),
            }
            frame_count = gop_starts[g] + last_len;
        }
        let cut_short = reader.truncated().then(|| {
            format!("the file ends inside a fragment: playing the {frame_count} frames before it")
        });
        Ok(Self {
            reader,
            decoders: (0..tracks).map(|_| decoder()).collect(),
            gop_starts,
            frame_count,
            first_side,
            cut_short,
        })
    }
}

impl PlaneSource for FileSource {
    fn fps(&self) -> f64 {
        self.reader.fps()
    }

    fn gop_count(&self) -> usize {
        self.gop_starts.len()
    }

    fn gop_start(&self, gop: usize) -> u64 {
        self.gop_starts
            .get(gop)
            .copied()
            .unwrap_or(self.frame_count)
    }

    fn frame_count(&self) -> u64 {
        self.frame_count
    }

    fn first_side(&self) -> Option<&GopSide> {
        self.first_side.as_ref()
    }

    fn cut_short(&self) -> Option<String> {
        self.cut_short.clone()
    }

    fn decode_gop(&mut self, gop: usize) -> Result<DecodedGop, SourceError> {
        if gop >= self.gop_starts.len() {
            return Err(SourceError::NoSuchGop(gop));
        }
        let coded_bytes = self
            .reader
            .gop_sizes(gop)
            .map(|s| s.side_bytes + s.track_bytes.iter().sum::<usize>())?;
        if self.decoders.is_empty() {
            return Err(
                StreamError::Inconsistent("the stream has no picture tracks".into()).into(),
            );
        }
        let planes = self
            .reader
            .decode_planes_parallel(gop, &mut self.decoders)?;
        DecodedGop::new(gop, planes, coded_bytes)
    }
}

/// Per track per frame → per frame per track, moving the pictures.
fn transpose(tracks: Vec<Vec<Picture>>, frames: usize) -> Vec<Vec<Picture>> {
    let mut out: Vec<Vec<Picture>> = (0..frames)
        .map(|_| Vec::with_capacity(tracks.len()))
        .collect();
    for track in tracks {
        for (frame, picture) in out.iter_mut().zip(track) {
            frame.push(picture);
        }
    }
    out
}
