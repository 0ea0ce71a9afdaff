//! Learning 3D Gaussians from posed photos on the GPU: every step renders one training view
//! (the shaders crate's forward pass), scores it with 0.8 · L1 + 0.2 · D-SSIM, runs the backward
//! pass and an Adam step. The Gaussian budget is fixed from the start (`max_gaussians`) and kept by
//! relocation, as in 3DGS-MCMC: every 100 steps Gaussians that faded out are moved onto live ones
//! chosen by opacity, and both share the opacity so the picture stays the same. SH degrees switch
//! on one per 1,000 steps; the position learning rate decays 100× over the run.

use std::time::Instant;

use glam::Vec3;
use splatcast_protocol::GaussianFrame;
use splatcast_protocol::gaussian::{logit, sh_rest_count};
use splatcast_shaders::backward::{Backward, BackwardBuffers};
use splatcast_shaders::loss::{Loss, LossBuffers};
use splatcast_shaders::optimizer::{Adam, Exploration, LearningRates, Move};
use splatcast_shaders::synthetic::Rng;
use splatcast_shaders::{
    Camera, Gpu, GpuError, GpuGaussians, RenderBuffers, RenderError, Renderer, metrics,
};

use crate::datasets::{Dataset, DatasetError, RgbImage, Split};
use crate::init::{Start, focus, initial};

/// Why training stopped.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// The dataset could not be read.
    #[error(transparent)]
    Dataset(#[from] DatasetError),
    /// The GPU refused.
    #[error(transparent)]
    Render(#[from] RenderError),
    /// The loss became NaN or infinite.
    #[error("training diverged at step {0} (loss is not finite)")]
    Diverged(u32),
    /// Nothing to train on.
    #[error("{0}")]
    Invalid(String),
}

impl From<splatcast_shaders::CameraError> for TrainError {
    fn from(e: splatcast_shaders::CameraError) -> Self {
        TrainError::Render(e.into())
    }
}

impl From<GpuError> for TrainError {
    fn from(e: GpuError) -> Self {
        TrainError::Render(e.into())
    }
}

/// What to train and how long.
#[derive(Clone, Debug)]
pub struct TrainOptions {
    /// Optimisation steps.
    pub iterations: u32,
    /// Gaussians, fixed for the whole run.
    pub max_gaussians: usize,
    /// Photos are downscaled by this factor (1 = full size).
    pub downscale: u32,
    /// Highest SH degree learnt (0–3).
    pub sh_degree: u8,
    /// Seed for initialisation and view order.
    pub seed: u64,
    /// Background the renders composite over.
    pub background: Vec3,
    /// Start from these Gaussians (a checkpoint) instead of initialising; their count is the
    /// budget.
    pub resume: Option<GaussianFrame>,
    /// Steps between progress events.
    pub report_every: u32,
    /// Steps between checkpoint events (0: none).
    pub checkpoint_every: u32,
    /// Opacity of the initial Gaussians.
    pub init_opacity: f32,
    /// Size of the initial Gaussians, as a fraction of their neighbours' spacing.
    pub init_scale: f32,
    /// Weight of the mean-opacity penalty (3DGS-MCMC: 0.01).
    pub opacity_reg: f32,
    /// Weight of the mean-scale penalty, scales in units of the camera distance (3DGS-MCMC: 0.01).
    pub scale_reg: f32,
    /// Position noise of nearly transparent Gaussians relative to the position learning rate
    /// (3DGS-MCMC: 5e5; 0 turns it off).
    pub noise_lr: f32,
}

impl Default for TrainOptions {
    fn default() -> Self {
        Self {
            iterations: 7000,
            max_gaussians: 300_000,
            downscale: 1,
            sh_degree: 3,
            seed: 1,
            background: Vec3::ZERO,
            resume: None,
            report_every: 100,
            checkpoint_every: 0,
            init_opacity: 0.1,
            init_scale: 1.0,
            opacity_reg: 0.01,
            scale_reg: 0.01,
            noise_lr: 5e5,
        }
    }
}

/// What a run tells its caller while it goes.
pub enum Event<'a> {
    /// Loss and speed, every `report_every` steps.
    Progress(Progress),
    /// The Gaussians after `step` steps, every `checkpoint_every` steps (for checkpoint files).
    Checkpoint(u32, &'a GaussianFrame),
}

/// Progress of a run, reported every few steps.
#[derive(Clone, Copy, Debug)]
pub struct Progress {
    /// Steps done.
    pub step: u32,
    /// Mean loss over the steps since the last report.
    pub loss: f64,
    /// PSNR of the last training view.
    pub psnr: f64,
    /// Steps per second so far.
    pub steps_per_second: f64,
}

/// Held-out evaluation of one test view.
#[derive(Clone, Debug)]
pub struct ViewScore {
    /// The photo's file name.
    pub name: String,
    /// PSNR in dB over the full frame.
    pub psnr: f64,
    /// SSIM (11×11 Gaussian window).
    pub ssim: f64,
    /// The render.
    pub render: RgbImage,
    /// The (undistorted) photo.
    pub photo: RgbImage,
}

fn downscaled(camera: &Camera, photo: &RgbImage, factor: u32) -> (Camera, Vec<[f32; 3]>) {
    let f = factor.max(1);
    let (w, h) = ((photo.width / f).max(1), (photo.height / f).max(1));
    let mut rgb = Vec::with_capacity(w as usize * h as usize);
    for y in 0..h {
        for x in 0..w {
            let mut acc = [0.0f32; 3];
            for dy in 0..f {
                for dx in 0..f {
                    let at = (((y * f + dy) * photo.width + x * f + dx) * 3) as usize;
                    for (a, v) in acc.iter_mut().zip(&photo.data[at..at + 3]) {
                        *a += *v as f32 / 255.0;
                    }
                }
            }
            rgb.push(acc.map(|v| v / (f * f) as f32));
        }
    }
    (crate::views::resized(camera, w, h), rgb)
}

/// A view ready to train on: its camera and linear RGB pixels.
pub type Loaded = (Camera, Vec<[f32; 3]>);

/// The views of `split`, decoded, undistorted and downscaled on all cores, in dataset order; the
/// first photo that cannot be read is the error.
pub fn load_views(
    dataset: &Dataset,
    split: Split,
    downscale: u32,
) -> Result<Vec<Loaded>, DatasetError> {
    load_all(dataset, split, downscale).into_iter().collect()
}

/// The views of `split`, decoded, undistorted and downscaled on all cores, in dataset order.
fn load_all(dataset: &Dataset, split: Split, downscale: u32) -> Vec<Result<Loaded, DatasetError>> {
    let wanted: Vec<_> = dataset.split(split).collect();
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let chunk = wanted.len().div_ceil(threads).max(1);
    std::thread::scope(|scope| {
        let workers: Vec<_> = wanted
            .chunks(chunk)
            .map(|views| {
                scope.spawn(move || {
                    views
                        .iter()
                        .map(|v| {
                            let (camera, photo) = v.load()?;
                            Ok(downscaled(&camera, &photo, downscale))
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().expect("a loader thread panicked"))
            .collect()
    })
}

/// The GPU work of one training step that every trainer shares: render a view, score it
/// against its photo (0.8 · L1 + 0.2 · D-SSIM), backpropagate into the parameter gradients.
/// Buffers follow the view's size and grow when the tile-pair list overflowed.
pub(crate) struct Photometric {
    pub(crate) renderer: Renderer,
    pub(crate) loss: Loss,
    backward: Backward,
    setup: Option<(RenderBuffers, LossBuffers, BackwardBuffers)>,
}

impl Photometric {
    pub(crate) fn new(gpu: &Gpu) -> Result<Self, TrainError> {
        Ok(Self {
            renderer: Renderer::new(gpu),
            loss: Loss::new(gpu),
            backward: Backward::new(gpu)?,
            setup: None,
        })
    }

    /// Readies buffers and the view uniform for rendering `gaussians` from `camera`, with
    /// gradients into `grads`.
    pub(crate) fn prepare(
        &mut self,
        gpu: &Gpu,
        gaussians: &GpuGaussians,
        grads: &wgpu::Buffer,
        camera: &Camera,
        background: Vec3,
    ) -> Result<(), TrainError> {
        let size = (camera.width, camera.height);
        if self.setup.as_ref().is_none_or(|(r, _, _)| r.size() != size) {
            let mut buffers = None;
            self.renderer
                .render(gpu, gaussians, &mut buffers, camera, background)?;
            let r = buffers.expect("made by render");
            let l = self.loss.buffers(gpu, &r)?;
            let b = self.backward.buffers(gpu, &r, gaussians, &l.grad, grads)?;
            self.setup = Some((r, l, b));
        }
        let (r, _, _) = self.setup.as_ref().expect("set up above");
        self.renderer.set_view(gpu, r, camera, background)?;
        Ok(())
    }

    /// Encodes render, loss against `photo` (from [`Loss::photo`]) and backward.
    pub(crate) fn encode(&self, encoder: &mut wgpu::CommandEncoder, photo: &wgpu::Buffer) {
        self.encode_score(encoder, photo);
        let (_, _, b) = self.setup.as_ref().expect("prepare() comes first");
        self.backward.encode(encoder, b);
    }

    /// Encodes render and loss against `photo`, without the backward pass: enough for
    /// [`Photometric::psnr`] and [`Photometric::read_loss`].
    pub(crate) fn encode_score(&self, encoder: &mut wgpu::CommandEncoder, photo: &wgpu::Buffer) {
        let (r, l, _) = self.setup.as_ref().expect("prepare() comes first");
        self.loss.use_photo(encoder, l, photo);
        self.renderer.encode(encoder, r, None);
        self.loss.encode(encoder, l);
    }

    /// Forgets the buffers: the next [`Photometric::prepare`] binds new Gaussians and gradients.
    pub(crate) fn reset(&mut self) {
        self.setup = None;
    }

    /// The loss of the last submitted step.
    pub(crate) fn read_loss(&self, gpu: &Gpu) -> Result<f64, TrainError> {
        let (_, l, _) = self.setup.as_ref().expect("prepare() comes first");
        Ok(self.loss.read_loss(gpu, l)?)
    }

    /// PSNR of the last render against its photo (summed on the GPU).
    pub(crate) fn psnr(&self, gpu: &Gpu) -> Result<f64, TrainError> {
        let (_, l, _) = self.setup.as_ref().expect("prepare() comes first");
        Ok(self.loss.read_psnr(gpu, l)?)
    }

    /// When the last render wanted more tile pairs than the buffers hold, rebuilds them (bigger)
    /// at the next [`Photometric::prepare`]; says whether it did (the render was cut short).
    pub(crate) fn grow_if_overflowed(&mut self, gpu: &Gpu) -> Result<bool, TrainError> {
        if let Some((r, _, _)) = &self.setup
            && self.renderer.pairs_wanted(gpu, r)? > r.capacity()
        {
            self.setup = None;
            return Ok(true);
        }
        Ok(false)
    }
}

/// `frame` filled up to `budget` Gaussians with faded-out copies of its own, which the first
/// relocation moves onto live ones: a learnt keyframe refreshed from a decoded frame whose faint
/// Gaussians were left out resumes with the whole budget, not with fewer at every refresh.
pub(crate) fn filled(frame: &GaussianFrame, budget: usize) -> GaussianFrame {
    if frame.is_empty() || frame.len() >= budget {
        return frame.clone();
    }
    let order: Vec<usize> = (0..budget).map(|i| i % frame.len()).collect();
    let mut out = frame.permuted(&order);
    for o in &mut out.opacity_logits[frame.len()..] {
        *o = logit(FADED);
    }
    out
}

/// Opacity of the copies [`filled`] adds: far below [`DEAD`].
const FADED: f32 = 1e-4;

/// Opacity below which a Gaussian counts as dead: relocation moves it onto a live one.
pub(crate) const DEAD: f32 = 0.005;

/// MCMC-style relocation: Gaussians below `threshold` opacity move onto live ones drawn by
/// opacity; a source drawn k times shares its opacity o with its k copies as 1 − (1 − o)^(1/(k+1)),
/// so together they look as it did.
fn plan_relocation(opacity: &[f32], rng: &mut Rng, threshold: f32) -> Vec<Move> {
    let dead: Vec<usize> = (0..opacity.len())
        .filter(|&i| opacity[i].is_nan() || opacity[i] < threshold)
        .collect();
    let live: Vec<usize> = (0..opacity.len())
        .filter(|&i| opacity[i] >= threshold)
        .collect();
    if dead.is_empty() || live.is_empty() {
        return Vec::new();
    }
    let mut cumulative = Vec::with_capacity(live.len());
    let mut total = 0.0f64;
    for &i in &live {
        total += opacity[i] as f64;
        cumulative.push(total);
    }
    let sources: Vec<usize> = dead
        .iter()
        .map(|_| {
            let r = rng.unit() as f64 * total;
            live[cumulative.partition_point(|&c| c < r).min(live.len() - 1)]
        })
        .collect();
    let mut drawn = std::collections::HashMap::<usize, i32>::new();
    for &s in &sources {
        *drawn.entry(s).or_default() += 1;
    }
    dead.iter()
        .zip(sources)
        .map(|(&d, s)| {
            let copies = drawn[&s] + 1;
            let shared = 1.0 - (1.0 - opacity[s]).powf(1.0 / copies as f32);
            Move {
                dead: d as u32,
                source: s as u32,
                shared_logit: logit(shared.max(1e-6)),
            }
        })
        .collect()
}

/// Trains on the dataset's training views, telling `events` how it goes; returns the Gaussians
/// and the held-out views' scores.
pub fn train(
    dataset: &Dataset,
    options: &TrainOptions,
    mut events: impl FnMut(Event),
) -> Result<(GaussianFrame, Vec<ViewScore>), TrainError> {
    if options.max_gaussians == 0 || options.iterations == 0 {
        return Err(TrainError::Invalid(
            "--max-gaussians and --iterations must be positive".into(),
        ));
    }
    let mut rng = Rng::new(options.seed);
    let views = load_views(dataset, Split::Train, options.downscale)?;
    if views.is_empty() {
        return Err(TrainError::Invalid(
            "the dataset has no training views".into(),
        ));
    }
    let cameras: Vec<Camera> = views.iter().map(|(c, _)| *c).collect();
    let (_, distance) = focus(&cameras);
    let frame = match &options.resume {
        Some(f) if f.sh_degree != options.sh_degree => {
            return Err(TrainError::Invalid(format!(
                "the checkpoint has SH degree {}, training asks for {}",
                f.sh_degree, options.sh_degree
            )));
        }
        Some(f) => f.clone(),
        None => initial(
            &dataset.points,
            &cameras,
            Start {
                count: options.max_gaussians,
                sh_degree: options.sh_degree,
                opacity: options.init_opacity,
                scale: options.init_scale,
            },
            &mut rng,
        ),
    };

    let gpu = Gpu::new()?;
    let mut pass = Photometric::new(&gpu)?;
    let resident = views
        .iter()
        .map(|(camera, photo)| Ok((*camera, pass.loss.photo(&gpu, photo)?)))
        .collect::<Result<Vec<_>, TrainError>>()?;
    let resident: Vec<_> = resident.iter().map(|(c, b)| (*c, b)).collect();
    let gaussians = optimise(
        (&gpu, &mut pass),
        &resident,
        &frame,
        (options, distance),
        &mut rng,
        &mut events,
    )?;
    let trained = gaussians.download(&gpu)?;
    let scores = evaluate(&gpu, &pass.renderer, &gaussians, dataset, options)?;
    Ok((trained, scores))
}

/// The training loop: `options.iterations` steps from `frame` over `views` (cameras and their
/// photos resident on the GPU, from [`Loss::photo`]), `distance` the typical camera distance;
/// returns the Gaussians, still on the GPU. Shared by [`train`] and the learnt encoder's keyframe
/// refreshes, which keep one GPU context and each frame's photos resident between frames.
pub(crate) fn optimise(
    (gpu, pass): (&Gpu, &mut Photometric),
    views: &[(Camera, &wgpu::Buffer)],
    frame: &GaussianFrame,
    (options, distance): (&TrainOptions, f64),
    rng: &mut Rng,
    events: &mut dyn FnMut(Event),
) -> Result<GpuGaussians, TrainError> {
    pass.reset();
    let report_every = options.report_every.max(1);
    let gaussians = GpuGaussians::upload(gpu, frame)?;
    let param_grads = Backward::param_grads(gpu, &gaussians)?;
    let mut adam = Adam::new(gpu, &gaussians, &param_grads)?;
    let base = LearningRates::default();
    let start = Instant::now();
    let (mut loss_sum, mut loss_count) = (0.0f64, 0u32);
    for step in 1..=options.iterations {
        let (camera, photo) = views[rng.below(views.len())];
        let t = step as f32 / options.iterations as f32;
        let rates = LearningRates {
            position: base.position * distance as f32 * 0.01f32.powf(t),
            ..base
        };
        let n = frame.len() as f32;
        let exploration = Exploration {
            opacity_reg: options.opacity_reg / n,
            scale_reg: options.scale_reg / (n * distance as f32),
            noise: options.noise_lr * rates.position / (distance * distance) as f32,
        };
        let degree = ((step / 1000) as u8).min(options.sh_degree);
        let active_rest = 3 * sh_rest_count(degree) as u32;
        pass.prepare(gpu, &gaussians, &param_grads, &camera, options.background)?;
        let mut encoder = gpu.device.create_command_encoder(&Default::default());
        pass.encode(&mut encoder, photo);
        adam.encode(gpu, &mut encoder, &rates, active_rest, &exploration);
        gpu.queue.submit([encoder.finish()]);

        let report = step % report_every == 0 || step == options.iterations;
        let relocation =
            step % 100 == 0 && step >= 500 && (step as f32) < 0.9 * options.iterations as f32;
        if report || relocation {
            let value = pass.read_loss(gpu)?;
            if !value.is_finite() {
                return Err(TrainError::Diverged(step));
            }
            loss_sum += value;
            loss_count += 1;
            if report {
                events(Event::Progress(Progress {
                    step,
                    loss: loss_sum / loss_count.max(1) as f64,
                    psnr: pass.psnr(gpu)?,
                    steps_per_second: step as f64 / start.elapsed().as_secs_f64(),
                }));
                loss_sum = 0.0;
                loss_count = 0;
            }
            pass.grow_if_overflowed(gpu)?;
        }
        if options.checkpoint_every > 0 && step % options.checkpoint_every == 0 {
            let current = gaussians.download(gpu)?;
            events(Event::Checkpoint(step, &current));
        }
        if relocation {
            let moves = plan_relocation(&adam.opacities(gpu)?, rng, DEAD);
            adam.relocate(gpu, &moves);
        }
    }
    Ok(gaussians)
}

/// Renders every held-out view and scores it against its photo.
fn evaluate(
    gpu: &Gpu,
    renderer: &Renderer,
    gaussians: &GpuGaussians,
    dataset: &Dataset,
    options: &TrainOptions,
) -> Result<Vec<ViewScore>, TrainError> {
    let mut buffers = None;
    let mut scores = Vec::new();
    let loaded = load_all(dataset, Split::Test, options.downscale);
    for (v, loaded) in dataset.split(Split::Test).zip(loaded) {
        let (camera, rgb) = loaded?;
        let image = renderer.render(gpu, gaussians, &mut buffers, &camera, options.background)?;
        let got: Vec<[f32; 3]> = image.rgba.iter().map(|p| [p[0], p[1], p[2]]).collect();
        let to_rgb8 = |px: &[[f32; 3]]| RgbImage {
            width: camera.width,
            height: camera.height,
            data: px
                .iter()
                .flat_map(|p| p.map(|c| (c.clamp(0.0, 1.0) * 255.0).round() as u8))
                .collect(),
        };
        scores.push(ViewScore {
            name: v
                .path
                .file_name()
                .map_or_else(String::new, |n| n.to_string_lossy().into_owned()),
            psnr: metrics::psnr(&got, &rgb),
            ssim: metrics::ssim(&got, &rgb, camera.width as usize, camera.height as usize),
            render: to_rgb8(&got),
            photo: to_rgb8(&rgb),
        });
    }
    Ok(scores)
}

#[cfg(test)]
mod tests {
    use super::*;
    use splatcast_protocol::gaussian::sigmoid;

    #[test]
    fn a_resumed_checkpoint_is_filled_up_to_the_budget_with_faded_copies() {
        let mut frame = GaussianFrame::with_capacity(2, 0);
        for (x, o) in [(1.0, 2.0), (2.0, -1.0)] {
            frame.positions.push(Vec3::splat(x));
            frame.log_scales.push(Vec3::ZERO);
            frame.rotations.push(glam::Quat::IDENTITY);
            frame.opacity_logits.push(o);
            frame.sh_dc.push(Vec3::ZERO);
        }
        let full = filled(&frame, 5);
        assert_eq!(full.len(), 5);
        assert_eq!(&full.opacity_logits[..2], &frame.opacity_logits[..]);
        assert!(full.opacity_logits[2..].iter().all(|&o| o == logit(FADED)));
        assert_eq!(full.positions[4], frame.positions[0]);
        // A budget it already meets leaves it alone.
        assert_eq!(filled(&frame, 2).opacity_logits, frame.opacity_logits);
    }

    #[test]
    fn relocation_moves_the_dead_and_keeps_each_sources_total_opacity() {
        let mut rng = Rng::new(9);
        let opacity = [0.001, 0.9, 0.002, 0.3, f32::NAN, 0.0001];
        let moves = plan_relocation(&opacity, &mut rng, 0.005);
        let dead: Vec<u32> = moves.iter().map(|m| m.dead).collect();
        assert_eq!(dead, [0, 2, 4, 5]);
        for m in &moves {
            assert!([1, 3].contains(&m.source));
            let copies = moves.iter().filter(|n| n.source == m.source).count() as i32 + 1;
            // k + 1 layers of the shared opacity composite to the source's.
            let together = 1.0 - (1.0 - sigmoid(m.shared_logit)).powi(copies);
            assert!((together - opacity[m.source as usize]).abs() < 1e-4);
        }
        assert!(plan_relocation(&[0.5, 0.6], &mut rng, 0.005).is_empty());
    }
}
