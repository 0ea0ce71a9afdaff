//! Reading a stream GOP by GOP, whichever way it was fragmented.

use std::io::{Read, Seek};
use std::ops::Range;

use super::FRAME_TICKS;
use super::tracks::{GopPlanes, TrackSet, join};
use crate::av1::PlaneDecoder;
use crate::container::{ContainerError, Fragment, Movie, Mp4Reader};
use crate::gaussian::GaussianFrame;
use crate::gop::{GopSide, SideError, unpack};

/// Why a stream could not be read.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    /// The container is broken.
    #[error(transparent)]
    Container(#[from] ContainerError),
    /// The side data is broken.
    #[error(transparent)]
    Side(#[from] SideError),
    /// The planes could not be decoded.
    #[error(transparent)]
    Codec(#[from] crate::av1::CodecError),
    /// The parts disagree with each other.
    #[error("{0}")]
    Inconsistent(String),
    /// Nothing to play: the stream holds no complete GOP (a recording cut inside its first
    /// fragment, or only a header).
    #[error("no complete GOP{}", if *.truncated { " (the file ends inside its first fragment)" } else { "" })]
    Empty {
        /// Whether the file ends inside a fragment.
        truncated: bool,
    },
}

/// One decoded GOP.
#[derive(Clone, Debug)]
pub struct DecodedGop {
    /// Index of its first frame in the sequence.
    pub first_frame: u64,
    /// The side data.
    pub side: GopSide,
    /// The frames, Gaussians in coded order.
    pub frames: Vec<GaussianFrame>,
}

/// Sizes of one GOP's parts, for `info`, without decoding pictures.
#[derive(Clone, Debug)]
pub struct GopSizes {
    /// Index of its first frame.
    pub first_frame: u64,
    /// The side data.
    pub side: GopSide,
    /// Compressed side-data bytes.
    pub side_bytes: usize,
    /// AV1 bytes per track, in track order.
    pub track_bytes: Vec<usize>,
}

/// Reads a Splatcast file GOP by GOP, seeking through the fragment index.
pub struct StreamReader<R> {
    mp4: Mp4Reader<R>,
    tracks: TrackSet,
    /// Per GOP, its fragments: a GOP starts at a fragment that carries side data.
    gops: Vec<Range<usize>>,
    /// Per GOP, (first frame, frames) from the `moof`s; `None` when its first is unreadable.
    spans: Vec<Option<(u64, u64)>>,
    /// The file ends inside a fragment or a GOP.
    truncated: bool,
}

impl<R: Read + Seek> StreamReader<R> {
    /// Opens a stream, checks it has our track set and groups its fragments into GOPs from
    /// their `moof`s. In a file without its closing index, a last GOP missing frames (a live
    /// recording stopped mid-GOP) is left out and the stream marked truncated.
    pub fn open(inner: R) -> Result<Self, StreamError> {
        let mut mp4 = Mp4Reader::open(inner)?;
        let tracks = TrackSet::of(&mp4.movie)?;
        let (side_track, first_video) = (tracks.side, tracks.video.first().copied());
        let mut gops: Vec<Range<usize>> = Vec::new();
        let mut spans: Vec<Option<(u64, u64)>> = Vec::new();
        for i in 0..mp4.fragments.len() {
            // An unreadable moof stands alone: that GOP fails when read, the others play.
            let span = mp4.fragment_span(i).ok();
            let frames = span.as_ref().map_or(0, |s| {
                s.samples
                    .iter()
                    .find(|(id, _)| first_video == Some(*id))
                    .map_or(0, |&(_, n)| n as u64)
            });
            let starts = span
                .as_ref()
                .is_none_or(|s| s.samples.iter().any(|&(id, n)| id == side_track && n > 0));
            match (gops.last_mut(), spans.last_mut()) {
                (Some(range), Some(Some(last))) if !starts => {
                    range.end = i + 1;
                    last.1 += frames;
                }
                _ => {
                    gops.push(i..i + 1);
                    spans.push(span.map(|s| (s.base_time / FRAME_TICKS as u64, frames)));
                }
            }
        }
        let mut reader = Self {
            truncated: mp4.truncated,
            mp4,
            tracks,
            gops,
            spans,
        };
        // A finished file (its writer closed it with the index) ends where its writer ended it:
        // a live recording's last GOP may be shorter than declared.
        if let Some(last) = reader.gops.len().checked_sub(1)
            && !reader.mp4.finished
        {
            // The length its side data declares (not the frames it holds, as read later).
            let declared = reader
                .gop_fragment(last)
                .and_then(|f| reader.tracks.side_of(&f));
            let complete = match (&reader.spans[last], declared) {
                (Some((_, frames)), Ok(side)) => *frames >= side.frame_count as u64,
                _ => true,
            };
            if !complete {
                reader.gops.pop();
                reader.spans.pop();
                reader.truncated = true;
            }
        }
        Ok(reader)
    }

    /// The container's movie header.
    pub fn movie(&self) -> &Movie {
        &self.mp4.movie
    }

    /// Frames per second.
    pub fn fps(&self) -> f64 {
        self.mp4.movie.timescale as f64 / FRAME_TICKS as f64
    }

    /// Number of complete GOPs.
    pub fn gop_count(&self) -> usize {
        self.gops.len()
    }

    /// True when the file ends inside a fragment or a GOP (cut short while being written).
    pub fn truncated(&self) -> bool {
        self.truncated
    }

    /// This reader, refused with [`StreamError::Empty`] when it holds no complete GOP: what a
    /// player, a decoder or a server of stored streams needs (a live recording's header alone
    /// is a valid stream to append to, so [`StreamReader::open`] accepts it).
    pub fn with_gops(self) -> Result<Self, StreamError> {
        if self.gops.is_empty() {
            return Err(StreamError::Empty {
                truncated: self.truncated,
            });
        }
        Ok(self)
    }

    /// GOP `index`'s fragments read and joined into one, every track's samples in order: what
    /// [`TrackSet::decode`] takes, and what a publisher splits into per-frame chunks.
    pub fn gop_fragment(&mut self, index: usize) -> Result<Fragment, StreamError> {
        let range = self
            .gops
            .get(index)
            .cloned()
            .ok_or_else(|| StreamError::Inconsistent(format!("no GOP {index}")))?;
        let mut joined: Option<Fragment> = None;
        for i in range {
            let part = self.mp4.fragment(i)?;
            match &mut joined {
                Some(gop) => join(gop, part),
                None => joined = Some(part),
            }
        }
        joined.ok_or_else(|| StreamError::Inconsistent(format!("GOP {index} is empty")))
    }

    /// First frame and frame count of GOP `index`, from its `moof`s alone (no samples read):
    /// what a player indexes a long file with.
    pub fn gop_span(&mut self, index: usize) -> Result<(u64, u64), StreamError> {
        match (self.spans.get(index), self.gops.get(index)) {
            (Some(Some(span)), _) => Ok(*span),
            // Unreadable: read it again for the reason.
            (_, Some(range)) => {
                let start = range.start;
                self.mp4.fragment_span(start)?;
                Err(StreamError::Inconsistent(format!(
                    "GOP {index} has no frames"
                )))
            }
            _ => Err(StreamError::Inconsistent(format!("no GOP {index}"))),
        }
    }

    /// Sizes of GOP `index`'s parts.
    pub fn gop_sizes(&mut self, index: usize) -> Result<GopSizes, StreamError> {
        let fragment = self.gop_fragment(index)?;
        let side = self.tracks.checked_side(&fragment)?;
        let side_bytes = fragment
            .samples(self.tracks.side)
            .map_or(0, |s| s[0].data.len());
        let track_bytes = self
            .tracks
            .video
            .iter()
            .map(|&id| {
                fragment
                    .samples(id)
                    .map_or(0, |s| s.iter().map(|x| x.data.len()).sum())
            })
            .collect();
        Ok(GopSizes {
            first_frame: fragment.base_time / FRAME_TICKS as u64,
            side,
            side_bytes,
            track_bytes,
        })
    }

    /// The plane tracks and side-data track of this stream.
    pub fn tracks(&self) -> &TrackSet {
        &self.tracks
    }

    /// Decodes the AV1 planes of GOP `index`: its side data and, per track in side-data
    /// order, one picture per frame.
    pub fn decode_planes(
        &mut self,
        index: usize,
        decoder: &mut dyn PlaneDecoder,
    ) -> Result<GopPlanes, StreamError> {
        let fragment = self.gop_fragment(index)?;
        self.tracks.decode(&fragment, decoder)
    }

    /// [`StreamReader::decode_planes`] with one decoder per track, each track on its own thread.
    pub fn decode_planes_parallel(
        &mut self,
        index: usize,
        decoders: &mut [Box<dyn PlaneDecoder>],
    ) -> Result<GopPlanes, StreamError> {
        let fragment = self.gop_fragment(index)?;
        self.tracks.decode_parallel(&fragment, decoders)
    }

    /// Decodes GOP `index` into Gaussian frames with `decoder`.
    pub fn read_gop(
        &mut self,
        index: usize,
        decoder: &mut dyn PlaneDecoder,
    ) -> Result<DecodedGop, StreamError> {
        let (first_frame, side, planes) = self.decode_planes(index, decoder)?;
        let frames =
            unpack(&side, &planes).map_err(|e| StreamError::Inconsistent(e.to_string()))?;
        Ok(DecodedGop {
            first_frame,
            side,
            frames,
        })
    }
}
