//! Adam for the Gaussian records on the GPU (`wgsl/adam.wgsl`), with a learning rate per
//! attribute as 3D Gaussian Splatting trains them, and SH degrees switched on one at a time.

use bytemuck::{Pod, Zeroable};

use crate::gpu::{Gpu, GpuError};
use crate::kernels::{self, Groups, Source, groups_for};
use crate::renderer::GpuGaussians;

/// Learning rates per attribute, and Adam's constants.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LearningRates {
    /// Positions (world units per step; scale with the scene).
    pub position: f32,
    /// Opacity logits.
    pub opacity: f32,
    /// Log scales.
    pub scale: f32,
    /// Quaternions.
    pub rotation: f32,
    /// DC colour coefficients.
    pub dc: f32,
    /// Higher SH coefficients.
    pub rest: f32,
}

impl Default for LearningRates {
    /// The 3DGS defaults (position for a scene of extent 1).
    fn default() -> Self {
        Self {
            position: 1.6e-4,
            opacity: 0.05,
            scale: 0.005,
            rotation: 0.001,
            dc: 0.0025,
            rest: 0.0025 / 20.0,
        }
    }
}

/// One relocation: Gaussian `dead` becomes a copy of `source`, and both get `shared_logit` as
/// their opacity logit (so that together they look like `source` did).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Move {
    /// The Gaussian that faded out.
    pub dead: u32,
    /// The live Gaussian it joins.
    pub source: u32,
    /// The opacity logit both get.
    pub shared_logit: f32,
}

/// The 3DGS-MCMC terms that keep a fixed Gaussian budget busy; all zero is plain Adam.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Exploration {
    /// Gradient added to each opacity, per unit of opacity (an L1 penalty: unseen Gaussians
    /// fade out and become free for relocation).
    pub opacity_reg: f32,
    /// Gradient added to each scale, per unit of scale (an L1 penalty on size).
    pub scale_reg: f32,
    /// Position noise per unit of covariance, applied to nearly transparent Gaussians after each
    /// step (0: none).
    pub noise: f32,
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct AdamUniform {
    lr_a: [f32; 4],
    lr_b: [f32; 4],
    epsilon: f32,
    correction1: f32,
    correction2: f32,
    count: u32,
    stride: u32,
    active_rest: u32,
    opacity_reg: f32,
    scale_reg: f32,
    noise: f32,
    seed: u32,
    pad: [u32; 2],
}

const BETA1: f32 = 0.9;
const BETA2: f32 = 0.999;
const EPSILON: f32 = 1e-15;

/// Adam state for one set of Gaussians.
pub struct Adam {
    pipeline: wgpu::ComputePipeline,
    perturb: wgpu::ComputePipeline,
    gather: wgpu::ComputePipeline,
    relocate: wgpu::ComputePipeline,
    params: wgpu::Buffer,
    uniform: wgpu::Buffer,
    first: wgpu::Buffer,
    second: wgpu::Buffer,
    bind_group: wgpu::BindGroup,
    perturb_group: wgpu::BindGroup,
    count: u32,
    stride: u32,
    step: u32,
}

impl Adam {
    /// Zero moments for `params`, whose gradients arrive in `grads` (same layout).
    pub fn new(gpu: &Gpu, params: &GpuGaussians, grads: &wgpu::Buffer) -> Result<Self, GpuError> {
        let stride = GpuGaussians::stride(params.sh_rest) as u32;
        let bytes = params.count as u64 * stride as u64 * 4;
        gpu.check_binding("the Adam moments", bytes)?;
        let kernel = |entry| gpu.pipelines.get(&gpu.device, Source::Adam, entry);
        let pipeline = kernel("adam_step");
        let perturb = kernel("perturb");
        let gather = kernel("gather_opacity");
        let relocate = kernel("relocate");
        let uniform = gpu.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("adam"),
            size: std::mem::size_of::<AdamUniform>() as u64,
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let first = gpu.storage("adam m", bytes, wgpu::BufferUsages::empty());
        let second = gpu.storage("adam v", bytes, wgpu::BufferUsages::empty());
        let bind_group = kernels::bind(
            &gpu.device,
            &pipeline,
            &[
                (0, &uniform),
                (1, &params.buffer),
                (2, grads),
                (3, &first),
                (4, &second),
            ],
        );
        let perturb_group =
            kernels::bind(&gpu.device, &perturb, &[(0, &uniform), (1, &params.buffer)]);
        Ok(Self {
            pipeline,
            perturb,
            gather,
            relocate,
            params: params.buffer.clone(),
            perturb_group,
            uniform,
            first,
            second,
            bind_group,
            count: params.count,
            stride,
            step: 0,
        })
    }

    /// Steps taken so far.
    pub fn steps(&self) -> u32 {
        self.step
    }

    /// The opacity of every Gaussian (after the steps submitted so far).
    pub fn opacities(&self, gpu: &Gpu) -> Result<Vec<f32>, GpuError> {
        let bytes = self.count as u64 * 4;
        let out = gpu.storage("opacities", bytes, wgpu::BufferUsages::COPY_SRC);
        let group = kernels::bind(
            &gpu.device,
            &self.gather,
            &[(0, &self.uniform), (1, &self.params), (5, &out)],
        );
        let mut encoder = gpu.device.create_command_encoder(&Default::default());
        {
            let mut pass = encoder.begin_compute_pass(&Default::default());
            Groups::Direct(groups_for(self.count as u64)).dispatch(&mut pass, &self.gather, &group);
        }
        gpu.queue.submit([encoder.finish()]);
        Ok(bytemuck::cast_slice(&gpu.read(&out, bytes)?).to_vec())
    }

    /// Applies relocation `moves`: each copies Gaussian `source` onto `dead`, gives both the
    /// opacity `shared`, and forgets both one's moments.
    pub fn relocate(&self, gpu: &Gpu, moves: &[Move]) {
        if moves.is_empty() {
            return;
        }
        let packed: Vec<[u32; 4]> = moves
            .iter()
            .map(|m| [m.dead, m.source, m.shared_logit.to_bits(), 0])
            .collect();
        let list = gpu.storage(
            "relocation moves",
            packed.len() as u64 * 16,
            wgpu::BufferUsages::empty(),
        );
        gpu.queue
            .write_buffer(&list, 0, bytemuck::cast_slice(&packed));
        let group = kernels::bind(
            &gpu.device,
            &self.relocate,
            &[
                (0, &self.uniform),
                (1, &self.params),
                (3, &self.first),
                (4, &self.second),
                (6, &list),
            ],
        );
        let mut encoder = gpu.device.create_command_encoder(&Default::default());
        {
            let mut pass = encoder.begin_compute_pass(&Default::default());
            Groups::Direct(groups_for(moves.len() as u64 * self.stride as u64)).dispatch(
                &mut pass,
                &self.relocate,
                &group,
            );
        }
        gpu.queue.submit([encoder.finish()]);
    }

    /// Encodes one step with `rates`, letting the first `active_rest` SH-rest floats move, with
    /// the `exploration` terms.
    pub fn encode(
        &mut self,
        gpu: &Gpu,
        encoder: &mut wgpu::CommandEncoder,
        rates: &LearningRates,
        active_rest: u32,
        exploration: &Exploration,
    ) {
        self.step += 1;
        let t = self.step as i32;
        let uniform = AdamUniform {
            lr_a: [rates.position, rates.opacity, rates.scale, rates.rotation],
            lr_b: [rates.dc, rates.rest, BETA1, BETA2],
            epsilon: EPSILON,
            correction1: 1.0 / (1.0 - BETA1.powi(t)),
            correction2: 1.0 / (1.0 - BETA2.powi(t)),
            count: self.count,
            stride: self.stride,
            active_rest,
            opacity_reg: exploration.opacity_reg,
            scale_reg: exploration.scale_reg,
            noise: exploration.noise,
            seed: self.step,
            pad: [0; 2],
        };
        gpu.queue
            .write_buffer(&self.uniform, 0, bytemuck::bytes_of(&uniform));
        let mut pass = encoder.begin_compute_pass(&Default::default());
        Groups::Direct(groups_for(self.count as u64 * self.stride as u64)).dispatch(
            &mut pass,
            &self.pipeline,
            &self.bind_group,
        );
        if exploration.noise > 0.0 {
            Groups::Direct(groups_for(self.count as u64)).dispatch(
                &mut pass,
                &self.perturb,
                &self.perturb_group,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Gaussian records `start` (SH-rest count `sh_rest`) on the GPU, readable back.
    fn upload(gpu: &Gpu, sh_rest: u32, start: &[f32]) -> GpuGaussians {
        GpuGaussians {
            buffer: gpu.storage_with(
                "p",
                bytemuck::cast_slice(start),
                wgpu::BufferUsages::COPY_SRC,
            ),
            count: (start.len() / GpuGaussians::stride(sh_rest)) as u32,
            sh_rest,
        }
    }

    #[test]
    fn adam_matches_the_textbook_update() {
        let gpu = Gpu::with_backends(wgpu::Backends::GL).unwrap();
        let count = 3u32;
        let stride = GpuGaussians::stride(3);
        let n = count as usize * stride;
        let start: Vec<f32> = (0..n).map(|i| (i as f32 * 0.37).sin()).collect();
        let params = upload(&gpu, 3, &start);
        let grads = gpu.storage("g", n as u64 * 4, wgpu::BufferUsages::empty());
        let mut adam = Adam::new(&gpu, &params, &grads).unwrap();
        let rates = LearningRates::default();
        let terms = Exploration {
            opacity_reg: 0.3,
            scale_reg: 0.2,
            noise: 0.0,
        };
        let (mut p, mut m, mut v) = (start.clone(), vec![0f64; n], vec![0f64; n]);
        for step in 1..=3 {
            let mut g: Vec<f32> = (0..n).map(|i| ((i * step) as f32 * 0.11).cos()).collect();
            g[5] = f32::NAN;
            gpu.queue.write_buffer(&grads, 0, bytemuck::cast_slice(&g));
            let mut encoder = gpu.device.create_command_encoder(&Default::default());
            adam.encode(&gpu, &mut encoder, &rates, 3, &terms);
            gpu.queue.submit([encoder.finish()]);
            for i in 0..n {
                let slot = i % stride;
                let lr = match slot {
                    0..=2 => rates.position,
                    3 => rates.opacity,
                    4..=6 => rates.scale,
                    7..=10 => rates.rotation,
                    11..=13 => rates.dc,
                    s if s - 14 < 3 => rates.rest,
                    _ => 0.0,
                } as f64;
                let mut gi = if g[i].is_finite() { g[i] as f64 } else { 0.0 };
                let x = p[i] as f64;
                if slot == 3 {
                    let o = 1.0 / (1.0 + (-x).exp());
                    gi += 0.3 * o * (1.0 - o);
                } else if (4..7).contains(&slot) {
                    gi += 0.2 * x.exp();
                }
                m[i] = 0.9 * m[i] + 0.1 * gi;
                v[i] = 0.999 * v[i] + 0.001 * gi * gi;
                let mh = m[i] / (1.0 - 0.9f64.powi(step as i32));
                let vh = v[i] / (1.0 - 0.999f64.powi(step as i32));
                p[i] -= (lr * mh / (vh.sqrt() + 1e-15)) as f32;
            }
        }
        let raw = gpu.read(&params.buffer, n as u64 * 4).unwrap();
        let got: &[f32] = bytemuck::cast_slice(&raw);
        for i in 0..n {
            assert!(
                (got[i] - p[i]).abs() < 2e-6,
                "float {i}: {} vs {}",
                got[i],
                p[i]
            );
        }
        // Slots past the active SH rest floats (3 of 9 here) never move.
        assert_eq!(got[stride - 1], start[stride - 1]);
        assert_eq!(adam.steps(), 3);
    }

    #[test]
    fn noise_moves_transparent_gaussians_along_their_covariance_only() {
        let gpu = Gpu::with_backends(wgpu::Backends::GL).unwrap();
        let count = 2000u32;
        let stride = GpuGaussians::stride(0);
        let mut start = vec![0f32; count as usize * stride];
        for (i, g) in start.chunks_mut(stride).enumerate() {
            // Half nearly transparent, half opaque; all long along x (scale 1, 0.01, 0.01).
            g[3] = if i % 2 == 0 { -8.0 } else { 4.0 };
            g[4] = 0.0;
            g[5] = 0.01f32.ln();
            g[6] = 0.01f32.ln();
            g[10] = 1.0;
        }
        let n = start.len() as u64;
        let params = upload(&gpu, 0, &start);
        // Zero gradients and zero rates: only the noise moves anything.
        let grads = gpu.storage("g", n * 4, wgpu::BufferUsages::empty());
        let mut adam = Adam::new(&gpu, &params, &grads).unwrap();
        let still = LearningRates {
            position: 0.0,
            opacity: 0.0,
            scale: 0.0,
            rotation: 0.0,
            dc: 0.0,
            rest: 0.0,
        };
        let terms = Exploration {
            noise: 1.0,
            ..Default::default()
        };
        let mut encoder = gpu.device.create_command_encoder(&Default::default());
        adam.encode(&gpu, &mut encoder, &still, 0, &terms);
        gpu.queue.submit([encoder.finish()]);
        let raw = gpu.read(&params.buffer, n * 4).unwrap();
        let got: &[f32] = bytemuck::cast_slice(&raw);
        let (mut x2, mut yz2, mut opaque) = (0f64, 0f64, 0f64);
        for (i, g) in got.chunks(stride).enumerate() {
            assert!(g[..3].iter().all(|v| v.is_finite()));
            if i % 2 == 0 {
                x2 += (g[0] as f64).powi(2);
                yz2 += (g[1] as f64).powi(2) + (g[2] as f64).powi(2);
            } else {
                opaque += g[..3].iter().map(|v| (*v as f64).abs()).sum::<f64>();
            }
        }
        let half = count as f64 / 2.0;
        // Gate ~0.62 at opacity 3e-4, covariance 1 along x: rms ~0.62; 1e-4 across.
        let rms_x = (x2 / half).sqrt();
        assert!((0.5..0.75).contains(&rms_x), "rms along x {rms_x}");
        assert!((yz2 / half).sqrt() < 1e-3, "moved across the long axis");
        assert!(opaque < 1e-6 * half, "opaque Gaussians moved: {opaque}");
    }

    #[test]
    fn relocation_copies_records_shares_opacity_and_forgets_moments() {
        let gpu = Gpu::with_backends(wgpu::Backends::GL).unwrap();
        let count = 4u32;
        let stride = GpuGaussians::stride(1);
        let n = count as usize * stride;
        let start: Vec<f32> = (0..n).map(|i| (i as f32 * 0.61).sin()).collect();
        let params = upload(&gpu, 1, &start);
        let grads = gpu.storage("g", n as u64 * 4, wgpu::BufferUsages::empty());
        gpu.queue
            .write_buffer(&grads, 0, bytemuck::cast_slice(&vec![1.0f32; n]));
        let mut adam = Adam::new(&gpu, &params, &grads).unwrap();
        let rates = LearningRates::default();
        let mut encoder = gpu.device.create_command_encoder(&Default::default());
        adam.encode(&gpu, &mut encoder, &rates, 3, &Exploration::default());
        gpu.queue.submit([encoder.finish()]);
        let before: Vec<f32> =
            bytemuck::cast_slice(&gpu.read(&params.buffer, n as u64 * 4).unwrap()).to_vec();
        let opacities = adam.opacities(&gpu).unwrap();
        for (i, o) in opacities.iter().enumerate() {
            let want = 1.0 / (1.0 + (-before[i * stride + 3]).exp());
            assert!((o - want).abs() < 1e-6);
        }
        adam.relocate(
            &gpu,
            &[Move {
                dead: 0,
                source: 2,
                shared_logit: -1.5,
            }],
        );
        // A step with zero gradient: only Gaussians whose moments survived still move.
        gpu.queue
            .write_buffer(&grads, 0, bytemuck::cast_slice(&vec![0.0f32; n]));
        let mut encoder = gpu.device.create_command_encoder(&Default::default());
        adam.encode(&gpu, &mut encoder, &rates, 3, &Exploration::default());
        gpu.queue.submit([encoder.finish()]);
        let after: Vec<f32> =
            bytemuck::cast_slice(&gpu.read(&params.buffer, n as u64 * 4).unwrap()).to_vec();
        let record = |v: &[f32], i: usize| v[i * stride..(i + 1) * stride].to_vec();
        let mut moved = record(&before, 2);
        moved[3] = -1.5;
        assert_eq!(record(&after, 0), moved);
        assert_eq!(record(&after, 2), moved);
        assert_ne!(
            record(&after, 1),
            record(&before, 1),
            "untouched moments still move"
        );
    }
}
