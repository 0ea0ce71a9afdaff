//! Live encoding: frames in one at a time, each frame's chunks out as soon as AV1 has coded it
//! on every track, not once its GOP is complete — the latency of a live stream is then rav1e's
//! lookahead (four frames), not a GOP. A live GOP cannot see its later frames, so its layout
//! and quantisation are fixed at its key frame ([`GopPlan::for_keyframe`]: attribute ranges
//! widened by a margin, displacements within a range around the key frame); a frame that
//! cannot be matched to the last one, or whose Gaussians moved beyond that range, starts a new
//! GOP, as does the GOP length.

use glam::Vec3;
use splatcast_protocol::GaussianFrame;
use splatcast_protocol::gop::{GopPlan, GopStart};
use splatcast_protocol::stream::{Chunk, LiveChunks, LiveGop, StreamLayout, StreamWriter};

use crate::correspond::{Correspondence, correspond};
use crate::encode::{EncodeError, EncodeOptions, check_fits, check_frame, stream_writer};

/// Attribute ranges: the key frame's, widened by this share of their width on both sides.
const MARGIN: f32 = 0.1;

/// Displacements a live GOP holds: this share of the key frame's largest extent, either way.
const MOTION: f32 = 0.03;

/// A frame with more than this share of Gaussians beyond the displacement range starts a GOP.
const BEYOND: f64 = 0.01;

/// What a step of live encoding produced, in stream order.
#[derive(Debug, Default)]
pub struct LiveOutput {
    /// The init segment, before the stream's first chunk.
    pub init: Option<Vec<u8>>,
    /// Chunks with their GOP (MoQ group) number.
    pub chunks: Vec<(u64, Chunk)>,
    /// The fragment index that closes a file (from [`LiveEncoder::finish`] only).
    pub index: Option<Vec<u8>>,
}

impl LiveOutput {
    fn add(&mut self, group: u64, step: LiveChunks) {
        self.init = self.init.take().or(step.init);
        self.chunks
            .extend(step.chunks.into_iter().map(|c| (group, c)));
    }
}

/// The GOP being coded.
struct Open {
    plan: GopPlan,
    gop: LiveGop,
    group: u64,
    frames: usize,
    /// Key frame positions and how far a Gaussian may move from them.
    key: Vec<Vec3>,
    motion: f32,
    /// The last frame, in key frame order (what the next one is matched to).
    last: GaussianFrame,
}

/// Encodes frames as they arrive into per-frame chunks (see the module documentation).
pub struct LiveEncoder {
    options: EncodeOptions,
    layout: StreamLayout,
    writer: StreamWriter,
    open: Option<Open>,
    groups: u64,
    frames_in: u64,
}

impl LiveEncoder {
    /// An encoder for a stream of `layout`; `options.gop` is the longest GOP.
    pub fn new(layout: StreamLayout, options: EncodeOptions) -> Self {
        Self {
            writer: stream_writer(&layout, &options),
            options,
            layout,
            open: None,
            groups: 0,
            frames_in: 0,
        }
    }

    /// Codes the next frame; returns the chunks now ready (of this frame or earlier ones).
    pub fn push(&mut self, frame: GaussianFrame) -> Result<LiveOutput, EncodeError> {
        check_frame(&self.layout, &frame, self.frames_in)?;
        check_fits(&self.layout, frame.len(), self.frames_in)?;
        self.frames_in += 1;
        let mut out = LiveOutput::default();
        let start = match self.open.as_mut() {
            None => GopStart::First,
            Some(open) if open.frames >= self.options.gop => GopStart::Length,
            Some(open) => match correspond(&open.last, &frame) {
                Correspondence::None if open.last.len() != frame.len() => GopStart::CountChanged,
                Correspondence::None => GopStart::NoCorrespondence,
                matched => {
                    let ordered = match matched {
                        Correspondence::Reordered { order, .. } => frame.permuted(&order),
                        _ => frame.clone(),
                    };
                    let beyond = ordered
                        .positions
                        .iter()
                        .zip(&open.key)
                        .filter(|(p, k)| (**p - **k).abs().max_element() > open.motion)
                        .count();
                    if beyond as f64 > BEYOND * ordered.len() as f64 {
                        GopStart::Motion
                    } else {
                        let step = self
                            .writer
                            .push_live(&mut open.gop, &open.plan.pictures(&ordered))?;
                        out.add(open.group, step);
                        open.frames += 1;
                        open.last = ordered;
                        return Ok(out);
                    }
                }
            },
        };
        self.close(&mut out)?;
        self.open_gop(frame, start, &mut out)?;
        Ok(out)
    }

    /// Closes the stream's last GOP; returns its last chunks and the index that closes a file.
    pub fn finish(mut self) -> Result<LiveOutput, EncodeError> {
        let mut out = LiveOutput::default();
        self.close(&mut out)?;
        out.index = Some(self.writer.finish()?);
        Ok(out)
    }

    fn close(&mut self, out: &mut LiveOutput) -> Result<(), EncodeError> {
        if let Some(open) = self.open.take() {
            out.add(open.group, self.writer.finish_live(open.gop)?);
        }
        Ok(())
    }

    fn open_gop(
        &mut self,
        key: GaussianFrame,
        start: GopStart,
        out: &mut LiveOutput,
    ) -> Result<(), EncodeError> {
        let (lo, hi) = key.bounds().unwrap_or((Vec3::ZERO, Vec3::ZERO));
        let motion = (MOTION * (hi - lo).max_element()).max(1e-6);
        let plan = GopPlan::for_keyframe(
            &key,
            self.layout.grid,
            &self.layout.tracks,
            self.options.refine_passes,
            self.options.quality.keyframes(self.options.speed()),
            MARGIN,
            motion,
        )
        .map_err(splatcast_protocol::stream::WriteError::Codec)?;
        let declared = self.options.gop;
        let side = plan.side(declared, start, vec![0; declared]);
        let pictures = plan.pictures(&key);
        let mut gop = self.writer.start_live(&side, &pictures)?;
        let group = self.groups;
        self.groups += 1;
        out.add(group, self.writer.push_live(&mut gop, &pictures)?);
        self.open = Some(Open {
            plan,
            gop,
            group,
            frames: 1,
            key: key.positions.clone(),
            motion,
            last: key,
        });
        Ok(())
    }
}
