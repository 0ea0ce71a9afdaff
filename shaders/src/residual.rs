//! Residual frames on the GPU (`wgsl/residual.wgsl`), as QUEEN learns them: a frame starts from
//! the previous frame's decoded Gaussians (the reference), Adam moves a latent copy, and what is
//! rendered is the reference plus the latent's residual quantised to the codec's steps
//! (straight-through). Per-Gaussian gates freeze static Gaussians bit-exactly; an L1 rate term
//! pulls residuals towards zero. The gates start from how much harder the new photos pull on each
//! Gaussian than the previous ones did ([`Residual::encode_sensitivity`]).

use bytemuck::{Pod, Zeroable};

use crate::gpu::{Gpu, GpuError};
use crate::kernels::{self, Groups, Source, groups_for};
use crate::renderer::GpuGaussians;

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct ResidualUniform {
    count: u32,
    stride: u32,
    pad: [u32; 2],
}

/// The residual state of one frame: reference, latent, gates, and the bindings that tie them to
/// the rendered Gaussians and their gradients.
pub struct Residual {
    gate: wgpu::ComputePipeline,
    compose: wgpu::ComputePipeline,
    accumulate: wgpu::ComputePipeline,
    latent: GpuGaussians,
    aux: wgpu::Buffer,
    sensitivity: wgpu::Buffer,
    gate_group: wgpu::BindGroup,
    compose_group: wgpu::BindGroup,
    accumulate_group: wgpu::BindGroup,
    count: u32,
    stride: u32,
}

impl Residual {
    /// A residual on `render`'s current records (the reference, copied), whose gradients arrive
    /// in `grads`. `steps` and `rates` give, per record slot, the quantisation step (0: none)
    /// and the L1 rate weight. All gates start open.
    ///
    /// # Panics
    /// When `steps` or `rates` do not have one entry per record slot.
    pub fn new(
        gpu: &Gpu,
        render: &GpuGaussians,
        grads: &wgpu::Buffer,
        steps: &[f32],
        rates: &[f32],
    ) -> Result<Self, GpuError> {
        let stride = GpuGaussians::stride(render.sh_rest);
        assert!(
            steps.len() == stride && rates.len() == stride,
            "one quantisation step and one rate per record slot"
        );
        let bytes = render.count as u64 * stride as u64 * 4;
        gpu.check_binding("the residual records", bytes)?;
        let copy = |label: &str| {
            let buffer = gpu.storage(label, bytes, wgpu::BufferUsages::COPY_SRC);
            let mut encoder = gpu.device.create_command_encoder(&Default::default());
            encoder.copy_buffer_to_buffer(&render.buffer, 0, &buffer, 0, bytes);
            gpu.queue.submit([encoder.finish()]);
            buffer
        };
        let reference = copy("residual reference");
        let latent = GpuGaussians {
            buffer: copy("residual latent"),
            count: render.count,
            sh_rest: render.sh_rest,
        };
        let mut aux_values = Vec::with_capacity(2 * stride + render.count as usize);
        aux_values.extend_from_slice(steps);
        aux_values.extend_from_slice(rates);
        aux_values.extend(std::iter::repeat_n(1.0f32, render.count as usize));
        let aux = gpu.storage_with(
            "residual steps, rates, gates",
            bytemuck::cast_slice(&aux_values),
            wgpu::BufferUsages::empty(),
        );
        let sensitivity = gpu.storage(
            "residual sensitivity",
            render.count as u64 * 8,
            wgpu::BufferUsages::COPY_SRC,
        );
        let uniform = gpu.storage_with(
            "residual",
            bytemuck::bytes_of(&ResidualUniform {
                count: render.count,
                stride: stride as u32,
                pad: [0; 2],
            }),
            wgpu::BufferUsages::UNIFORM,
        );
        let kernel = |entry| gpu.pipelines.get(&gpu.device, Source::Residual, entry);
        let gate = kernel("gate_gradients");
        let compose = kernel("compose");
        let accumulate = kernel("accumulate_sensitivity");
        let with_target = |pipeline: &wgpu::ComputePipeline, target: &wgpu::Buffer| {
            kernels::bind(
                &gpu.device,
                pipeline,
                &[
                    (0, &uniform),
                    (1, target),
                    (2, &latent.buffer),
                    (3, &reference),
                    (4, &aux),
                ],
            )
        };
        let gate_group = with_target(&gate, grads);
        let compose_group = with_target(&compose, &render.buffer);
        let accumulate_group = kernels::bind(
            &gpu.device,
            &accumulate,
            &[(0, &uniform), (5, grads), (6, &sensitivity)],
        );
        Ok(Self {
            gate,
            compose,
            accumulate,
            latent,
            aux,
            sensitivity,
            gate_group,
            compose_group,
            accumulate_group,
            count: render.count,
            stride: stride as u32,
        })
    }

    /// The latent records Adam moves (bind them as the optimizer's parameters).
    pub fn latent(&self) -> &GpuGaussians {
        &self.latent
    }

    /// Starts training at `start` instead of the reference (a prediction of where the frame
    /// is, e.g. the reference moved on at its last velocity): both the latent and the rendered
    /// records `render` take its values. The rate term and frozen gates still refer to the
    /// reference, so a prediction costs bits only where it is kept.
    pub fn start_at(&self, gpu: &Gpu, render: &GpuGaussians, start: &GpuGaussians) {
        let bytes = self.count as u64 * self.stride as u64 * 4;
        let mut encoder = gpu.device.create_command_encoder(&Default::default());
        encoder.copy_buffer_to_buffer(&start.buffer, 0, &self.latent.buffer, 0, bytes);
        encoder.copy_buffer_to_buffer(&start.buffer, 0, &render.buffer, 0, bytes);
        gpu.queue.submit([encoder.finish()]);
    }

    /// Opens (`true`) or freezes each Gaussian's gate.
    pub fn set_gates(&self, gpu: &Gpu, open: &[bool]) {
        let values: Vec<f32> = open.iter().map(|&g| if g { 1.0 } else { 0.0 }).collect();
        gpu.queue.write_buffer(
            &self.aux,
            2 * self.stride as u64 * 4,
            bytemuck::cast_slice(&values),
        );
    }

    fn dispatch(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        pipeline: &wgpu::ComputePipeline,
        group: &wgpu::BindGroup,
        invocations: u64,
    ) {
        let mut pass = encoder.begin_compute_pass(&Default::default());
        Groups::Direct(groups_for(invocations)).dispatch(&mut pass, pipeline, group);
    }

    /// Between the backward pass and Adam: zero the gradients of frozen Gaussians, add the rate
    /// term to the others.
    pub fn encode_gate_gradients(&self, encoder: &mut wgpu::CommandEncoder) {
        let n = self.count as u64 * self.stride as u64;
        self.dispatch(encoder, &self.gate, &self.gate_group, n);
    }

    /// After Adam: write reference + quantised residual into the rendered records.
    pub fn encode_compose(&self, encoder: &mut wgpu::CommandEncoder) {
        let n = self.count as u64 * self.stride as u64;
        self.dispatch(encoder, &self.compose, &self.compose_group, n);
    }

    /// After a backward pass: add each Gaussian's position and colour gradient norms to its
    /// sensitivity.
    pub fn encode_sensitivity(&self, encoder: &mut wgpu::CommandEncoder) {
        self.dispatch(
            encoder,
            &self.accumulate,
            &self.accumulate_group,
            self.count as u64,
        );
    }

    /// The summed (position, colour) gradient norms since the last call, which clears them.
    pub fn take_sensitivity(&self, gpu: &Gpu) -> Result<Vec<[f32; 2]>, GpuError> {
        let bytes = self.count as u64 * 8;
        let raw = gpu.read(&self.sensitivity, bytes)?;
        let mut encoder = gpu.device.create_command_encoder(&Default::default());
        encoder.clear_buffer(&self.sensitivity, 0, None);
        gpu.queue.submit([encoder.finish()]);
        Ok(bytemuck::cast_slice(&raw).to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gates_rates_and_quantisation_match_the_cpu() {
        let gpu = Gpu::with_backends(wgpu::Backends::GL).unwrap();
        let sh_rest = 3u32;
        let stride = GpuGaussians::stride(sh_rest);
        let count = 4usize;
        let n = count * stride;
        let reference: Vec<f32> = (0..n).map(|i| (i as f32 * 0.71).sin()).collect();
        let render = GpuGaussians {
            buffer: gpu.storage_with(
                "render",
                bytemuck::cast_slice(&reference),
                wgpu::BufferUsages::COPY_SRC,
            ),
            count: count as u32,
            sh_rest,
        };
        let grads = gpu.storage("grads", n as u64 * 4, wgpu::BufferUsages::COPY_SRC);
        let steps: Vec<f32> = (0..stride)
            .map(|s| if s % 3 == 0 { 0.0 } else { 0.05 })
            .collect();
        let rates: Vec<f32> = (0..stride).map(|s| 0.01 * s as f32).collect();
        let residual = Residual::new(&gpu, &render, &grads, &steps, &rates).unwrap();
        let gates = [true, false, true, false];
        residual.set_gates(&gpu, &gates);

        // Move the latent, then compose.
        let latent: Vec<f32> = reference
            .iter()
            .enumerate()
            .map(|(i, r)| r + 0.13 * (i as f32 * 1.3).cos())
            .collect();
        gpu.queue
            .write_buffer(&residual.latent().buffer, 0, bytemuck::cast_slice(&latent));
        let mut g: Vec<f32> = (0..n).map(|i| (i as f32 * 0.4).cos()).collect();
        g[7] = f32::INFINITY;
        gpu.queue.write_buffer(&grads, 0, bytemuck::cast_slice(&g));
        let mut encoder = gpu.device.create_command_encoder(&Default::default());
        residual.encode_sensitivity(&mut encoder);
        residual.encode_gate_gradients(&mut encoder);
        residual.encode_compose(&mut encoder);
        gpu.queue.submit([encoder.finish()]);

        let got_grads: Vec<f32> =
            bytemuck::cast_slice(&gpu.read(&grads, n as u64 * 4).unwrap()).to_vec();
        let got: Vec<f32> =
            bytemuck::cast_slice(&gpu.read(&render.buffer, n as u64 * 4).unwrap()).to_vec();
        for i in 0..n {
            let (k, slot) = (i / stride, i % stride);
            let d = latent[i] - reference[i];
            let (want_grad, want) = if gates[k] {
                let g = if g[i].is_finite() { g[i] } else { 0.0 };
                let q = if steps[slot] > 0.0 {
                    (d / steps[slot]).round() * steps[slot]
                } else {
                    d
                };
                (g + rates[slot] * d.signum(), reference[i] + q)
            } else {
                (0.0, reference[i])
            };
            assert!((got_grads[i] - want_grad).abs() < 1e-6, "grad {i}");
            assert!((got[i] - want).abs() < 1e-6, "record {i}");
            if !gates[k] {
                assert_eq!(got[i].to_bits(), reference[i].to_bits(), "frozen {i} exact");
            }
        }
        let sens = residual.take_sensitivity(&gpu).unwrap();
        for (k, s) in sens.iter().enumerate() {
            let b = k * stride;
            let norm = |a: usize| {
                let v: Vec<f32> = g[b + a..b + a + 3].to_vec();
                if v.iter().all(|x| x.is_finite()) {
                    v.iter().map(|x| x * x).sum::<f32>().sqrt()
                } else {
                    0.0
                }
            };
            assert!((s[0] - norm(0)).abs() < 1e-5 && (s[1] - norm(11)).abs() < 1e-5);
        }
        assert!(
            residual
                .take_sensitivity(&gpu)
                .unwrap()
                .iter()
                .all(|s| *s == [0.0, 0.0]),
            "taking clears"
        );
    }
}
