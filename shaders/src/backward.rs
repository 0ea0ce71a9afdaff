//! The renderer's backward pass (`wgsl/backward.wgsl`): from dLoss/d(pixel colour) — e.g. the
//! [`crate::loss`] gradient — to dLoss/d(every Gaussian parameter), in the Gaussian record layout
//! of [`GpuGaussians`]. Splat gradients are accumulated per tile in workgroup memory with
//! compare-and-swap float adds (no float atomics needed), summed over each subgroup first where
//! the device has subgroups. View-dependent colour is differentiated through the view
//! direction into the position as well.

use crate::gpu::{Gpu, GpuError};
use crate::kernels::{self, Groups, Source, groups_for};
use crate::renderer::{GpuGaussians, RenderBuffers};

/// Floats of one splat's gradient.
const SPLAT_GRADS: u64 = 9;
/// Storage buffers the tile kernel binds.
const STORAGE_BUFFERS: u32 = 6;

/// The two backward pipelines.
pub struct Backward {
    raster: wgpu::ComputePipeline,
    project: wgpu::ComputePipeline,
}

/// Gradient buffers bound to one render's buffers.
pub struct BackwardBuffers {
    count: u32,
    tiles: [u32; 2],
    splat_grads: wgpu::Buffer,
    param_grads: wgpu::Buffer,
    raster: wgpu::BindGroup,
    project: wgpu::BindGroup,
}

impl Backward {
    /// Compiles the kernels; fails on devices with fewer than 6 storage buffers per stage.
    pub fn new(gpu: &Gpu) -> Result<Self, GpuError> {
        if gpu.device.limits().max_storage_buffers_per_shader_stage < STORAGE_BUFFERS {
            return Err(GpuError::Unsupported(format!(
                "{} (training needs {STORAGE_BUFFERS} storage buffers per shader stage)",
                gpu.describe()
            )));
        }
        let source = if gpu.subgroups {
            Source::BackwardSubgroups
        } else {
            Source::Backward
        };
        let module = source.module(&gpu.device);
        Ok(Self {
            raster: kernels::pipeline(&gpu.device, &module, "rasterize_backward"),
            project: kernels::pipeline(&gpu.device, &module, "project_backward"),
        })
    }

    /// The buffer dLoss/d(parameter) lands in, one per Gaussian in the record layout; it outlives
    /// re-bindings (the optimizer binds it once).
    pub fn param_grads(gpu: &Gpu, gaussians: &GpuGaussians) -> Result<wgpu::Buffer, GpuError> {
        let bytes = gaussians.count as u64 * GpuGaussians::stride(gaussians.sh_rest) as u64 * 4;
        gpu.check_binding("the parameter gradients", bytes)?;
        Ok(gpu.storage("parameter gradients", bytes, wgpu::BufferUsages::COPY_SRC))
    }

    /// Binds the gradients of `render` (last rendered from `gaussians`) given `dl_dimage`
    /// (one vec4 per pixel, colour gradient in xyz), into `param_grads` (from
    /// [`Backward::param_grads`]).
    pub fn buffers(
        &self,
        gpu: &Gpu,
        render: &RenderBuffers,
        gaussians: &GpuGaussians,
        dl_dimage: &wgpu::Buffer,
        param_grads: &wgpu::Buffer,
    ) -> Result<BackwardBuffers, GpuError> {
        let n = render.count() as u64;
        let splat_grads = gpu.storage(
            "splat gradients",
            n * SPLAT_GRADS * 4,
            wgpu::BufferUsages::empty(),
        );
        let param_grads = param_grads.clone();
        let d = &gpu.device;
        Ok(BackwardBuffers {
            count: render.count(),
            tiles: render.tiles(),
            raster: kernels::bind(
                d,
                &self.raster,
                &[
                    (0, &render.view),
                    (1, &render.ranges),
                    (2, &render.tile_sorted),
                    (3, &render.sorted),
                    (4, &render.image),
                    (5, dl_dimage),
                    (6, &splat_grads),
                ],
            ),
            project: kernels::bind(
                d,
                &self.project,
                &[
                    (0, &render.view),
                    (6, &splat_grads),
                    (7, &gaussians.buffer),
                    (8, &render.depth_sorted),
                    (9, &param_grads),
                ],
            ),
            splat_grads,
            param_grads,
        })
    }

    /// Encodes the backward pass of the last encoded render.
    pub fn encode(&self, encoder: &mut wgpu::CommandEncoder, b: &BackwardBuffers) {
        encoder.clear_buffer(&b.splat_grads, 0, None);
        encoder.clear_buffer(&b.param_grads, 0, None);
        let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
            label: Some("backward"),
            timestamp_writes: None,
        });
        pass.set_pipeline(&self.raster);
        pass.set_bind_group(0, &b.raster, &[]);
        pass.dispatch_workgroups(b.tiles[0], b.tiles[1], 1);
        Groups::Direct(groups_for(b.count as u64)).dispatch(&mut pass, &self.project, &b.project);
    }
}
