//! The sequence encoder: groups frames into GOPs (keeping Gaussian identities across frames),
//! packs each GOP into planes, codes the planes with AV1 and writes one fragment per GOP.

use std::io::Write;

use rayon::prelude::*;
use splatcast_protocol::GaussianFrame;
use splatcast_protocol::av1::{CodecError, CodedGop, EncoderSettings, PlaneEncoder, Rav1eEncoder};
use splatcast_protocol::container::{fragment_index, init_segment, media_segment};
use splatcast_protocol::gop::{Attribute, GopStart, pack};
use splatcast_protocol::layout::Grid;
use splatcast_protocol::stream::StreamLayout;

use crate::correspond::{Correspondence, correspond};
use crate::presets::{PLANE_BIT_DEPTH, Quality};

/// How to encode.
#[derive(Clone, Debug)]
pub struct EncodeOptions {
    /// Frames per second.
    pub fps: f64,
    /// Longest GOP in frames.
    pub gop: usize,
    /// Size/fidelity preset.
    pub quality: Quality,
    /// Total target bitrate in bits per second (constant-quality mode when `None`).
    pub bitrate: Option<u64>,
    /// PLAS refinement passes per radius.
    pub refine_passes: usize,
}

impl Default for EncodeOptions {
    fn default() -> Self {
        Self {
            fps: 30.0,
            gop: 30,
            quality: Quality::Medium,
            bitrate: None,
            refine_passes: 4,
        }
    }
}

/// Why encoding failed.
#[derive(Debug, thiserror::Error)]
pub enum EncodeError {
    /// Writing the output failed.
    #[error("writing output")]
    Io(#[from] std::io::Error),
    /// AV1 encoding failed.
    #[error(transparent)]
    Codec(#[from] CodecError),
    /// A frame does not fit the sequence.
    #[error("frame {frame}: {problem}")]
    Input {
        /// Frame index.
        frame: u64,
        /// What is wrong.
        problem: String,
    },
}

/// What happened to one GOP.
#[derive(Clone, Debug)]
pub struct GopReport {
    /// Index of its first frame.
    pub first_frame: u64,
    /// Frames in it.
    pub frames: usize,
    /// Gaussians per frame.
    pub gaussians: usize,
    /// Why it started.
    pub start: GopStart,
    /// Per frame, Gaussians re-matched to keep identities.
    pub rematched: Vec<u32>,
    /// Compressed side-data bytes.
    pub side_bytes: usize,
    /// AV1 bytes per track.
    pub track_bytes: Vec<(Attribute, usize)>,
}

/// The stream layout for a sequence whose largest frame has `max_gaussians`.
pub fn stream_layout(options: &EncodeOptions, max_gaussians: usize, sh_degree: u8) -> StreamLayout {
    StreamLayout {
        fps: options.fps,
        grid: Grid::for_count(max_gaussians),
        sh_degree,
        tracks: Attribute::for_degree(sh_degree)
            .into_iter()
            .map(|a| (a, PLANE_BIT_DEPTH))
            .collect(),
    }
}

/// What a finished encode hands back.
pub struct Encoded<W> {
    /// The output, complete with its fragment index.
    pub output: W,
    /// One report per GOP.
    pub reports: Vec<GopReport>,
    /// The coded-order input frames, when asked for.
    pub reference: Option<Vec<GaussianFrame>>,
}

/// Encodes frames pushed one at a time into a fragmented MP4 written to `out`.
pub struct SequenceEncoder<W: Write> {
    options: EncodeOptions,
    layout: StreamLayout,
    out: W,
    written: u64,
    movie: Option<splatcast_protocol::container::Movie>,
    next_first_frame: u64,
    index: Vec<(u64, u64)>,
    gop: Vec<GaussianFrame>,
    start: GopStart,
    rematched: Vec<u32>,
    frames_in: u64,
    /// One report per GOP written so far.
    pub reports: Vec<GopReport>,
    /// When kept, the input frames as coded (Gaussians in decoder order), for measuring error.
    pub reference: Option<Vec<GaussianFrame>>,
}

impl<W: Write> SequenceEncoder<W> {
    /// A new encoder writing to `out`; `keep_reference` retains the coded-order input frames.
    pub fn new(out: W, layout: StreamLayout, options: EncodeOptions, keep_reference: bool) -> Self {
        Self {
            options,
            layout,
            out,
            written: 0,
            movie: None,
            next_first_frame: 0,
            index: Vec::new(),
            gop: Vec::new(),
            start: GopStart::First,
            rematched: Vec::new(),
            frames_in: 0,
            reports: Vec::new(),
            reference: keep_reference.then(Vec::new),
        }
    }

    /// Adds the next frame; writes a fragment whenever a GOP completes.
    pub fn push(&mut self, frame: GaussianFrame) -> Result<(), EncodeError> {
        let frame_no = self.frames_in;
        self.frames_in += 1;
        let input = |problem: String| EncodeError::Input {
            frame: frame_no,
            problem,
        };
        if frame.sh_degree != self.layout.sh_degree {
            return Err(input(format!(
                "SH degree {} differs from the sequence's {}",
                frame.sh_degree, self.layout.sh_degree
            )));
        }
        if frame.len() > self.layout.grid.pixels() || frame.is_empty() {
            return Err(input(format!(
                "{} Gaussians do not fit the sequence's {}-pixel planes",
                frame.len(),
                self.layout.grid.pixels()
            )));
        }
        let Some(last) = self.gop.last() else {
            self.rematched = vec![0];
            self.gop.push(frame);
            return Ok(());
        };
        match correspond(last, &frame) {
            Correspondence::Identity => {
                self.gop.push(frame);
                self.rematched.push(0);
            }
            Correspondence::Reordered { order, moved } => {
                self.gop.push(frame.permuted(&order));
                self.rematched.push(moved);
            }
            Correspondence::None => {
                let reason = if last.len() != frame.len() {
                    GopStart::CountChanged
                } else {
                    GopStart::NoCorrespondence
                };
                self.flush_gop(reason)?;
                self.rematched = vec![0];
                self.gop.push(frame);
            }
        }
        if self.gop.len() >= self.options.gop {
            self.flush_gop(GopStart::Length)?;
        }
        Ok(())
    }

    /// Codes the pending GOP; `next` is why the following GOP will start.
    fn flush_gop(&mut self, next: GopStart) -> Result<(), EncodeError> {
        if self.gop.is_empty() {
            return Ok(());
        }
        let frames = std::mem::take(&mut self.gop);
        let rematched = std::mem::take(&mut self.rematched);
        let start = std::mem::replace(&mut self.start, next);
        let packed = pack(
            &frames,
            self.layout.grid,
            &self.layout.tracks,
            self.options.refine_passes,
            start,
            rematched.clone(),
        );
        let settings: Vec<EncoderSettings> = packed
            .planes
            .iter()
            .map(|p| self.settings(p.attribute))
            .collect();
        let coded: Vec<CodedGop> = packed
            .planes
            .par_iter()
            .zip(settings)
            .map(|(planes, s)| Rav1eEncoder::new(s).encode_gop(&planes.pictures))
            .collect::<Result<_, _>>()?;
        if self.movie.is_none() {
            let headers: Vec<Vec<u8>> = coded.iter().map(|c| c.sequence_header.clone()).collect();
            let movie = self.layout.movie(&headers);
            self.write(&init_segment(&movie))?;
            self.movie = Some(movie);
        }
        let first_frame = self.next_first_frame;
        self.next_first_frame += frames.len() as u64;
        let side = packed.side.to_bytes();
        let side_bytes = side.len();
        let fragment =
            self.layout
                .fragment(self.reports.len() as u32 + 1, first_frame, side, &coded);
        self.index.push((fragment.base_time, self.written));
        let bytes = media_segment(&fragment);
        self.write(&bytes)?;
        self.out.flush()?;
        self.reports.push(GopReport {
            first_frame,
            frames: frames.len(),
            gaussians: frames[0].len(),
            start,
            rematched,
            side_bytes,
            track_bytes: packed
                .planes
                .iter()
                .zip(&coded)
                .map(|(p, c)| (p.attribute, c.samples.iter().map(Vec::len).sum()))
                .collect(),
        });
        if let Some(reference) = &mut self.reference {
            reference.extend(frames.iter().map(|f| f.permuted(&packed.coded_order)));
        }
        Ok(())
    }

    fn settings(&self, attribute: Attribute) -> EncoderSettings {
        let q = self.options.quality;
        let share_total: f64 = self
            .layout
            .tracks
            .iter()
            .map(|(a, _)| Quality::bitrate_share(*a))
            .sum();
        EncoderSettings {
            speed: q.speed(),
            quantizer: if self.options.bitrate.is_some() {
                0
            } else {
                q.quantizer(attribute)
            },
            bitrate: self.options.bitrate.map_or(0, |b| {
                (b as f64 * Quality::bitrate_share(attribute) / share_total).round() as u32
            }),
            fps: self.options.fps,
            threads: 1,
        }
    }

    fn write(&mut self, bytes: &[u8]) -> Result<(), EncodeError> {
        self.out.write_all(bytes)?;
        self.written += bytes.len() as u64;
        Ok(())
    }

    /// Codes the last GOP, writes the fragment index and returns the output.
    pub fn finish(mut self) -> Result<Encoded<W>, EncodeError> {
        self.flush_gop(GopStart::Length)?;
        let Some(movie) = &self.movie else {
            return Err(EncodeError::Input {
                frame: 0,
                problem: "no frames to encode".into(),
            });
        };
        let mfra = fragment_index(movie, &self.index);
        self.write(&mfra)?;
        self.out.flush()?;
        Ok(Encoded {
            output: self.out,
            reports: self.reports,
            reference: self.reference,
        })
    }
}
