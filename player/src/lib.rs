//! Splatcast player library: where frames come from and how playback reaches them.
//!
//! Today this holds the frame-source abstraction over a Splatcast file (decode on demand, seek
//! by GOP); the bevy plugin, GPU upload and render node arrive with the player issue and will
//! read frames through the same trait, as will the QUIC and MoQ sources.
//!
//! It also holds the synthetic capture tool's parts (bin `splatcast-capture`): camera rigs,
//! the bevy renderer that plays animated glTF models, and the data-set writers.

pub mod capture;
pub mod capture_files;
pub mod rig;

use std::fs::File;
use std::io::BufReader;
use std::path::Path;

use splatcast_protocol::GaussianFrame;
use splatcast_protocol::av1::{PlaneDecoder, Rav1dDecoder};
use splatcast_protocol::stream::{StreamError, StreamReader};

/// Why a source could not deliver a frame.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The file could not be opened.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// The stream is broken.
    #[error(transparent)]
    Stream(#[from] StreamError),
}

/// Anything that yields decoded frames by index: a file now, network sources later.
pub trait FrameSource {
    /// Frames per second of the stream.
    fn fps(&self) -> f64;
    /// Number of frames available (complete GOPs only).
    fn frame_count(&self) -> u64;
    /// Frame `index`, decoding its GOP if needed.
    fn frame(&mut self, index: u64) -> Result<&GaussianFrame, SourceError>;
}

/// A Splatcast MP4 on disk, decoded one GOP at a time; seeking jumps to the GOP holding the
/// frame through the file's fragment index.
pub struct FileSource {
    reader: StreamReader<BufReader<File>>,
    decoder: Box<dyn PlaneDecoder>,
    gop_starts: Vec<u64>,
    frame_count: u64,
    current: Option<(usize, Vec<GaussianFrame>)>,
}

impl FileSource {
    /// Opens a file and indexes its GOPs.
    pub fn open(path: &Path) -> Result<Self, SourceError> {
        let mut reader = StreamReader::open(BufReader::new(File::open(path)?))?;
        let mut gop_starts = Vec::with_capacity(reader.gop_count());
        let mut frame_count = 0;
        for g in 0..reader.gop_count() {
            let sizes = reader.gop_sizes(g)?;
            gop_starts.push(sizes.first_frame);
            frame_count = sizes.first_frame + sizes.side.frame_count as u64;
        }
        Ok(Self {
            reader,
            decoder: Box::new(Rav1dDecoder::new(0)),
            gop_starts,
            frame_count,
            current: None,
        })
    }
}

impl FrameSource for FileSource {
    fn fps(&self) -> f64 {
        self.reader.fps()
    }

    fn frame_count(&self) -> u64 {
        self.frame_count
    }

    fn frame(&mut self, index: u64) -> Result<&GaussianFrame, SourceError> {
        let gop = self
            .gop_starts
            .partition_point(|&s| s <= index)
            .saturating_sub(1);
        if self.current.as_ref().is_none_or(|(g, _)| *g != gop) {
            let decoded = self.reader.read_gop(gop, self.decoder.as_mut())?;
            self.current = Some((gop, decoded.frames));
        }
        let (_, frames) = self.current.as_ref().expect("just decoded");
        let offset = (index - self.gop_starts[gop]) as usize;
        frames.get(offset).ok_or_else(|| {
            SourceError::Stream(StreamError::Inconsistent(format!(
                "frame {index} is past the end"
            )))
        })
    }
}
