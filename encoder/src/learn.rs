//! The learnt dynamic encoder: a multi-view video in, a Splatcast stream out.
//!
//! A GOP starts with a keyframe — the first one trained from scratch under the Gaussian budget,
//! later ones refreshed from the previous decoded frame (or from scratch when that cannot follow
//! the motion), with relocation (densify and prune) only there, and its faint Gaussians left out
//! — whose plane layout and quantisation are then fixed for the GOP. Every later
//! frame is a residual learnt against the previous frame *as decoded* ([`PlannedGop`]), with
//! the codec's quantisation in the loop, a rate term and per-Gaussian gates
//! ([`crate::residual`]). A new GOP starts every `gop` frames, on a scene change (the photos
//! change too much), or when a residual frame falls too far below its keyframe's quality.
//!
//! Offline it takes the frames as fast as it can and codes each GOP whole once it closes; online
//! it takes each frame when its time comes at the capture's frame rate, caps each residual
//! frame's optimisation to a time budget, codes each frame the moment it is learnt (per-frame
//! chunks, as `publish` sends them) and reports how late each frame leaves.

use std::io::Write;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use splatcast_protocol::GaussianFrame;
use splatcast_protocol::av1::Picture;
use splatcast_protocol::gaussian::robust_bounds;
use splatcast_protocol::gop::GopSide;
use splatcast_protocol::gop::{GopStart, UnpackError};
use splatcast_protocol::stream::{
    Chunk, LiveChunks, LiveGop, StreamLayout, StreamWriter, WriteError, WrittenGop,
};

use crate::datasets::{DatasetError, Split};
use crate::encode::{EncodeOptions, faint_left_out, stream_layout, track_settings};
use crate::init::focus;
use crate::multiview::MultiViewVideo;
use crate::planned::PlannedGop;
use crate::residual::{
    Photos, Prediction, Reference, ResidualFrame, ResidualOptions, ResidualTrainer, extrapolate,
    moved_fraction,
};
use crate::stages::Stages;
use crate::train::{DEAD, Loaded, TrainError, TrainOptions, ViewScore, filled, load_views, train};

/// Why learning a stream failed.
#[derive(Debug, thiserror::Error)]
pub enum LearnError {
    /// A photo or the data set could not be read.
    #[error(transparent)]
    Dataset(#[from] DatasetError),
    /// Training failed.
    #[error(transparent)]
    Train(#[from] TrainError),
    /// Coding a GOP failed.
    #[error(transparent)]
    Write(#[from] WriteError),
    /// A frame could not be rebuilt from its planes.
    #[error(transparent)]
    Unpack(#[from] UnpackError),
    /// Writing the output failed.
    #[error("writing output")]
    Io(#[from] std::io::Error),
    /// The GOP coder stopped before the stream was finished.
    #[error("the GOP coder stopped early")]
    CoderStopped,
    /// The frame reader stopped before the last frame.
    #[error("the frame reader stopped early")]
    ReaderStopped,
}

/// Online, frames are scored on this many training views (scoring all of them costs more than a
/// frame period: 70 ms of the 33 at 96×54 × 8 views on this machine's CPU renderer).
const LIVE_SCORE_VIEWS: usize = 4;

/// How a keyframe after the first is trained.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Refresh {
    /// Resumed; when that still falls more than `quality_drop` below the last keyframe trained
    /// from scratch (motion the Gaussians cannot follow), from scratch.
    #[default]
    Auto,
    /// `refresh_iterations` steps from the previous decoded frame.
    Resume,
    /// From scratch, as the first keyframe (the quality ceiling; the cost of a full training).
    Scratch,
}

/// How to learn a stream.
#[derive(Clone, Debug)]
pub struct LearnOptions {
    /// The first keyframe's training (from scratch; its budget is the stream's).
    pub keyframe: TrainOptions,
    /// Steps of later keyframes, refreshed from the previous decoded frame.
    pub refresh_iterations: u32,
    /// How later keyframes are trained.
    pub refresh: Refresh,
    /// Residual frames.
    pub residual: ResidualOptions,
    /// Frame rate, GOP length, quality, fragments. The default preset is
    /// [`LEARNT_QUALITY`].
    pub encode: EncodeOptions,
    /// A residual frame this many dB (training views) below its keyframe starts a new GOP
    /// (offline only).
    pub quality_drop: f64,
    /// A mean absolute photo change (0–1) above this starts a new GOP.
    pub scene_change: f64,
    /// Training-view PSNR (dB) a keyframe may lose when its faint Gaussians are left out.
    pub prune_loss: f64,
    /// Ranges are the keyframe's widened by this fraction of their width.
    pub margin: f32,
    /// Displacements within a GOP may reach this fraction of the scene radius.
    pub motion: f32,
    /// Online: take frame t at (t − 1) / fps after the first keyframe is learnt, cap each
    /// residual frame's steps so it takes about this many seconds, and skip the gate passes.
    pub live_budget: Option<f64>,
}

/// The preset learnt streams take unless told otherwise. Their keyframes are pruned (see
/// [`LearnOptions::prune_loss`]), which left room under 0.25 MB/frame at a 150k budget, and at
/// Medium AV1 cost 2.0–2.7 dB held-out on the residual frames. Measured on the H200 (fox Run
/// and robot, 960×540, 10 frames, BENCHMARKS.md session 19): High gave +1.3 and +0.8 dB over
/// Medium (35.22 against 33.88 dB at 0.128 against 0.102 MB/frame; 37.96 against 37.13 at
/// 0.202 against 0.182).
pub const LEARNT_QUALITY: crate::Quality = crate::Quality::High;

impl Default for LearnOptions {
    fn default() -> Self {
        Self {
            keyframe: TrainOptions::default(),
            refresh_iterations: 1000,
            refresh: Refresh::Auto,
            residual: ResidualOptions::default(),
            encode: EncodeOptions {
                quality: LEARNT_QUALITY,
                ..EncodeOptions::default()
            },
            quality_drop: 1.5,
            scene_change: 0.12,
            prune_loss: 0.5,
            margin: 0.25,
            motion: 0.25,
            live_budget: None,
        }
    }
}

/// What happened to one frame.
#[derive(Clone, Debug)]
pub struct FrameReport {
    /// Frame index.
    pub index: usize,
    /// Why a GOP started here, if one did.
    pub keyframe: Option<GopStart>,
    /// Fraction of Gaussians whose gate opened (1 for keyframes).
    pub gated: f64,
    /// Fraction of Gaussians whose decoded values changed from the previous decoded frame
    /// (the rest repeat their plane pixels exactly).
    pub moved: f64,
    /// Mean PSNR over the training views, as decoded (quantisation included).
    pub train_psnr: f64,
    /// Keyframes trained from scratch or refreshed under `auto`: the same PSNR as trained, before
    /// the GOP's quantisation (what the codec cost is `trained_psnr − train_psnr`); None where
    /// it was not scored (resumed refreshes, residual frames).
    pub trained_psnr: Option<f64>,
    /// Optimisation steps taken.
    pub iterations: u32,
    /// Gaussians it carries: the budget less the faint ones its keyframe left out.
    pub gaussians: usize,
    /// Seconds spent learning it.
    pub seconds: f64,
    /// The same seconds by stage: `photos` (decoding), `upload`, `gates`, `steps`, `score`,
    /// `quantise` for residual frames; `code` (handing the finished GOP to the coder thread, which
    /// waits only while the GOP before it is still being coded), `keyframe`, `plan`, `score`
    /// for keyframes.
    pub stages: Stages,
    /// Online: seconds from its arrival to its leaving the encoder (0 offline).
    pub lag: f64,
}

impl std::fmt::Display for FrameReport {
    /// One progress line: frame, kind, gates opened, Gaussians moved, training PSNR, steps,
    /// Gaussians, seconds and (online) lag.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "frame {:>5} {:>8}  gated {:.3}  moved {:.3}  train {:6.2} dB{}  {:>5} steps  {:>7} Gaussians  {:6.2} s ({})  lag {:.2} s",
            self.index,
            if self.keyframe.is_some() {
                "key"
            } else {
                "residual"
            },
            self.gated,
            self.moved,
            self.train_psnr,
            self.trained_psnr
                .map_or(String::new(), |p| format!(" ({p:.2} before the codec)")),
            self.iterations,
            self.gaussians,
            self.seconds,
            self.stages,
            self.lag
        )
    }
}

/// What the encoder tells its caller while it goes.
pub enum LearnEvent<'a> {
    /// A frame was learnt; with it, the frame as the encoder's closed loop decoded it (the
    /// GOP's quantisation, before AV1's own error).
    Frame(&'a FrameReport, &'a GaussianFrame),
    /// A GOP was coded and written (offline).
    Gop(&'a WrittenGop),
    /// Online: frames coded on every track and written, their chunks (one per frame and
    /// track) in stream order, in GOP (MoQ group) `group`; the init segment before the first.
    Chunks {
        /// The GOP they belong to, from 0.
        group: u64,
        /// The stream header, with the stream's first chunks only.
        init: Option<&'a [u8]>,
        /// The chunks.
        chunks: &'a [Chunk],
    },
}

/// What the learner hands the GOP coder.
enum ToCoder {
    /// A finished GOP, coded whole (offline).
    Gop(Box<PlannedGop>),
    /// Online: one frame's pictures, coded at once (rav1e's low-latency mode); with side data,
    /// the key frame of a new GOP (the open one ends).
    Frame {
        side: Option<GopSide>,
        pictures: Vec<Picture>,
    },
}

/// What the GOP coder hands back.
enum Coded {
    Gop(WrittenGop),
    Frames { group: u64, chunks: LiveChunks },
}

impl Coded {
    fn event(&self) -> LearnEvent<'_> {
        match self {
            Coded::Gop(written) => LearnEvent::Gop(written),
            Coded::Frames { group, chunks } => LearnEvent::Chunks {
                group: *group,
                init: chunks.init.as_deref(),
                chunks: &chunks.chunks,
            },
        }
    }
}

/// A finished stream.
pub struct Learned<W> {
    /// The output, complete with its fragment index.
    pub output: W,
    /// One report per frame.
    pub frames: Vec<FrameReport>,
    /// Bytes written.
    pub bytes: u64,
}

/// Trains a keyframe with [`train`]; a run that collapsed — (almost) every Gaussian faded out,
/// or its held-out renders explain the photos no better than the bare background — is run again
/// from another seed (up to three times). Collapses happen from some seeds on captures with
/// large plain backgrounds, where the opacity penalty wins before the object is found and
/// relocation has no live Gaussian left to copy (measured on the H200: a 1,000-step Fox keyframe
/// at 18.8 dB kept more than 1 % of its Gaussians live).
pub fn train_keyframe(
    dataset: &crate::datasets::Dataset,
    options: &TrainOptions,
) -> Result<GaussianFrame, TrainError> {
    let mut options = options.clone();
    let mut last = None;
    for attempt in 0..3u64 {
        let (trained, scores) = train(dataset, &options, |_| {})?;
        let live = trained
            .opacity_logits
            .iter()
            .filter(|&&o| splatcast_protocol::gaussian::sigmoid(o) > DEAD)
            .count();
        if live * 100 >= trained.len() && !no_better_than_background(&scores, options.background) {
            return Ok(trained);
        }
        options.seed = options.seed.wrapping_add(1000 * (attempt + 1));
        last = Some(trained);
    }
    Ok(last.expect("three attempts ran"))
}

/// Trains the keyframe of frame `t` as `policy` says, from `previous` (the decoded previous frame,
/// if any), resumed refreshes taking `refresh_steps` on `photos` in `residuals`' GPU context
/// (`distance`: the typical camera distance); scores are training-view PSNR on `photos`.
/// Returns it with the steps taken, whether it was resumed and, where it was needed (scratch
/// and `auto`), its score. `anchor` holds the PSNR of the last keyframe trained from scratch:
/// [`Refresh::Auto`] trains from scratch when a resumed refresh falls more than `quality_drop`
/// below it.
fn next_keyframe(
    dataset: &crate::datasets::Dataset,
    previous: Option<&GaussianFrame>,
    t: usize,
    (policy, refresh_steps): (Refresh, u32),
    options: &LearnOptions,
    anchor: &mut Option<f64>,
    (residuals, photos, distance): (&mut ResidualTrainer, &Photos, f64),
) -> Result<TrainedKeyframe, TrainError> {
    let mut keyframe = options.keyframe.clone();
    keyframe.seed = keyframe.seed.wrapping_add(t as u64);
    let background = options.keyframe.background;
    let refresh = |residuals: &mut ResidualTrainer, previous: &GaussianFrame| {
        let k = TrainOptions {
            iterations: refresh_steps,
            ..keyframe.clone()
        };
        residuals.refresh(&filled(previous, k.max_gaussians), photos, &k, distance)
    };
    let spent = match (previous, policy) {
        (None, _) | (_, Refresh::Scratch) => 0,
        (Some(p), Refresh::Resume) => {
            return Ok(TrainedKeyframe {
                frame: refresh(residuals, p)?,
                iterations: refresh_steps,
                psnr: None,
                resumed_from: Some(p.len()),
            });
        }
        (Some(p), Refresh::Auto) => {
            let refreshed = refresh(residuals, p)?;
            let psnr = residuals.score(&refreshed, photos, background)?;
            match *anchor {
                Some(a) if psnr < a - options.quality_drop => refresh_steps,
                _ => {
                    return Ok(TrainedKeyframe {
                        frame: refreshed,
                        iterations: refresh_steps,
                        psnr: Some(psnr),
                        resumed_from: Some(p.len()),
                    });
                }
            }
        }
    };
    let trained = train_keyframe(dataset, &keyframe)?;
    let psnr = residuals.score(&trained, photos, background)?;
    *anchor = Some(psnr);
    Ok(TrainedKeyframe {
        frame: trained,
        iterations: spent + keyframe.iterations,
        psnr: Some(psnr),
        resumed_from: None,
    })
}

/// A keyframe as [`next_keyframe`] trained it.
struct TrainedKeyframe {
    frame: GaussianFrame,
    /// Training steps spent on it (a refresh that fell short included).
    iterations: u32,
    /// Its training-view PSNR, where it was needed.
    psnr: Option<f64>,
    /// When it was resumed from the previous decoded frame: that frame's Gaussian count.
    resumed_from: Option<usize>,
}

/// The keyframe without its Gaussians fainter than `opacity`, the threshold halved until the
/// training views (`score`, PSNR; `scored`: the keyframe's own, where known) lose at most
/// `loss` dB and at least `floor` Gaussians are kept; when no threshold down to [`DEAD`]
/// passes, unpruned, or with `floor` set, without the Gaussians below [`DEAD`] only.
/// A refresh resumed from the previous decoded frame sets `floor` to that frame's count: it was
/// pruned once already, and its faded copies (see [`filled`]) come back only where relocation
/// revived them. Without it, short online refreshes (one step: nothing revived) each lost
/// another `loss` dB to pruning: 12,173 Gaussians became 4,305 in 11 frames on the H200.
/// Here, where relocation happens, the GOP's Gaussians are decided: fewer pixels, and none
/// whose quantised opacity comes out more visible than it was. 3DGS-MCMC's opacity
/// regulariser spreads a trained scene over faint Gaussians (94 % of the fox's 150k below 0.05;
/// all left out, the keyframe fell from 44.1 to 29.7 dB held-out). Measured on the H200 (150k,
/// 10 frames, BENCHMARKS.md session 18): at 0.1 dB (before a scoring fix) nothing was left out
/// of the fox; at 0.5 dB (0.0125 kept 51k) the fox lost 0.12 dB held-out for 2.2× fewer bytes,
/// and the robot (80k kept) gained 0.5 dB for 1.6× fewer.
fn pruned_keyframe(
    (trained, scored): (GaussianFrame, Option<f64>),
    (opacity, loss, floor): (f32, f64, usize),
    mut score: impl FnMut(&GaussianFrame) -> Result<f64, TrainError>,
) -> Result<GaussianFrame, TrainError> {
    let mut threshold = opacity;
    let mut full = scored;
    while threshold >= DEAD {
        let Some(pruned) = faint_left_out(&trained, threshold) else {
            return Ok(trained);
        };
        if pruned.len() >= floor {
            let full = match full {
                Some(psnr) => psnr,
                None => *full.insert(score(&trained)?),
            };
            if score(&pruned)? >= full - loss {
                return Ok(pruned);
            }
        }
        threshold /= 2.0;
    }
    Ok(match floor {
        0 => trained,
        _ => faint_left_out(&trained, DEAD).unwrap_or(trained),
    })
}

/// Whether held-out renders explain their photos no better than the bare `background` does
/// (mean PSNR within 1 dB of it). Without held-out views nothing is known: false.
fn no_better_than_background(scores: &[ViewScore], background: glam::Vec3) -> bool {
    if scores.is_empty() {
        return false;
    }
    let bare: f64 = scores
        .iter()
        .map(|s| {
            let photo: Vec<[f32; 3]> = s
                .photo
                .data
                .chunks_exact(3)
                .map(|p| [p[0], p[1], p[2]].map(|c| c as f32 / 255.0))
                .collect();
            let empty = vec![background.to_array(); photo.len()];
            splatcast_shaders::metrics::psnr(&photo, &empty)
        })
        .sum::<f64>()
        / scores.len() as f64;
    let rendered = scores.iter().map(|s| s.psnr).sum::<f64>() / scores.len() as f64;
    rendered < bare + 1.0
}

/// Mean absolute difference (0–1) between two frames' photos of the same cameras.
fn photo_change(a: &[Loaded], b: &[Loaded]) -> f64 {
    let (mut sum, mut n) = (0.0f64, 0usize);
    for ((_, x), (_, y)) in a.iter().zip(b) {
        for (p, q) in x.iter().zip(y) {
            sum += (0..3).map(|c| (p[c] - q[c]).abs() as f64).sum::<f64>() / 3.0;
            n += 1;
        }
    }
    if n == 0 { 0.0 } else { sum / n as f64 }
}

/// Learns `video` into a stream written to `out`, telling `events` about every frame and GOP.
pub fn learn<W: Write + Send>(
    video: &MultiViewVideo,
    options: &LearnOptions,
    out: W,
    mut events: impl FnMut(LearnEvent),
) -> Result<Learned<W>, LearnError> {
    let budget = options.keyframe.max_gaussians;
    let layout = stream_layout(&options.encode, budget, options.keyframe.sh_degree);
    let settings = layout
        .tracks
        .iter()
        .map(|&(a, _)| track_settings(&options.encode, &layout, a))
        .collect();
    let writer = StreamWriter::new(
        layout.clone(),
        settings,
        options.encode.fragmentation,
        options.encode.refine_passes,
    );
    let mut residuals = ResidualTrainer::new()?;
    if options.live_budget.is_some() {
        residuals.score_on(Some(LIVE_SCORE_VIEWS));
    }
    std::thread::scope(|scope| {
        // Finished GOPs are coded on a thread of their own while the next GOP is learnt (at
        // most one waits: a GOP's pictures are hundreds of MB at 150k Gaussians).
        let (to_coder, coder_in) = mpsc::sync_channel::<Option<ToCoder>>(1);
        let (coded, coded_out) = mpsc::channel::<Coded>();
        let coder = scope.spawn(move || code_gops(coder_in, coded, writer, out));
        let (frames, reader_in) = mpsc::sync_channel(0);
        let (clock, reader_clock) = mpsc::channel();
        let live_fps = options.live_budget.map(|_| options.encode.fps);
        let downscale = options.keyframe.downscale;
        scope.spawn(move || read_frames(video, downscale, live_fps, reader_clock, frames));
        let reader = FrameReader {
            frames: reader_in,
            clock,
        };
        let send = |g: Option<ToCoder>| -> Result<(), LearnError> {
            match to_coder.send(g) {
                Ok(()) => Ok(()),
                // The coder stopped on an error: it says which when joined.
                Err(_) => Err(LearnError::CoderStopped),
            }
        };
        let learnt = learn_frames(
            (video, &reader),
            options,
            &layout,
            &mut residuals,
            &send,
            &mut events,
            &coded_out,
        );
        // A reader still waiting for its next frame's time stops at the closed channels.
        drop(reader);
        let finished = learnt.and_then(|reports| send(None).map(|()| reports));
        // Without its last message the coder stops at the closed channel, index unwritten.
        drop(to_coder);
        let coder_result = coder
            .join()
            .unwrap_or_else(|p| std::panic::resume_unwind(p));
        for coded in coded_out.try_iter() {
            events(coded.event());
        }
        let (reports, (out, bytes)) = match (finished, coder_result) {
            (_, Err(e)) | (Err(e), Ok(_)) => return Err(e),
            (Ok(reports), Ok(Some(done))) => (reports, done),
            (Ok(_), Ok(None)) => return Err(LearnError::CoderStopped),
        };
        Ok(Learned {
            output: out,
            frames: reports,
            bytes,
        })
    })
}

/// The GOP coder's loop: codes each GOP (or, online, each frame) it is sent, writes it to `out`
/// and hands it back; a `None` ends the stream with its fragment index. Without that `None`
/// (learning failed) the index is never written, so the output does not pass for complete.
fn code_gops<W: Write>(
    work: mpsc::Receiver<Option<ToCoder>>,
    coded: mpsc::Sender<Coded>,
    mut writer: StreamWriter,
    mut out: W,
) -> Result<Option<(W, u64)>, LearnError> {
    let mut bytes = 0u64;
    // Online: the GOP being coded frame by frame, and its group number.
    let mut live: Option<(LiveGop, u64)> = None;
    let mut groups = 0u64;
    let mut emit = |out: &mut W, done: Coded| -> Result<(), LearnError> {
        let (init, chunks) = match &done {
            Coded::Gop(w) => (&w.init, &w.chunks),
            Coded::Frames { chunks, .. } => (&chunks.init, &chunks.chunks),
        };
        for part in init.iter().chain(chunks.iter().map(|c| &c.bytes)) {
            out.write_all(part)?;
            bytes += part.len() as u64;
        }
        out.flush()?;
        let _ = coded.send(done);
        Ok(())
    };
    for message in work {
        match message {
            Some(ToCoder::Gop(gop)) => {
                let written = gop.finish(&mut writer)?;
                emit(&mut out, Coded::Gop(written))?;
            }
            Some(ToCoder::Frame { side, pictures }) => {
                if let Some(side) = side {
                    if let Some((gop, group)) = live.take() {
                        let chunks = writer.finish_live(gop)?;
                        emit(&mut out, Coded::Frames { group, chunks })?;
                    }
                    live = Some((writer.start_live(&side, &pictures)?, groups));
                    groups += 1;
                }
                // The learner opens every live GOP with its key frame's side data.
                let (gop, group) = live.as_mut().ok_or(LearnError::CoderStopped)?;
                let chunks = writer.push_live(gop, &pictures)?;
                let group = *group;
                emit(&mut out, Coded::Frames { group, chunks })?;
            }
            None => {
                if let Some((gop, group)) = live.take() {
                    let chunks = writer.finish_live(gop)?;
                    emit(&mut out, Coded::Frames { group, chunks })?;
                }
                let mfra = writer.finish()?;
                out.write_all(&mfra)?;
                out.flush()?;
                return Ok(Some((out, bytes + mfra.len() as u64)));
            }
        }
    }
    Ok(None)
}

/// Each frame's training photos, read on a thread of its own ([`read_frames`]).
struct FrameReader {
    frames: mpsc::Receiver<Result<Vec<Loaded>, DatasetError>>,
    /// Online: the instant the rig's clock starts (the first keyframe is learnt).
    clock: mpsc::Sender<Instant>,
}

/// Reads each frame's training photos of `video` and sends them on `frames`, a rendezvous: frame
/// t + 1 decodes while frame t learns, and no further ahead (a frame's photos are hundreds of
/// MB at 1 MP × 20 views). Online (`live_fps`), frame t ≥ 1 is read no earlier than it arrives,
/// (t − 1) / fps after the instant `clock` gives.
fn read_frames(
    video: &MultiViewVideo,
    downscale: u32,
    live_fps: Option<f64>,
    clock: mpsc::Receiver<Instant>,
    frames: mpsc::SyncSender<Result<Vec<Loaded>, DatasetError>>,
) {
    let mut origin = None;
    for t in 0..video.frames {
        if let Some(fps) = live_fps
            && t > 0
        {
            let start = match origin {
                Some(start) => start,
                None => match clock.recv() {
                    Ok(start) => *origin.insert(start),
                    Err(_) => return,
                },
            };
            let arrival = start + Duration::from_secs_f64((t - 1) as f64 / fps);
            if let Some(wait) = arrival.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
        }
        let views = load_views(&video.frame(t), Split::Train, downscale);
        if frames.send(views).is_err() {
            return;
        }
    }
}

/// Learns every frame of `video`, its photos from `reader`, handing each finished GOP to
/// `code`; returns the reports.
fn learn_frames(
    (video, reader): (&MultiViewVideo, &FrameReader),
    options: &LearnOptions,
    layout: &StreamLayout,
    residuals: &mut ResidualTrainer,
    code: &impl Fn(Option<ToCoder>) -> Result<(), LearnError>,
    mut events: impl FnMut(LearnEvent),
    coded: &mpsc::Receiver<Coded>,
) -> Result<Vec<FrameReport>, LearnError> {
    // Online, the rig's clock starts once the first keyframe exists (a live encoder is warmed up
    // before the show): frame 1 arrives then, frame t at (t − 1) / fps later.
    let mut started = Instant::now();
    let mut reports: Vec<FrameReport> = Vec::new();
    let mut gop: Option<PlannedGop> = None;
    // The previous frame as decoded, and its photos.
    let mut previous: Option<(GaussianFrame, Photos)> = None;
    let mut keyframe_psnr = 0.0;
    // Training-view PSNR of the last keyframe trained from scratch (before the codec).
    let mut anchor: Option<f64> = None;
    // The last residual frame's decoded motion, per Gaussian (none after a keyframe).
    let mut velocity: Option<Vec<glam::Vec3>> = None;
    // Online: seconds per residual step, and a residual frame's seconds outside its steps.
    let mut pace: Option<(f64, f64)> = None;
    // Online, each frame is coded as soon as it is learnt, not once its GOP is complete.
    let live = options.live_budget.is_some();
    for t in 0..video.frames {
        let arrival = options
            .live_budget
            .map(|_| Duration::from_secs_f64(t as f64 / options.encode.fps));
        // Offline, photos the reader has not finished are time spent on this frame; online,
        // waiting for a frame to arrive is not.
        let mut stages = Stages::start();
        let views = reader
            .frames
            .recv()
            .map_err(|_| LearnError::ReaderStopped)??;
        if arrival.is_some() {
            stages = Stages::start();
        }
        let dataset = video.frame(t);
        let cameras: Vec<_> = views.iter().map(|(c, _)| *c).collect();
        let distance = focus(&cameras).1 as f32;

        let mut start = match (&gop, &previous) {
            (None, _) | (_, None) => Some(GopStart::First),
            (Some(g), Some(_)) if g.len() >= options.encode.gop => Some(GopStart::Length),
            (Some(_), Some((_, photos)))
                if photo_change(photos.views(), &views) > options.scene_change =>
            {
                Some(GopStart::SceneChange)
            }
            _ => None,
        };
        stages.lap("photos");
        let photos = residuals.upload(views)?;
        stages.lap("upload");
        let mut learnt = None;
        if let (None, Some(g), Some((reference, previous_photos))) = (start, &mut gop, &previous) {
            let mut residual = options.residual.clone();
            residual.seed = options.residual.seed.wrapping_add(t as u64);
            // Online, the gate passes (two renders and backward passes per view) cost more than
            // a frame period on their own: every Gaussian trains and the sub-step revert alone
            // decides who moved.
            residual.open_all |= options.live_budget.is_some();
            if let (Some(budget), Some((step, overhead))) = (options.live_budget, pace) {
                let left = (budget - overhead).max(0.0);
                residual.iterations = ((left / step) as u32).clamp(1, residual.iterations);
            }
            let steps = g.record_steps(reference.rest_per_gaussian() as u32);
            let predicted = match (&velocity, options.residual.prediction) {
                (Some(v), Prediction::Velocity) => Some(extrapolate(reference, v)),
                _ => None,
            };
            let r = residuals.learn(
                Reference {
                    frame: reference,
                    photos: previous_photos,
                    predicted: predicted.as_ref(),
                },
                &photos,
                &steps,
                distance,
                &residual,
            )?;
            stages.absorb(&r.stages);
            let step = r.stages.get("steps") / residual.iterations.max(1) as f64;
            // Online, a refresh gets the same period as a residual frame: too few steps to
            // relocate (from step 500) or to recover what the residual frames lost, for a
            // keyframe's bytes and planning. On the H200 (fox Run, 480×270, one step a frame)
            // the refreshes it started went on falling: 30.8, 28.4 dB on the training views.
            if options.live_budget.is_none() && r.train_psnr < keyframe_psnr - options.quality_drop
            {
                start = Some(GopStart::Quality);
            } else {
                let decoded = g.push(&r.frame)?;
                if live {
                    let pictures = g.take_latest();
                    code(Some(ToCoder::Frame {
                        side: None,
                        pictures,
                    }))?;
                }
                let moved = moved_fraction(reference, &decoded);
                velocity = Some(
                    decoded
                        .positions
                        .iter()
                        .zip(&reference.positions)
                        .map(|(d, r)| *d - *r)
                        .collect(),
                );
                stages.lap("quantise");
                learnt = Some((decoded, ResidualFrame { moved, ..r }, residual.iterations));
            }
            // Pacing learns from every residual frame, kept or not: a refresh after an
            // unpaced, discarded one trained from scratch (2,000 steps, 8.7–12 s on the H200).
            pace = Some((step, stages.total() - stages.get("steps")));
        }
        let report = match (start, learnt) {
            (None, Some((decoded, r, iterations))) => {
                let report = FrameReport {
                    index: t,
                    keyframe: None,
                    gated: r.gated,
                    moved: r.moved,
                    train_psnr: r.train_psnr,
                    trained_psnr: None,
                    iterations,
                    gaussians: decoded.len(),
                    seconds: stages.total(),
                    stages,
                    lag: 0.0,
                };
                previous = Some((decoded, photos));
                report
            }
            (reason, _) => {
                let reason = reason.unwrap_or(GopStart::Length);
                // Online, the coder ends the open GOP when the next one's key frame comes.
                if let Some(g) = gop.take().filter(|_| !live) {
                    code(Some(ToCoder::Gop(Box::new(g))))?;
                }
                stages.lap("code");
                // Online, a refresh is resumed and gets what a frame period leaves once the
                // residual frame's measured overhead is paid, one step at least (re-planning the
                // decoded frame untrained lost SSIM 0.67 → 0.55 on the fox); a training from
                // scratch never fits.
                let refresh = match (options.live_budget, pace) {
                    (Some(budget), Some((step, overhead))) => (
                        Refresh::Resume,
                        (((budget - overhead).max(0.0) / step) as u32)
                            .clamp(1, options.refresh_iterations.max(1)),
                    ),
                    _ => (options.refresh, options.refresh_iterations),
                };
                let keyframe = next_keyframe(
                    &dataset,
                    previous.as_ref().map(|(f, _)| f),
                    t,
                    refresh,
                    options,
                    &mut anchor,
                    (residuals, &photos, distance as f64),
                )?;
                let (iterations, trained_psnr) = (keyframe.iterations, keyframe.psnr);
                let prune = (
                    options.encode.prune_below(),
                    options.prune_loss,
                    keyframe.resumed_from.unwrap_or(0),
                );
                let trained = pruned_keyframe((keyframe.frame, trained_psnr), prune, |f| {
                    residuals.score(f, &photos, options.keyframe.background)
                })?;
                stages.lap("keyframe");
                velocity = None;
                let radius = robust_bounds(trained.positions.iter().copied()).1;
                let (planned, decoded) = PlannedGop::open(
                    &trained,
                    layout,
                    options.encode.refine_passes,
                    options.margin,
                    options.motion * radius,
                    reason,
                )?;
                let mut planned = planned;
                if live {
                    let side = Some(planned.live_side(options.encode.gop));
                    let pictures = planned.take_latest();
                    code(Some(ToCoder::Frame { side, pictures }))?;
                }
                stages.lap("plan");
                keyframe_psnr = residuals.score(&decoded, &photos, options.keyframe.background)?;
                stages.lap("score");
                gop = Some(planned);
                let report = FrameReport {
                    index: t,
                    keyframe: Some(reason),
                    gated: 1.0,
                    moved: 1.0,
                    train_psnr: keyframe_psnr,
                    trained_psnr,
                    iterations,
                    gaussians: decoded.len(),
                    seconds: stages.total(),
                    stages,
                    lag: 0.0,
                };
                previous = Some((decoded, photos));
                report
            }
        };
        let mut report = report;
        if let Some(at) = arrival {
            if t == 0 {
                let now = Instant::now();
                started = now - Duration::from_secs_f64(1.0 / options.encode.fps);
                // A reader that stopped has sent its error, which the next frame reports.
                let _ = reader.clock.send(now);
            } else {
                report.lag = started.elapsed().saturating_sub(at).as_secs_f64();
            }
        }
        if let Some((decoded, _)) = &previous {
            events(LearnEvent::Frame(&report, decoded));
        }
        for done in coded.try_iter() {
            events(done.event());
        }
        reports.push(report);
    }
    if let Some(g) = gop.take().filter(|_| !live) {
        code(Some(ToCoder::Gop(Box::new(g))))?;
    }
    Ok(reports)
}

#[cfg(test)]
mod tests {
    use super::*;
    use splatcast_shaders::Camera;

    #[test]
    fn a_render_no_better_than_the_background_is_a_collapse() {
        use crate::datasets::RgbImage;
        // A dark photo with one bright pixel in four: a black render scores what black does.
        let image = |data: Vec<u8>| RgbImage {
            width: 2,
            height: 2,
            data,
        };
        let photo = image(vec![0, 0, 0, 0, 0, 0, 0, 0, 0, 200, 200, 200]);
        let score = |psnr| ViewScore {
            name: String::new(),
            psnr,
            ssim: 0.0,
            render: image(vec![0; 12]),
            photo: photo.clone(),
        };
        // Black against this photo: MSE (200/255)² / 4 → 8.13 dB.
        assert!(no_better_than_background(&[score(8.2)], glam::Vec3::ZERO));
        assert!(!no_better_than_background(&[score(30.0)], glam::Vec3::ZERO));
        assert!(!no_better_than_background(&[], glam::Vec3::ZERO));
    }

    #[test]
    fn keyframes_are_pruned_only_as_far_as_the_picture_allows() {
        use splatcast_protocol::gaussian::{logit, sigmoid};
        let opacities = [0.9, 0.03, 0.01, 0.001];
        let mut frame = GaussianFrame::with_capacity(4, 0);
        for (i, o) in opacities.into_iter().enumerate() {
            frame.positions.push(glam::Vec3::splat(i as f32));
            frame.log_scales.push(glam::Vec3::ZERO);
            frame.rotations.push(glam::Quat::IDENTITY);
            frame.opacity_logits.push(logit(o));
            frame.sh_dc.push(glam::Vec3::ZERO);
        }
        // Each Gaussian above `needed` missing costs a dB.
        let picture = |needed: f32| {
            move |f: &GaussianFrame| {
                let kept = f
                    .opacity_logits
                    .iter()
                    .filter(|&&o| sigmoid(o) >= needed)
                    .count();
                let all = opacities.iter().filter(|&&o| o >= needed).count();
                Ok(30.0 - (all - kept) as f64)
            }
        };
        let kept = |needed| {
            let pruned =
                pruned_keyframe((frame.clone(), None), (0.05, 0.1, 0), picture(needed)).unwrap();
            pruned
                .opacity_logits
                .iter()
                .map(|&o| sigmoid(o))
                .collect::<Vec<_>>()
        };
        let close = |a: Vec<f32>, b: &[f32]| {
            a.len() == b.len() && a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-6)
        };
        // Nothing faint matters: 0.05 holds.
        assert!(close(kept(0.5), &[0.9]));
        // The 0.03 one matters: 0.05 is refused, 0.025 leaves out the two below.
        assert!(close(kept(0.02), &[0.9, 0.03]));
        // Even the 0.001 one matters: nothing goes.
        assert!(close(kept(0.0005), &opacities));
        // A keyframe whose score is known is not scored again: one call, for the pruned one.
        let mut calls = 0;
        pruned_keyframe((frame.clone(), Some(30.0)), (0.05, 0.1, 0), |f| {
            calls += 1;
            picture(0.5)(f)
        })
        .unwrap();
        assert_eq!(calls, 1);
        // A refresh resumed from three Gaussians keeps three where the picture allows it…
        let refreshed = |floor| {
            pruned_keyframe((frame.clone(), None), (0.05, 0.1, floor), picture(0.5))
                .unwrap()
                .len()
        };
        assert_eq!(refreshed(3), 3);
        // …and where even the lowest threshold leaves fewer, loses only the dead one.
        assert_eq!(refreshed(4), 3);
    }

    #[test]
    fn photo_change_is_the_mean_absolute_difference() {
        let camera = Camera {
            fx: 1.0,
            fy: 1.0,
            cx: 0.5,
            cy: 0.5,
            width: 1,
            height: 2,
            world_to_camera: glam::DMat4::IDENTITY,
        };
        let a = vec![(camera, vec![[0.0, 0.0, 0.0], [1.0, 1.0, 1.0]])];
        let b = vec![(camera, vec![[0.3, 0.3, 0.3], [1.0, 1.0, 1.0]])];
        assert!((photo_change(&a, &b) - 0.15).abs() < 1e-6);
        assert_eq!(photo_change(&a, &a), 0.0);
    }
}
