//! A Splatcast stream: the fixed track set of a file, GOPs as container fragments, and a reader
//! that decodes any GOP back into Gaussian frames.

use std::io::{Read, Seek};

use crate::av1::{CodedGop, Picture, PlaneDecoder};
use crate::container::{ContainerError, Fragment, Movie, Mp4Reader, Sample, Track, TrackKind};
use crate::gaussian::GaussianFrame;
use crate::gop::{Attribute, GopSide, SideError, Tiles, unpack};
use crate::layout::Grid;

/// MIME type of the side-data track's samples.
pub const SIDE_DATA_MIME: &str = "application/vnd.splatcast.gop+zstd";
/// Timescale ticks per frame; the timescale is `fps * FRAME_TICKS`.
pub const FRAME_TICKS: u32 = 1000;

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

    /// The fragment of GOP number `sequence` (1-based) starting at frame `first_frame`.
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
    side_track: u32,
    video_tracks: Vec<u32>,
}

impl<R: Read + Seek> StreamReader<R> {
    /// Opens a stream and checks it has our track set.
    pub fn open(inner: R) -> Result<Self, StreamError> {
        let mp4 = Mp4Reader::open(inner)?;
        let side_track = mp4
            .movie
            .tracks
            .iter()
            .find(|t| matches!(&t.kind, TrackKind::Metadata { mime } if mime == SIDE_DATA_MIME))
            .map(|t| t.id)
            .ok_or_else(|| {
                StreamError::Inconsistent("not a Splatcast file: no side-data track".into())
            })?;
        let video_tracks = mp4
            .movie
            .tracks
            .iter()
            .filter(|t| matches!(t.kind, TrackKind::Av1 { .. }))
            .map(|t| t.id)
            .collect();
        Ok(Self {
            mp4,
            side_track,
            video_tracks,
        })
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
        self.mp4.fragments.len()
    }

    /// True when the file ends inside a fragment (cut short while being written).
    pub fn truncated(&self) -> bool {
        self.mp4.truncated
    }

    fn side_of(&self, fragment: &Fragment) -> Result<GopSide, StreamError> {
        let sample = fragment
            .samples(self.side_track)
            .and_then(|s| s.first())
            .ok_or_else(|| StreamError::Inconsistent("GOP without side data".into()))?;
        Ok(GopSide::from_bytes(&sample.data)?)
    }

    /// First frame and frame count of GOP `index`, from its `moof` alone (no samples read):
    /// what a player indexes a long file with.
    pub fn gop_span(&mut self, index: usize) -> Result<(u64, u64), StreamError> {
        let span = self.mp4.fragment_span(index)?;
        let frames = span
            .samples
            .iter()
            .find(|(id, _)| self.video_tracks.contains(id))
            .map_or(0, |&(_, n)| n as u64);
        Ok((span.base_time / FRAME_TICKS as u64, frames))
    }

    /// Sizes of GOP `index`'s parts.
    pub fn gop_sizes(&mut self, index: usize) -> Result<GopSizes, StreamError> {
        let fragment = self.mp4.fragment(index)?;
        let side = self.side_of(&fragment)?;
        let side_bytes = fragment
            .samples(self.side_track)
            .map_or(0, |s| s[0].data.len());
        let track_bytes = self
            .video_tracks
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

    /// GOP `index`'s fragment, its side data, and per track the coded samples.
    fn coded_gop(&mut self, index: usize) -> Result<(Fragment, GopSide), StreamError> {
        let fragment = self.mp4.fragment(index)?;
        let side = self.side_of(&fragment)?;
        if side.tracks.len() != self.video_tracks.len() {
            return Err(StreamError::Inconsistent(
                "side data and tracks disagree".into(),
            ));
        }
        Ok((fragment, side))
    }

    fn track_samples<'f>(&self, fragment: &'f Fragment) -> Result<Vec<Vec<&'f [u8]>>, StreamError> {
        self.video_tracks
            .iter()
            .map(|&id| {
                let samples = fragment
                    .samples(id)
                    .ok_or_else(|| StreamError::Inconsistent(format!("GOP lacks track {id}")))?;
                Ok(samples.iter().map(|s| s.data.as_slice()).collect())
            })
            .collect()
    }

    /// Decodes the AV1 planes of GOP `index`: its side data and, per track in side-data
    /// order, one picture per frame.
    pub fn decode_planes(
        &mut self,
        index: usize,
        decoder: &mut dyn PlaneDecoder,
    ) -> Result<(u64, GopSide, Vec<Vec<Picture>>), StreamError> {
        let (fragment, side) = self.coded_gop(index)?;
        let planes = self
            .track_samples(&fragment)?
            .iter()
            .map(|refs| decoder.decode_gop(refs))
            .collect::<Result<Vec<_>, _>>()?;
        Ok((fragment.base_time / FRAME_TICKS as u64, side, planes))
    }

    /// [`StreamReader::decode_planes`] with one decoder per track, each track on its own
    /// thread: the tracks are independent AV1 streams, so a player decodes a GOP in the time
    /// of its slowest track instead of the sum of all.
    pub fn decode_planes_parallel(
        &mut self,
        index: usize,
        decoders: &mut [Box<dyn PlaneDecoder>],
    ) -> Result<(u64, GopSide, Vec<Vec<Picture>>), StreamError> {
        let (fragment, side) = self.coded_gop(index)?;
        if decoders.len() != side.tracks.len() {
            return Err(StreamError::Inconsistent(format!(
                "{} decoders for {} tracks",
                decoders.len(),
                side.tracks.len()
            )));
        }
        let coded = self.track_samples(&fragment)?;
        let planes = std::thread::scope(|scope| {
            let workers: Vec<_> = decoders
                .iter_mut()
                .zip(&coded)
                .map(|(decoder, refs)| scope.spawn(move || decoder.decode_gop(refs)))
                .collect();
            workers
                .into_iter()
                .map(|w| {
                    w.join().unwrap_or_else(|_| {
                        Err(crate::av1::CodecError::Decoder(
                            "decoder thread panicked".into(),
                        ))
                    })
                })
                .collect::<Result<Vec<_>, _>>()
        })?;
        Ok((fragment.base_time / FRAME_TICKS as u64, side, planes))
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
