//! Residual frames, learnt as QUEEN learns them: frame t starts from frame t−1 as the player
//! decodes it (the reference), and only a residual is trained — with the codec's quantisation
//! in the loop (straight-through on the GOP's steps), an L1 rate term on the residual, and
//! per-Gaussian gates that keep static Gaussians bit-identical to the reference so their plane
//! pixels repeat and AV1 codes them as skipped blocks.
//!
//! Gates open where the new frame's photos pull on a Gaussian's position or colour harder than
//! the previous frame's photos pulled on the same reference (QUEEN's gradient-difference
//! initialisation): a converged reference feels little pull from its own photos, so the
//! difference is what moved.

use glam::Vec3;
use splatcast_protocol::GaussianFrame;
use splatcast_shaders::backward::Backward;
use splatcast_shaders::optimizer::{Adam, Exploration, LearningRates};
use splatcast_shaders::residual::Residual;
use splatcast_shaders::synthetic::Rng;
use splatcast_shaders::{Gpu, GpuGaussians};

use crate::stages::Stages;
use crate::train::{Loaded, Photometric, TrainError, TrainOptions, optimise};

/// How residual frames are learnt.
#[derive(Clone, Debug)]
pub struct ResidualOptions {
    /// Optimisation steps per frame.
    pub iterations: u32,
    /// Weight of the L1 rate term (per Gaussian, like the trainer's regularisers).
    pub rate: f32,
    /// A gate opens when the new photos' pull on a Gaussian's position or colour exceeds the
    /// old photos' pull by this fraction.
    pub gate_threshold: f32,
    /// A gate also opens when the photos under a Gaussian changed by more than this (mean
    /// absolute RGB difference, 0–1) in any training view.
    pub change_threshold: f32,
    /// Train every Gaussian instead of only those whose gate opened (the sub-step revert after
    /// training then decides who moved).
    pub open_all: bool,
    /// Where training starts.
    pub prediction: Prediction,
    /// Fraction of the steps trained on the photos at half size, before the full-size ones:
    /// position gradients that reach twice as far (a Gaussian that moved more than its own
    /// footprint still overlaps where it went). A quarter of the pixels, but on the H200 at
    /// 150k Gaussians not cheaper steps (BENCHMARKS.md, session 14).
    pub coarse: f32,
    /// Position learning rate against the keyframe trainer's starting one, at a frame's first
    /// step (it decays 10× over the frame's steps). Motion between frames is larger than a
    /// trained keyframe's late corrections: on the fox's Run (H200, 150k budget, 300 steps) 3×
    /// gave +0.85 dB held-out (frame 1: 41.0 against 38.5 dB on the training views), 10× lost
    /// 0.4 dB and 40 % more bytes (BENCHMARKS.md, session 19).
    pub position_rate: f32,
    /// Opacity and colour learning rates against the keyframe trainer's. Below 1, a residual
    /// frame must follow motion by moving Gaussians rather than repainting the training views.
    pub appearance_rate: f32,
    /// Background the renders composite over.
    pub background: Vec3,
    /// Seed for the view order.
    pub seed: u64,
}

impl Default for ResidualOptions {
    fn default() -> Self {
        Self {
            iterations: 300,
            rate: 0.01,
            gate_threshold: 0.5,
            change_threshold: 0.03,
            open_all: false,
            prediction: Prediction::default(),
            coarse: 0.5,
            position_rate: 3.0,
            appearance_rate: 1.0,
            background: Vec3::ZERO,
            seed: 1,
        }
    }
}

/// Where a residual frame's training starts. Position gradients only reach as far as a
/// Gaussian's footprint, so fast motion that starts from standing still is lost; motion that
/// goes on as it went is found from a predicted start.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Prediction {
    /// At the reference: every Gaussian starts where the previous decoded frame has it.
    Still,
    /// At the reference moved on by its last decoded motion (constant velocity), when the
    /// previous frame was itself a residual frame of the GOP.
    #[default]
    Velocity,
}

/// The reference moved on by `velocity` (one displacement per Gaussian): where a Gaussian
/// that kept moving as it did would be now.
pub fn extrapolate(reference: &GaussianFrame, velocity: &[Vec3]) -> GaussianFrame {
    let mut predicted = reference.clone();
    for (p, v) in predicted.positions.iter_mut().zip(velocity) {
        *p += *v;
    }
    predicted
}

/// One learnt residual frame.
#[derive(Clone, Debug)]
pub struct ResidualFrame {
    /// The frame (reference + quantised residual; frozen Gaussians bit-equal to the reference).
    pub frame: GaussianFrame,
    /// Fraction of Gaussians whose gate opened.
    pub gated: f64,
    /// Fraction of Gaussians that differ from the reference in any value (before the codec;
    /// see [`moved_fraction`] for after).
    pub moved: f64,
    /// Mean PSNR over the training views at the end.
    pub train_psnr: f64,
    /// Seconds spent, by stage: `upload` (the reference), `gates` (GPU passes), `changed`
    /// (photo differences under each Gaussian), `steps`, `revert`, `score`.
    pub stages: Stages,
}

/// A frame's training photos, resident on the GPU: uploaded once when the frame arrives, used
/// while it is the new frame and again while it is the previous one. The coarse set holds the
/// same views at half size, made the first time a frame trains on them (online, a residual
/// frame's one step never does).
pub struct Photos {
    views: Vec<Loaded>,
    buffers: Vec<wgpu::Buffer>,
    coarse: std::cell::OnceCell<(Vec<Loaded>, Vec<wgpu::Buffer>)>,
}

impl Photos {
    /// The cameras and photos, as loaded.
    pub fn views(&self) -> &[Loaded] {
        &self.views
    }
}

/// What a residual frame is learnt against.
pub struct Reference<'a> {
    /// The previous frame as the player decodes it: the residual's origin.
    pub frame: &'a GaussianFrame,
    /// The photos that frame was learnt from (same cameras as the new ones).
    pub photos: &'a Photos,
    /// Where the frame is expected to be now (same Gaussians): training starts there, and
    /// Gaussians it moves by a quantisation step or more train whatever their gates say.
    pub predicted: Option<&'a GaussianFrame>,
}

/// A GPU context reused for every residual frame of a sequence (pipelines compile once).
pub struct ResidualTrainer {
    gpu: Gpu,
    pass: Photometric,
    /// The same work at half size (its own buffers, so switching sizes allocates nothing).
    coarse: Photometric,
    /// Scores use at most this many views, evenly spaced (None: every view).
    score_views: Option<usize>,
}

impl ResidualTrainer {
    /// Opens the GPU.
    pub fn new() -> Result<Self, TrainError> {
        let gpu = Gpu::new()?;
        let pass = Photometric::new(&gpu)?;
        let coarse = Photometric::new(&gpu)?;
        Ok(Self {
            gpu,
            pass,
            coarse,
            score_views: None,
        })
    }

    /// Scores frames on at most `views` training views, the same evenly spaced ones every time
    /// (None: all). Online, scoring every view costs more than a frame period; a fixed subset
    /// keeps a residual frame's score comparable with its keyframe's.
    pub fn score_on(&mut self, views: Option<usize>) {
        self.score_views = views;
    }

    /// Uploads a frame's photos once for every use that follows.
    pub fn upload(&self, views: Vec<Loaded>) -> Result<Photos, TrainError> {
        Ok(Photos {
            buffers: self.resident(&views)?,
            views,
            coarse: std::cell::OnceCell::new(),
        })
    }

    /// `set`'s photos in GPU buffers.
    fn resident(&self, set: &[Loaded]) -> Result<Vec<wgpu::Buffer>, TrainError> {
        set.iter()
            .map(|(_, rgb)| Ok(self.pass.loss.photo(&self.gpu, rgb)?))
            .collect()
    }

    /// `photos` at half size, made and uploaded on first use.
    fn half_size<'p>(
        &self,
        photos: &'p Photos,
    ) -> Result<&'p (Vec<Loaded>, Vec<wgpu::Buffer>), TrainError> {
        if let Some(coarse) = photos.coarse.get() {
            return Ok(coarse);
        }
        let views: Vec<Loaded> = photos.views.iter().map(|(c, rgb)| halved(c, rgb)).collect();
        let buffers = self.resident(&views)?;
        Ok(photos.coarse.get_or_init(|| (views, buffers)))
    }

    /// Learns the frame seen by `new` as a residual on `reference` (see [`Reference`]); `steps`
    /// are the quantisation steps per record slot (see
    /// [`splatcast_shaders::residual::Residual::new`]); `distance` is the typical camera
    /// distance (it scales the position learning rate).
    pub fn learn(
        &mut self,
        reference: Reference<'_>,
        new: &Photos,
        steps: &[f32],
        distance: f32,
        options: &ResidualOptions,
    ) -> Result<ResidualFrame, TrainError> {
        let Reference {
            frame: reference,
            photos: previous,
            predicted,
        } = reference;
        let (views, new_photos) = (&new.views[..], &new.buffers);
        let (previous, old_photos) = (&previous.views[..], &previous.buffers);
        if views.is_empty() {
            return Err(TrainError::Invalid("a residual frame needs views".into()));
        }
        let mut stages = Stages::start();
        let gpu = &self.gpu;
        let gaussians = GpuGaussians::upload(gpu, reference)?;
        let grads = Backward::param_grads(gpu, &gaussians)?;
        let n = reference.len() as f32;
        let rates: Vec<f32> = (0..GpuGaussians::stride(gaussians.sh_rest))
            .map(|slot| {
                let per = options.rate / n;
                if slot < 3 { per / distance } else { per }
            })
            .collect();
        let residual = Residual::new(gpu, &gaussians, &grads, steps, &rates)?;
        // Buffers bound to another frame's Gaussians are stale.
        self.pass.reset();
        self.coarse.reset();
        stages.lap("upload");

        // Gates: how much harder the new photos pull than the old ones.
        let pass = &mut self.pass;
        let mut pull = |set: &[Loaded], resident: &[wgpu::Buffer]| -> Result<_, TrainError> {
            for ((camera, _), photo) in set.iter().zip(resident) {
                pass.prepare(gpu, &gaussians, &grads, camera, options.background)?;
                let mut encoder = gpu.device.create_command_encoder(&Default::default());
                pass.encode(&mut encoder, photo);
                residual.encode_sensitivity(&mut encoder);
                gpu.queue.submit([encoder.finish()]);
            }
            Ok(residual.take_sensitivity(gpu)?)
        };
        let predicted = predicted.filter(|p| p.len() == reference.len());
        let mut open: Vec<bool> = if options.open_all {
            vec![true; reference.len()]
        } else {
            let new_pull = pull(views, new_photos)?;
            let old_pull = if previous.is_empty() {
                vec![[0.0; 2]; new_pull.len()]
            } else {
                pull(previous, old_photos)?
            };
            let pulled = open_gates(&old_pull, &new_pull, options.gate_threshold);
            stages.lap("gates");
            let changed = changed_under(reference, previous, views, options.change_threshold);
            stages.lap("changed");
            pulled.iter().zip(&changed).map(|(a, b)| *a || *b).collect()
        };
        if let Some(predicted) = predicted {
            let step = Vec3::new(steps[0], steps[1], steps[2]);
            let pairs = predicted.positions.iter().zip(&reference.positions);
            for (gate, (p, r)) in open.iter_mut().zip(pairs) {
                let d = (*p - *r).abs();
                *gate |= (d.cmpge(step) & d.cmpgt(Vec3::ZERO)).any();
            }
            residual.start_at(gpu, &gaussians, &GpuGaussians::upload(gpu, predicted)?);
        }
        residual.set_gates(gpu, &open);
        let gated = open.iter().filter(|&&g| g).count() as f64 / open.len().max(1) as f64;

        let mut adam = Adam::new(gpu, residual.latent(), &grads)?;
        let base = LearningRates::default();
        let active_rest = 3 * gaussians.sh_rest;
        let mut rng = Rng::new(options.seed);
        let coarse_steps = (options.coarse.clamp(0.0, 1.0) * options.iterations as f32) as u32;
        let coarse = match coarse_steps {
            0 => None,
            _ => Some(self.half_size(new)?),
        };
        for step in 1..=options.iterations {
            // The keyframe's starting position rate (motion between frames can be large),
            // decaying 10x over the frame's steps.
            let t = step as f32 / options.iterations as f32;
            let appearance = options.appearance_rate;
            let rates = LearningRates {
                position: base.position * distance * options.position_rate * 0.1f32.powf(t),
                opacity: base.opacity * appearance,
                dc: base.dc * appearance,
                rest: base.rest * appearance,
                ..base
            };
            let k = rng.below(views.len());
            let (pass, set, photos) =
                if let Some((set, photos)) = coarse.filter(|_| step <= coarse_steps) {
                    (&mut self.coarse, set, photos)
                } else {
                    (&mut self.pass, &new.views, &new.buffers)
                };
            pass.prepare(gpu, &gaussians, &grads, &set[k].0, options.background)?;
            let mut encoder = gpu.device.create_command_encoder(&Default::default());
            pass.encode(&mut encoder, &photos[k]);
            residual.encode_gate_gradients(&mut encoder);
            adam.encode(
                gpu,
                &mut encoder,
                &rates,
                active_rest,
                &Exploration::default(),
            );
            residual.encode_compose(&mut encoder);
            gpu.queue.submit([encoder.finish()]);
            if step % 100 == 0 || step == options.iterations || step == coarse_steps {
                if !pass.read_loss(gpu)?.is_finite() {
                    return Err(TrainError::Diverged(step));
                }
                pass.grow_if_overflowed(gpu)?;
            }
        }
        let trained = gaussians.download(gpu)?;
        stages.lap("steps");
        let frame = revert_below_a_step(reference, &trained, steps);
        stages.lap("revert");
        let train_psnr =
            self.mean_psnr(&gaussians, &grads, views, new_photos, options.background)?;
        let moved = moved_fraction(reference, &frame);
        stages.lap("score");
        Ok(ResidualFrame {
            frame,
            gated,
            moved,
            train_psnr,
            stages,
        })
    }

    /// Mean PSNR of `gaussians` over `views` (or the subset [`ResidualTrainer::score_on`] set).
    fn mean_psnr(
        &mut self,
        gaussians: &GpuGaussians,
        grads: &wgpu::Buffer,
        views: &[Loaded],
        photos: &[wgpu::Buffer],
        background: Vec3,
    ) -> Result<f64, TrainError> {
        let n = views.len().min(photos.len());
        if n == 0 {
            return Err(TrainError::Invalid("no views to score a frame on".into()));
        }
        let k = self.score_views.map_or(n, |k| k.clamp(1, n));
        let mut sum = 0.0;
        for i in (0..k).map(|i| i * n / k) {
            // Buffers sized for another view can cut this one's tile lists short: then it is
            // scored again in buffers grown for it.
            sum += loop {
                self.pass
                    .prepare(&self.gpu, gaussians, grads, &views[i].0, background)?;
                let mut encoder = self.gpu.device.create_command_encoder(&Default::default());
                self.pass.encode_score(&mut encoder, &photos[i]);
                self.gpu.queue.submit([encoder.finish()]);
                let psnr = self.pass.psnr(&self.gpu)?;
                if !self.pass.grow_if_overflowed(&self.gpu)? {
                    break psnr;
                }
            };
        }
        Ok(sum / k.max(1) as f64)
    }

    /// A keyframe refreshed from `frame`: `options.iterations` training steps on `photos`, the
    /// frame's own, already resident, in this trainer's GPU context; `distance` is the typical
    /// camera distance. A fresh [`crate::train::train`] would read every photo again and build a
    /// GPU context and its kernels: 0.7–0.9 s of each online refresh on the H200 (20k
    /// Gaussians, 20 views at 480×270), against a frame period of 33 ms.
    pub fn refresh(
        &mut self,
        frame: &GaussianFrame,
        photos: &Photos,
        options: &TrainOptions,
        distance: f64,
    ) -> Result<GaussianFrame, TrainError> {
        let views: Vec<_> = photos
            .views
            .iter()
            .zip(&photos.buffers)
            .map(|((camera, _), photo)| (*camera, photo))
            .collect();
        let mut rng = Rng::new(options.seed);
        let gaussians = optimise(
            (&self.gpu, &mut self.pass),
            &views,
            frame,
            (options, distance),
            &mut rng,
            &mut |_| {},
        )?;
        self.pass.reset();
        Ok(gaussians.download(&self.gpu)?)
    }

    /// Mean PSNR of `frame` over `views` (how well a frame explains its photos).
    pub fn score(
        &mut self,
        frame: &GaussianFrame,
        photos: &Photos,
        background: Vec3,
    ) -> Result<f64, TrainError> {
        let gaussians = GpuGaussians::upload(&self.gpu, frame)?;
        let grads = Backward::param_grads(&self.gpu, &gaussians)?;
        self.pass.reset();
        self.mean_psnr(
            &gaussians,
            &grads,
            &photos.views,
            &photos.buffers,
            background,
        )
    }
}

/// A view at half size: each output pixel the mean of its 2×2 block; an odd last row or column
/// is cropped off (the camera too, so every pixel still sees what it saw).
fn halved(camera: &splatcast_shaders::Camera, rgb: &[[f32; 3]]) -> Loaded {
    let (w, h) = (camera.width as usize, camera.height as usize);
    if rgb.len() != w * h || w < 2 || h < 2 {
        return (*camera, rgb.to_vec());
    }
    let (hw, hh) = (w / 2, h / 2);
    let at = |x: usize, y: usize| rgb[y * w + x];
    let mut out = Vec::with_capacity(hw * hh);
    for y in 0..hh {
        for x in 0..hw {
            let quad = [
                at(2 * x, 2 * y),
                at(2 * x + 1, 2 * y),
                at(2 * x, 2 * y + 1),
                at(2 * x + 1, 2 * y + 1),
            ];
            out.push(std::array::from_fn(|c| {
                quad.iter().map(|p| p[c]).sum::<f32>() / 4.0
            }));
        }
    }
    let cropped = splatcast_shaders::Camera {
        width: 2 * hw as u32,
        height: 2 * hh as u32,
        ..*camera
    };
    (cropped.resized(hw as u32, hh as u32), out)
}

/// Gates from the old and new pulls (position, colour per Gaussian): open where the new pull
/// exceeds the old by `threshold` times the Gaussian's own old pull (floored at a tenth of the
/// mean, so noise on Gaussians nobody pulled does not count), for either kind.
fn open_gates(old: &[[f32; 2]], new: &[[f32; 2]], threshold: f32) -> Vec<bool> {
    let n = old.len().max(1) as f32;
    let mean = |c: usize| old.iter().map(|p| p[c]).sum::<f32>() / n;
    let floor = [mean(0), mean(1)].map(|m| (0.1 * m).max(f32::MIN_POSITIVE));
    old.iter()
        .zip(new)
        .map(|(o, w)| (0..2).any(|c| w[c] - o[c] > threshold * o[c].max(floor[c])))
        .collect()
}

/// Gaussians under which the photos changed: each visible Gaussian's centre and four points
/// at its projected radius (up to 8 pixels) are looked up in every view's old and new photo;
/// a mean absolute RGB change above `threshold` at any of them opens its gate. Occlusion is
/// ignored (a Gaussian behind a change opens too; the rate term keeps it still if it need not
/// move).
fn changed_under(
    frame: &GaussianFrame,
    old: &[Loaded],
    new: &[Loaded],
    threshold: f32,
) -> Vec<bool> {
    let mut open = vec![false; frame.len()];
    if old.len() != new.len() {
        return vec![true; frame.len()];
    }
    for ((camera, before), (_, after)) in old.iter().zip(new) {
        let (w, h) = (camera.width as i64, camera.height as i64);
        if before.len() != after.len() || before.len() as i64 != w * h {
            continue;
        }
        let change = |x: f64, y: f64| -> f32 {
            let (x, y) = (x.round() as i64, y.round() as i64);
            if x < 0 || y < 0 || x >= w || y >= h {
                return 0.0;
            }
            let at = (y * w + x) as usize;
            (0..3)
                .map(|c| (after[at][c] - before[at][c]).abs())
                .sum::<f32>()
                / 3.0
        };
        for (g, gate) in open.iter_mut().enumerate() {
            if *gate || splatcast_protocol::gaussian::sigmoid(frame.opacity_logits[g]) < 0.01 {
                continue;
            }
            let p = camera
                .world_to_camera
                .transform_point3(frame.positions[g].as_dvec3());
            if p.z <= 0.01 {
                continue;
            }
            let (u, v) = (
                camera.fx * p.x / p.z + camera.cx,
                camera.fy * p.y / p.z + camera.cy,
            );
            let sigma = frame.log_scales[g].max_element().exp() as f64;
            let r = (3.0 * sigma * camera.fx / p.z).clamp(0.0, 8.0);
            *gate = [(0.0, 0.0), (r, 0.0), (-r, 0.0), (0.0, r), (0.0, -r)]
                .iter()
                .any(|(dx, dy)| change(u + dx, v + dy) > threshold);
        }
    }
    open
}

/// `frame` with every Gaussian that moved by less than half a code in every plane value put back
/// to the reference exactly (so its pixels repeat): half a quantisation step for the quantised
/// record slots, half a 10-bit code of opacity (in sigmoid) and of the unit quaternion.
fn revert_below_a_step(
    reference: &GaussianFrame,
    frame: &GaussianFrame,
    steps: &[f32],
) -> GaussianFrame {
    let (a, b) = (GpuGaussians::pack(reference), GpuGaussians::pack(frame));
    let stride = steps.len();
    if a.len() != b.len() || stride == 0 || a.len() % stride != 0 {
        return frame.clone();
    }
    let sigmoid = splatcast_protocol::gaussian::sigmoid;
    let code = 1.0 / 1023.0;
    let mut out = Vec::with_capacity(b.len());
    for (r, f) in a.chunks_exact(stride).zip(b.chunks_exact(stride)) {
        let significant = (0..stride).any(|slot| {
            let d = (f[slot] - r[slot]).abs();
            match slot {
                3 => (sigmoid(f[slot]) - sigmoid(r[slot])).abs() >= 0.5 * code,
                7..=10 => d >= code,
                _ if steps[slot] > 0.0 => d >= 0.5 * steps[slot],
                _ => d > 0.0,
            }
        });
        out.extend_from_slice(if significant { f } else { r });
    }
    GpuGaussians::unpack(&out, reference.rest_per_gaussian() as u32)
}

/// Fraction of Gaussians with any value not bit-equal between `a` and `b`.
pub fn moved_fraction(a: &GaussianFrame, b: &GaussianFrame) -> f64 {
    let records = |f: &GaussianFrame| GpuGaussians::pack(f);
    let (ra, rb) = (records(a), records(b));
    let stride = ra.len() / a.len().max(1);
    if stride == 0 || ra.len() != rb.len() {
        return 1.0;
    }
    let moved = ra
        .chunks_exact(stride)
        .zip(rb.chunks_exact(stride))
        .filter(|(x, y)| x.iter().zip(*y).any(|(p, q)| p.to_bits() != q.to_bits()))
        .count();
    moved as f64 / a.len() as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A camera two units in front of the origin, looking at it.
    fn facing_the_origin(width: u32, height: u32) -> splatcast_shaders::Camera {
        splatcast_shaders::Camera::look_at(
            glam::DVec3::new(0.0, 0.0, -2.0),
            glam::DVec3::ZERO,
            glam::DVec3::NEG_Y,
            60.0,
            width,
            height,
        )
    }

    #[test]
    fn halving_averages_two_by_two_blocks_and_resizes_the_camera() {
        let camera = facing_the_origin(5, 4);
        let rgb: Vec<[f32; 3]> = (0..20).map(|i| [i as f32, 0.0, 1.0]).collect();
        let (half, out) = halved(&camera, &rgb);
        assert_eq!((half.width, half.height), (2, 2));
        // Pixel (1, 1) averages (2..4, 2..4): indices 12, 13, 17, 18; the fifth column drops.
        assert_eq!(out.len(), 4);
        assert_eq!(out[3], [(12 + 13 + 17 + 18) as f32 / 4.0, 0.0, 1.0]);
        assert_eq!(out[0][0], (1 + 5 + 6) as f32 / 4.0);
        // Cropped to 4 × 4, then halved: the focal length halves, the principal point follows.
        assert_eq!((half.fx, half.fy), (camera.fx / 2.0, camera.fy / 2.0));
        assert_eq!(half.cx, (camera.cx + 0.5) / 2.0 - 0.5);
        // A photo too small to halve stays as it is.
        let tiny = splatcast_shaders::Camera { width: 1, ..camera };
        assert_eq!(halved(&tiny, &rgb[..4]).1.len(), 4);
    }

    #[test]
    fn extrapolation_moves_positions_on_and_nothing_else() {
        let mut frame = GaussianFrame::with_capacity(2, 0);
        for x in [0.0f32, 1.0] {
            frame.positions.push(Vec3::new(x, 0.0, 0.0));
            frame.rotations.push(glam::Quat::IDENTITY);
            frame.log_scales.push(Vec3::splat(-2.0));
            frame.opacity_logits.push(0.0);
            frame.sh_dc.push(Vec3::ONE);
        }
        let moved = extrapolate(&frame, &[Vec3::ZERO, Vec3::new(0.0, 0.5, 0.0)]);
        assert_eq!(moved.positions, vec![Vec3::ZERO, Vec3::new(1.0, 0.5, 0.0)]);
        assert_eq!(moved.log_scales, frame.log_scales);
        assert_eq!(moved.sh_dc, frame.sh_dc);
    }

    #[test]
    fn each_view_is_scored_whole_whatever_the_views_before_it_needed() {
        // 3,000 wide Gaussians: from afar each touches a tile or two, from close every tile,
        // many times the tile pairs the first view's buffers were sized for.
        let mut rng = splatcast_shaders::synthetic::Rng::new(3);
        let mut frame = GaussianFrame::with_capacity(3000, 0);
        for _ in 0..3000 {
            let mut unit = || rng.unit() - 0.5;
            frame.positions.push(Vec3::new(unit(), unit(), unit()));
            frame.rotations.push(glam::Quat::IDENTITY);
            frame.log_scales.push(Vec3::splat(-1.0));
            frame.opacity_logits.push(-3.0);
            frame.sh_dc.push(Vec3::new(unit(), unit(), unit()));
        }
        let at = |z: f64| {
            splatcast_shaders::Camera::look_at(
                glam::DVec3::new(0.0, 0.0, z),
                glam::DVec3::ZERO,
                glam::DVec3::NEG_Y,
                60.0,
                128,
                128,
            )
        };
        // Each view's photo is its own render: whole, it scores far above a cut-short one.
        let gpu = Gpu::new().unwrap();
        let renderer = splatcast_shaders::Renderer::new(&gpu);
        let photo = |z| -> Loaded {
            let image =
                splatcast_shaders::render_frame(&gpu, &renderer, &frame, &at(z), glam::DVec3::ZERO)
                    .unwrap();
            (
                at(z),
                image.rgba.iter().map(|p| [p[0], p[1], p[2]]).collect(),
            )
        };
        let mut trainer = ResidualTrainer::new().unwrap();
        let mut score = |zs: &[f64]| {
            let photos = trainer
                .upload(zs.iter().map(|&z| photo(z)).collect())
                .unwrap();
            trainer.score(&frame, &photos, Vec3::ZERO).unwrap()
        };
        let (far, near) = (score(&[-40.0]), score(&[-1.5]));
        let both = score(&[-40.0, -1.5]);
        assert!(
            (both - (far + near) / 2.0).abs() < 1e-3,
            "{both} against {far} and {near}"
        );
    }

    #[test]
    fn gates_open_where_the_photos_changed_under_a_gaussian() {
        let camera = facing_the_origin(16, 16);
        let mut frame = GaussianFrame::with_capacity(3, 0);
        for (x, opacity) in [(-0.5f32, 0.9f32), (0.5, 0.9), (0.5, 0.001)] {
            frame.positions.push(Vec3::new(x, 0.0, 0.0));
            frame.rotations.push(glam::Quat::IDENTITY);
            frame.log_scales.push(Vec3::splat(-4.0));
            frame
                .opacity_logits
                .push(splatcast_protocol::gaussian::logit(opacity));
            frame.sh_dc.push(Vec3::ZERO);
        }
        let before = vec![[0.2f32; 3]; 256];
        let mut after = before.clone();
        // The right half of the image changes.
        for y in 0..16 {
            for x in 8..16 {
                after[y * 16 + x] = [0.6; 3];
            }
        }
        let open = changed_under(
            &frame,
            &[(camera, before.clone())],
            &[(camera, after)],
            0.03,
        );
        // Camera looks down +z with y down: world +x lands on the image's right... or left.
        let right = camera.world_to_camera.transform_point3(glam::DVec3::X).x > 0.0;
        assert_eq!(open, [!right, right, false], "transparent ones stay frozen");
        assert_eq!(
            changed_under(
                &frame,
                &[(camera, before.clone())],
                &[(camera, before)],
                0.03
            ),
            [false; 3]
        );
    }

    #[test]
    fn changes_below_half_a_code_are_put_back() {
        let mut reference = GaussianFrame::with_capacity(3, 0);
        for _ in 0..3 {
            reference.positions.push(Vec3::ZERO);
            reference.rotations.push(glam::Quat::IDENTITY);
            reference.log_scales.push(Vec3::splat(-3.0));
            reference.opacity_logits.push(0.0);
            reference.sh_dc.push(Vec3::ZERO);
        }
        let mut steps = vec![0.0f32; GpuGaussians::stride(0)];
        steps[0] = 0.01;
        let mut frame = reference.clone();
        frame.positions[0].x = 0.004; // under half a step: back
        frame.positions[1].x = 0.006; // over: kept
        frame.opacity_logits[2] = 0.01; // sigmoid moves by 0.0025 > half a code: kept
        let out = revert_below_a_step(&reference, &frame, &steps);
        assert_eq!(out.positions[0].x.to_bits(), 0.0f32.to_bits());
        assert_eq!(out.positions[1].x, 0.006);
        assert_eq!(out.opacity_logits[2], 0.01);
        assert_eq!(moved_fraction(&reference, &out), 2.0 / 3.0);
    }

    #[test]
    fn gates_open_where_the_new_pull_grew() {
        let old = [[1.0, 1.0], [1.0, 1.0], [1.0, 1.0], [1.0, 1.0], [0.0, 0.0]];
        let new = [[1.5, 1.0], [3.0, 1.0], [1.0, 2.5], [0.2, 0.1], [0.05, 0.0]];
        // The floor is a tenth of the mean old pull (0.08): 0.05 on an unpulled one is noise.
        assert_eq!(
            open_gates(&old, &new, 1.0),
            [false, true, true, false, false]
        );
        // Nothing pulled before (a first frame): any pull opens.
        let zero = [[0.0; 2]; 2];
        assert_eq!(
            open_gates(&zero, &[[1e-3, 0.0], [0.0, 0.0]], 1.0),
            [true, false]
        );
    }
}
