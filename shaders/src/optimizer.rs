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
    pad: [u32; 2],
}

const BETA1: f32 = 0.9;
const BETA2: f32 = 0.999;
const EPSILON: f32 = 1e-15;

/// Adam state for one set of Gaussians.
pub struct Adam {
    pipeline: wgpu::ComputePipeline,
    uniform: wgpu::Buffer,
    first: wgpu::Buffer,
    second: wgpu::Buffer,
    bind_group: wgpu::BindGroup,
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
        let module = Source::Adam.module(&gpu.device);
        let pipeline = kernels::pipeline(&gpu.device, &module, "adam_step");
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
        Ok(Self {
            pipeline,
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

    /// Forgets the moments of Gaussians `indices` (after they were moved elsewhere).
    pub fn reset(&self, gpu: &Gpu, indices: &[u32]) {
        let zeros = vec![0u8; self.stride as usize * 4];
        for &i in indices {
            let at = i as u64 * self.stride as u64 * 4;
            gpu.queue.write_buffer(&self.first, at, &zeros);
            gpu.queue.write_buffer(&self.second, at, &zeros);
        }
    }

    /// Encodes one step with `rates`, letting the first `active_rest` SH-rest floats move.
    pub fn encode(
        &mut self,
        gpu: &Gpu,
        encoder: &mut wgpu::CommandEncoder,
        rates: &LearningRates,
        active_rest: u32,
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
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adam_matches_the_textbook_update() {
        let gpu = Gpu::with_backends(wgpu::Backends::GL).unwrap();
        let count = 3u32;
        let stride = GpuGaussians::stride(3);
        let n = count as usize * stride;
        let start: Vec<f32> = (0..n).map(|i| (i as f32 * 0.37).sin()).collect();
        let params = GpuGaussians {
            buffer: gpu.storage("p", n as u64 * 4, wgpu::BufferUsages::COPY_SRC),
            count,
            sh_rest: 3,
        };
        gpu.queue
            .write_buffer(&params.buffer, 0, bytemuck::cast_slice(&start));
        let grads = gpu.storage("g", n as u64 * 4, wgpu::BufferUsages::empty());
        let mut adam = Adam::new(&gpu, &params, &grads).unwrap();
        let rates = LearningRates::default();
        let (mut p, mut m, mut v) = (start.clone(), vec![0f64; n], vec![0f64; n]);
        for step in 1..=3 {
            let mut g: Vec<f32> = (0..n).map(|i| ((i * step) as f32 * 0.11).cos()).collect();
            g[5] = f32::NAN;
            gpu.queue.write_buffer(&grads, 0, bytemuck::cast_slice(&g));
            let mut encoder = gpu.device.create_command_encoder(&Default::default());
            adam.encode(&gpu, &mut encoder, &rates, 3);
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
                let gi = if g[i].is_finite() { g[i] as f64 } else { 0.0 };
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
                (got[i] - p[i]).abs() < 1e-6,
                "float {i}: {} vs {}",
                got[i],
                p[i]
            );
        }
        // Slots past the active SH rest floats (3 of 9 here) never move.
        assert_eq!(got[stride - 1], start[stride - 1]);
        assert_eq!(adam.steps(), 3);
    }
}
