//! The sequence encoder: groups frames into GOPs (keeping Gaussian identities across frames),
//! packs each GOP into planes, codes the planes with AV1 and writes one fragment per GOP.

use std::io::Write;

use splatcast_protocol::GaussianFrame;
use splatcast_protocol::av1::EncoderSettings;
use splatcast_protocol::gaussian::sigmoid;
use splatcast_protocol::gop::{Attribute, GopStart};
use splatcast_protocol::layout::Grid;
use splatcast_protocol::stream::{
    Fragmentation, StreamLayout, StreamWriter, WriteError, WrittenGop,
};

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
    /// One fragment per GOP, or per frame and track (the chunks MoQ carries).
    pub fragmentation: Fragmentation,
    /// rav1e speed preset (0 slowest … 10 fastest) instead of the quality preset's.
    pub speed: Option<u8>,
    /// AV1 base quantizers of these attributes instead of the quality preset's (tuning, see
    /// `learn-bench --quantizers`).
    pub quantizers: Vec<(Attribute, u8)>,
    /// Opacity below which Gaussians that stay that faint through a GOP are left out, instead
    /// of the quality preset's ([`Quality::prune_below`]); 0 keeps every Gaussian.
    pub prune_below: Option<f32>,
}

impl EncodeOptions {
    /// The rav1e speed preset in effect.
    pub fn speed(&self) -> u8 {
        self.speed.unwrap_or(self.quality.speed())
    }

    /// The pruning opacity in effect.
    pub fn prune_below(&self) -> f32 {
        self.prune_below.unwrap_or(self.quality.prune_below())
    }
}

impl Default for EncodeOptions {
    fn default() -> Self {
        Self {
            fps: 30.0,
            gop: 30,
            quality: Quality::Medium,
            bitrate: None,
            refine_passes: 4,
            fragmentation: Fragmentation::Gop,
            speed: None,
            quantizers: Vec::new(),
            prune_below: None,
        }
    }
}

/// Share of a GOP's visible mass (see [`visible_mass`]) that the Gaussians left out may carry.
/// Trainers with an opacity regulariser (3DGS-MCMC: ours, Brush, gsplat's) spread a scene over
/// faint Gaussians: 94 % of a trained 150k fox lie below 0.05, and leaving them out took its
/// keyframe from 44 to 30 dB. A 3DGS-trained splat's faint Gaussians are small: the donut's
/// below 0.05 (8 % of them) carry 0.08 % of its mass, below 0.2 (19 %) 0.96 %.
const PRUNED_MASS: f64 = 0.01;

/// Below this opacity a Gaussian never reaches the renderer's alpha cut-off (1/255, as in 3DGS):
/// leaving it out changes no pixel.
const INVISIBLE: f32 = 1.0 / 255.0;

/// Gaussian `i`'s opacity times the footprint of its two largest axes: what it can cover.
fn visible_mass(frame: &GaussianFrame, i: usize) -> f64 {
    let mut axes = frame.log_scales[i].to_array();
    axes.sort_by(f32::total_cmp);
    let area = f64::from(axes[1] + axes[2]).clamp(-80.0, 80.0).exp();
    f64::from(sigmoid(frame.opacity_logits[i])) * area
}

/// The Gaussians of a GOP of `frames` whose opacity reaches `opacity` in some frame, the
/// threshold halved while those left out would carry more than [`PRUNED_MASS`] of the GOP's
/// visible mass — down to [`INVISIBLE`], which always holds (every Gaussian when `opacity` is
/// not positive).
fn kept(frames: &[GaussianFrame], opacity: f32) -> Vec<usize> {
    let n = frames.first().map_or(0, GaussianFrame::len);
    if opacity.is_nan() || opacity <= 0.0 {
        return (0..n).collect();
    }
    let mass: Vec<f64> = (0..n)
        .map(|i| frames.iter().map(|f| visible_mass(f, i)).sum())
        .collect();
    let total: f64 = mass.iter().sum();
    let mut threshold = opacity;
    while threshold > INVISIBLE {
        let kept = above(frames, threshold);
        let left_out = total - kept.iter().map(|&i| mass[i]).sum::<f64>();
        if kept.len() == n || left_out <= PRUNED_MASS * total {
            return kept;
        }
        threshold /= 2.0;
    }
    above(frames, opacity.min(INVISIBLE))
}

/// The Gaussians of a GOP of `frames` whose opacity reaches `opacity` in some frame (every one
/// when none would). Compared as logits, so ±∞ logits (opacity 1 or 0) sort right.
fn above(frames: &[GaussianFrame], opacity: f32) -> Vec<usize> {
    let n = frames.first().map_or(0, GaussianFrame::len);
    let logit = (opacity / (1.0 - opacity)).ln();
    let kept: Vec<usize> = (0..n)
        .filter(|&i| frames.iter().any(|f| f.opacity_logits[i] >= logit))
        .collect();
    if kept.is_empty() {
        (0..n).collect()
    } else {
        kept
    }
}

/// How many Gaussians a GOP of `frames` keeps when the faint ones are left out
/// ([`EncodeOptions::prune_below`]): sizes the stream layout of a single frame.
pub fn kept_gaussians(frames: &[GaussianFrame], options: &EncodeOptions) -> usize {
    kept(frames, options.prune_below()).len()
}

/// The GOP without the Gaussians that stay fainter than `opacity` in every frame.
fn without_faint(frames: Vec<GaussianFrame>, opacity: f32) -> Vec<GaussianFrame> {
    let kept = kept(&frames, opacity);
    if frames.is_empty() || kept.len() == frames[0].len() {
        return frames;
    }
    frames.iter().map(|f| f.permuted(&kept)).collect()
}

/// `frame` without the Gaussians fainter than `opacity`, or `None` when none is: a learnt
/// keyframe, where its GOP's Gaussians are decided.
pub(crate) fn faint_left_out(frame: &GaussianFrame, opacity: f32) -> Option<GaussianFrame> {
    let kept = above(std::slice::from_ref(frame), opacity);
    (kept.len() < frame.len()).then(|| frame.permuted(&kept))
}

/// Why encoding failed.
#[derive(Debug, thiserror::Error)]
pub enum EncodeError {
    /// Writing the output failed.
    #[error("writing output")]
    Io(#[from] std::io::Error),
    /// Coding a GOP failed.
    #[error(transparent)]
    Write(#[from] WriteError),
    /// The thread coding a GOP died.
    #[error("the thread coding a GOP panicked")]
    CodingPanicked,
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

/// Called with each GOP once it is coded.
type Observer = Box<dyn FnMut(&WrittenGop) + Send>;

/// A GOP handed to its own thread with the writer, and what comes back.
struct Coded {
    writer: StreamWriter,
    frames: Vec<GaussianFrame>,
    start: GopStart,
    rematched: Vec<u32>,
    written: Result<WrittenGop, WriteError>,
}

/// Encodes frames pushed one at a time into a fragmented MP4 written to `out`: correspondence
/// and GOP decisions here, planes and container in the protocol's [`StreamWriter`].
///
/// A completed GOP is coded on its own thread while the next one's frames arrive and are
/// matched (GOPs do not depend on each other's frames), so matching and AV1 overlap; its
/// fragment is written at the first push after it is done, or before the next GOP is coded.
pub struct SequenceEncoder<W: Write> {
    options: EncodeOptions,
    layout: StreamLayout,
    /// The writer while no GOP is being coded (the coding thread holds it otherwise).
    writer: Option<StreamWriter>,
    coding: Option<std::thread::JoinHandle<Coded>>,
    out: W,
    gop: Vec<GaussianFrame>,
    start: GopStart,
    rematched: Vec<u32>,
    frames_in: u64,
    /// The input frame the pending GOP starts at.
    gop_first: u64,
    observer: Option<Observer>,
    /// One report per GOP written so far.
    pub reports: Vec<GopReport>,
    /// When kept, the input frames as coded (Gaussians in decoder order), for measuring error.
    pub reference: Option<Vec<GaussianFrame>>,
}

impl<W: Write> SequenceEncoder<W> {
    /// A new encoder writing to `out`; `keep_reference` retains the coded-order input frames.
    pub fn new(out: W, layout: StreamLayout, options: EncodeOptions, keep_reference: bool) -> Self {
        let writer = stream_writer(&layout, &options);
        Self {
            options,
            layout,
            writer: Some(writer),
            coding: None,
            out,
            gop: Vec::new(),
            start: GopStart::First,
            rematched: Vec::new(),
            frames_in: 0,
            gop_first: 0,
            observer: None,
            reports: Vec::new(),
            reference: keep_reference.then(Vec::new),
        }
    }

    /// Calls `observer` with every GOP once it is coded (at the first push after, before it is
    /// written to the output): how a live publisher sends each GOP's chunks while the encoder
    /// goes on.
    pub fn observe(&mut self, observer: impl FnMut(&WrittenGop) + Send + 'static) {
        self.observer = Some(Box::new(observer));
    }

    /// Adds the next frame; writes a fragment whenever a GOP completes.
    pub fn push(&mut self, frame: GaussianFrame) -> Result<(), EncodeError> {
        if self.coding.as_ref().is_some_and(|c| c.is_finished()) {
            self.collect()?;
        }
        check_frame(&self.layout, &frame, self.frames_in)?;
        self.frames_in += 1;
        let Some(last) = self.gop.last() else {
            self.gop_first = self.frames_in - 1;
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
                self.gop_first = self.frames_in - 1;
                self.rematched = vec![0];
                self.gop.push(frame);
            }
        }
        if self.gop.len() >= self.options.gop {
            self.flush_gop(GopStart::Length)?;
        }
        Ok(())
    }

    /// Starts coding the pending GOP (after the one in flight is written); `next` is why the
    /// following GOP will start.
    fn flush_gop(&mut self, next: GopStart) -> Result<(), EncodeError> {
        if self.gop.is_empty() {
            return Ok(());
        }
        self.collect()?;
        let frames = without_faint(std::mem::take(&mut self.gop), self.options.prune_below());
        check_fits(&self.layout, frames[0].len(), self.gop_first)?;
        let Some(mut writer) = self.writer.take() else {
            return Err(EncodeError::CodingPanicked);
        };
        let rematched = std::mem::take(&mut self.rematched);
        let start = std::mem::replace(&mut self.start, next);
        self.coding = Some(std::thread::spawn(move || {
            let written = writer.write_gop(&frames, start, rematched.clone());
            Coded {
                writer,
                frames,
                start,
                rematched,
                written,
            }
        }));
        Ok(())
    }

    /// Waits for the GOP in flight, if any, and writes it out.
    fn collect(&mut self) -> Result<(), EncodeError> {
        let Some(coding) = self.coding.take() else {
            return Ok(());
        };
        let Coded {
            writer,
            frames,
            start,
            rematched,
            written,
        } = coding.join().map_err(|_| EncodeError::CodingPanicked)?;
        self.writer = Some(writer);
        let written = written?;
        if let Some(observer) = &mut self.observer {
            observer(&written);
        }
        if let Some(init) = &written.init {
            self.out.write_all(init)?;
        }
        for chunk in &written.chunks {
            self.out.write_all(&chunk.bytes)?;
        }
        self.out.flush()?;
        self.reports.push(GopReport {
            first_frame: written.first_frame,
            frames: frames.len(),
            gaussians: frames[0].len(),
            start,
            rematched,
            side_bytes: written.side_bytes,
            track_bytes: self
                .layout
                .tracks
                .iter()
                .map(|&(a, _)| a)
                .zip(written.track_bytes)
                .collect(),
        });
        if let Some(reference) = &mut self.reference {
            reference.extend(frames.iter().map(|f| f.permuted(&written.coded_order)));
        }
        Ok(())
    }

    /// Codes the last GOP, writes the fragment index and returns the output.
    pub fn finish(mut self) -> Result<Encoded<W>, EncodeError> {
        self.flush_gop(GopStart::Length)?;
        self.collect()?;
        let writer = self.writer.take().ok_or(EncodeError::CodingPanicked)?;
        let mfra = writer.finish().map_err(|e| match e {
            WriteError::Empty => EncodeError::Input {
                frame: 0,
                problem: "no frames to encode".into(),
            },
            e => e.into(),
        })?;
        self.out.write_all(&mfra)?;
        self.out.flush()?;
        Ok(Encoded {
            output: self.out,
            reports: self.reports,
            reference: self.reference,
        })
    }
}

/// The protocol's writer for `layout` as `options` say: each track's rav1e settings, the
/// fragmentation, the PLAS effort and the keyframe position coding.
pub(crate) fn stream_writer(layout: &StreamLayout, options: &EncodeOptions) -> StreamWriter {
    let settings = layout
        .tracks
        .iter()
        .map(|&(a, _)| track_settings(options, layout, a))
        .collect();
    StreamWriter::new(
        layout.clone(),
        settings,
        options.fragmentation,
        options.refine_passes,
    )
    .keyframe_coding(options.quality.keyframes(options.speed()))
    .target_bitrate(options.bitrate)
}

/// Whether frame `frame_no` suits a sequence of `layout`: its SH degree, at least one
/// Gaussian. ([`check_fits`] says whether what is coded of it fits the planes.)
pub(crate) fn check_frame(
    layout: &StreamLayout,
    frame: &GaussianFrame,
    frame_no: u64,
) -> Result<(), EncodeError> {
    let input = |problem: String| EncodeError::Input {
        frame: frame_no,
        problem,
    };
    if frame.sh_degree != layout.sh_degree {
        return Err(input(format!(
            "SH degree {} differs from the sequence's {}",
            frame.sh_degree, layout.sh_degree
        )));
    }
    if frame.is_empty() {
        return Err(input("the frame holds no Gaussians".into()));
    }
    Ok(())
}

/// Whether `gaussians` coded from frame `frame_no` on fit the planes of `layout`.
pub(crate) fn check_fits(
    layout: &StreamLayout,
    gaussians: usize,
    frame_no: u64,
) -> Result<(), EncodeError> {
    if gaussians > layout.grid.pixels() {
        return Err(EncodeError::Input {
            frame: frame_no,
            problem: format!(
                "{gaussians} Gaussians do not fit the sequence's {}-pixel planes",
                layout.grid.pixels()
            ),
        });
    }
    Ok(())
}

/// rav1e settings for one track: the preset's quantizer (where a target bitrate moves it from,
/// GOP by GOP).
pub(crate) fn track_settings(
    options: &EncodeOptions,
    layout: &StreamLayout,
    attribute: Attribute,
) -> EncoderSettings {
    EncoderSettings {
        speed: options.speed(),
        quantizer: (options.quantizers.iter().find(|(a, _)| *a == attribute))
            .map_or(options.quality.quantizer(attribute), |&(_, q)| q),
        fps: options.fps,
        threads: track_threads(layout, attribute),
    }
}

/// rav1e threads for `attribute`'s track: the tracks of a GOP are coded side by side, one
/// thread each at least; cores beyond that are shared in proportion to the tracks' channels
/// (a GOP takes as long as its largest track, SH rest with 9 to 45 channels) and go to tiles.
fn track_threads(layout: &StreamLayout, attribute: Attribute) -> usize {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let channels = |a: Attribute| a.channels(layout.sh_degree).max(1);
    let all: usize = layout.tracks.iter().map(|&(a, _)| channels(a)).sum();
    (cores * channels(attribute) / all.max(1)).max(1)
}

#[cfg(test)]
mod tests {
    use splatcast_protocol::gaussian::logit;

    use super::*;
    use crate::metrics::tests::frame;

    #[test]
    fn only_gaussians_faint_through_the_whole_gop_are_left_out() {
        // Gaussian 0 is opaque, 1 faint throughout, 2 fades in, 3 transparent (logit −∞) and
        // 4 fully opaque (+∞).
        let gop: Vec<GaussianFrame> = [[0.9, 0.01, 0.002], [0.9, 0.02, 0.7]]
            .iter()
            .map(|o| {
                let mut f = frame(&[o[0], o[1], o[2], 0.5, 0.5]);
                f.opacity_logits[3] = f32::NEG_INFINITY;
                f.opacity_logits[4] = f32::INFINITY;
                f
            })
            .collect();
        let kept = without_faint(gop.clone(), 0.05);
        for f in &kept {
            let xs: Vec<f32> = f.positions.iter().map(|p| p.x).collect();
            assert_eq!(xs, [0.0, 2.0, 4.0]);
        }
        assert_eq!(
            kept[1].opacity_logits,
            [logit(0.9), logit(0.7), f32::INFINITY]
        );
        // 0 keeps everything; a GOP that would be left empty is kept whole.
        assert_eq!(without_faint(gop.clone(), 0.0)[0].len(), 5);
        assert_eq!(without_faint(vec![frame(&[0.01, 0.02])], 0.05)[0].len(), 2);
    }

    #[test]
    fn faint_gaussians_that_carry_the_picture_are_kept() {
        // One small opaque Gaussian among wide faint ones, as 3DGS-MCMC trains them: those below
        // 0.05 carry almost everything, so 0.05 is refused; 0.025 leaves out only the one under
        // 0.01, which is small.
        let mut f = frame(&[0.9, 0.03, 0.03, 0.03, 0.002]);
        f.log_scales[0] = glam::Vec3::splat(-3.0);
        f.log_scales[4] = glam::Vec3::splat(-3.0);
        let kept: Vec<f32> = without_faint(vec![f.clone()], 0.05)[0]
            .positions
            .iter()
            .map(|p| p.x)
            .collect();
        assert_eq!(kept, [0.0, 1.0, 2.0, 3.0]);
        // Made wide, that one carries 2 % of the mass and every threshold down to 1/255 is
        // refused; it is left out all the same, as it never reaches the renderer's cut-off.
        f.log_scales[4] = glam::Vec3::ZERO;
        assert_eq!(without_faint(vec![f], 0.05)[0].len(), 4);
    }
}
