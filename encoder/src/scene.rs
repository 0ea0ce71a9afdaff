//! Any input as a sequence of Gaussian frames: one splat file, a directory or glob of them, or a
//! Splatcast MP4 (decoded GOP by GOP, so a frame in the middle costs one GOP).

use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};

use glam::Vec3;
use splatcast_protocol::GaussianFrame;
use splatcast_protocol::av1::Rav1dDecoder;
use splatcast_protocol::formats::{self, LoadError};
use splatcast_protocol::gaussian::robust_bounds;
use splatcast_protocol::sequence::{SequenceError, list_frames};
use splatcast_protocol::stream::{StreamError, StreamReader};

/// Why frames cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum SceneError {
    /// A splat file failed to load.
    #[error(transparent)]
    Load(#[from] LoadError),
    /// The sequence could not be listed.
    #[error(transparent)]
    Sequence(#[from] SequenceError),
    /// The MP4 could not be opened or decoded.
    #[error("{path}: {error}")]
    Stream {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        error: StreamError,
    },
    /// The file could not be opened.
    #[error("{path}: {error}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        error: std::io::Error,
    },
    /// A frame index past the end.
    #[error("{path}: frame {frame} requested, it has {count}")]
    NoSuchFrame {
        /// The input.
        path: PathBuf,
        /// Requested frame.
        frame: usize,
        /// Frames available.
        count: usize,
    },
}

struct Stream {
    reader: StreamReader<BufReader<File>>,
    decoder: Rav1dDecoder,
    /// First frame of each GOP, plus the total at the end.
    starts: Vec<usize>,
    cached: Option<(usize, Vec<GaussianFrame>)>,
}

enum Source {
    Files(Vec<PathBuf>),
    Stream(Box<Stream>),
}

/// A sequence of frames from any supported input.
pub struct FrameSet {
    path: PathBuf,
    source: Source,
    bytes: u64,
}

fn is_mp4(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("mp4") || e.eq_ignore_ascii_case("m4s"))
}

impl FrameSet {
    /// Opens `path`: a `.mp4` Splatcast file, a splat file, a directory or a glob.
    pub fn open(path: &Path) -> Result<Self, SceneError> {
        let io = |error| SceneError::Io {
            path: path.to_owned(),
            error,
        };
        let stream_err = |error| SceneError::Stream {
            path: path.to_owned(),
            error,
        };
        if is_mp4(path) {
            let file = File::open(path).map_err(io)?;
            let bytes = file.metadata().map_err(io)?.len();
            let mut reader = StreamReader::open(BufReader::new(file))
                .and_then(StreamReader::with_gops)
                .map_err(stream_err)?;
            let mut starts = Vec::with_capacity(reader.gop_count() + 1);
            let mut total = 0usize;
            for g in 0..reader.gop_count() {
                let sizes = reader.gop_sizes(g).map_err(stream_err)?;
                starts.push(total);
                total += sizes.side.frame_count as usize;
            }
            starts.push(total);
            return Ok(Self {
                path: path.to_owned(),
                source: Source::Stream(Box::new(Stream {
                    reader,
                    decoder: Rav1dDecoder::new(0),
                    starts,
                    cached: None,
                })),
                bytes,
            });
        }
        let paths = list_frames(path)?;
        let mut bytes = 0;
        for p in &paths {
            bytes += std::fs::metadata(p)
                .map_err(|error| SceneError::Io {
                    path: p.clone(),
                    error,
                })?
                .len();
        }
        Ok(Self {
            path: path.to_owned(),
            source: Source::Files(paths),
            bytes,
        })
    }

    /// Number of frames.
    pub fn len(&self) -> usize {
        match &self.source {
            Source::Files(paths) => paths.len(),
            Source::Stream(s) => *s.starts.last().unwrap_or(&0),
        }
    }

    /// True when there are no frames.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes on disk of the whole input.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// The input's path as given.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Frame `k`.
    pub fn frame(&mut self, k: usize) -> Result<GaussianFrame, SceneError> {
        if k >= self.len() {
            return Err(SceneError::NoSuchFrame {
                path: self.path.clone(),
                frame: k,
                count: self.len(),
            });
        }
        match &mut self.source {
            Source::Files(paths) => Ok(formats::load(&paths[k])?),
            Source::Stream(s) => {
                let gop = s.starts.partition_point(|&start| start <= k) - 1;
                if s.cached.as_ref().is_none_or(|(g, _)| *g != gop) {
                    let decoded = s.reader.read_gop(gop, &mut s.decoder).map_err(|error| {
                        SceneError::Stream {
                            path: self.path.clone(),
                            error,
                        }
                    })?;
                    s.cached = Some((gop, decoded.frames));
                }
                let (_, frames) = s.cached.as_ref().expect("decoded above");
                frames
                    .get(k - s.starts[gop])
                    .cloned()
                    .ok_or_else(|| SceneError::NoSuchFrame {
                        path: self.path.clone(),
                        frame: k,
                        count: self.len(),
                    })
            }
        }
    }
}

/// A robust centre and radius of a frame (see [`robust_bounds`]).
pub fn bounds(frame: &GaussianFrame) -> (Vec3, f32) {
    robust_bounds(frame.positions.iter().copied())
}
