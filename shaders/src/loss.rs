//! The training loss on the GPU (`wgsl/loss.wgsl`): 0.8 · L1 + 0.2 · (1 − SSIM) of the renderer's
//! image against a photo, with its gradient with respect to every rendered colour — what the
//! trainer's backward pass starts from. SSIM is exactly [`crate::metrics::ssim`] (11×11 Gaussian,
//! σ 1.5, window renormalised at the borders), without its clamping to [0, 1]. The loss and the
//! PSNR are summed on the GPU per 16×16 tile, so reading them costs kilobytes, not the image.

use bytemuck::{Pod, Zeroable};

use crate::gpu::{Gpu, GpuError};
use crate::kernels::{self, Source};
use crate::renderer::RenderBuffers;

/// The loss pipelines: five for the loss and its gradient, one for the per-tile totals.
pub struct Loss {
    moments_h: wgpu::ComputePipeline,
    moments_v: wgpu::ComputePipeline,
    partials: wgpu::ComputePipeline,
    back_v: wgpu::ComputePipeline,
    back_h: wgpu::ComputePipeline,
    totals: wgpu::ComputePipeline,
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct Size {
    width: u32,
    height: u32,
    pad: [u32; 2],
}

/// Buffers of the loss for one image size, bound to one renderer's image.
pub struct LossBuffers {
    width: u32,
    height: u32,
    target: wgpu::Buffer,
    /// Per pixel: dLoss/d(r, g, b) and the pixel's share of the loss (sum it for the loss).
    pub grad: wgpu::Buffer,
    /// Per 16×16 tile: squared error and loss share.
    totals: wgpu::Buffer,
    groups: [wgpu::BindGroup; 6],
}

impl Loss {
    /// Compiles the kernels.
    pub fn new(gpu: &Gpu) -> Self {
        let module = Source::Loss.module(&gpu.device);
        let p = |entry| kernels::pipeline(&gpu.device, &module, entry);
        Self {
            moments_h: p("moments_h"),
            moments_v: p("moments_v"),
            partials: p("ssim_partials"),
            back_v: p("back_v"),
            back_h: p("back_h"),
            totals: p("tile_totals"),
        }
    }

    /// Buffers for `image`'s size, reading its colours.
    pub fn buffers(&self, gpu: &Gpu, image: &RenderBuffers) -> Result<LossBuffers, GpuError> {
        let (width, height) = image.size();
        let pixels = width as u64 * height as u64;
        gpu.check_binding("the SSIM moments", pixels * 64)?;
        let storage =
            |label: &str, bytes: u64| gpu.storage(label, bytes, wgpu::BufferUsages::COPY_SRC);
        let size = gpu.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("loss size"),
            size: std::mem::size_of::<Size>() as u64,
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        gpu.queue.write_buffer(
            &size,
            0,
            bytemuck::bytes_of(&Size {
                width,
                height,
                pad: [0; 2],
            }),
        );
        let target = storage("photo", pixels * 16);
        let moments_a = storage("moments", pixels * 64);
        let moments_b = storage("moments'", pixels * 64);
        let partials_a = storage("ssim partials", pixels * 48);
        let partials_b = storage("ssim partials'", pixels * 48);
        let grad = storage("loss gradient", pixels * 16);
        let totals = storage("loss totals", tiles(width, height) * 8);
        let d = &gpu.device;
        let groups = [
            kernels::bind(
                d,
                &self.moments_h,
                &[(0, &size), (1, &image.image), (2, &target), (3, &moments_a)],
            ),
            kernels::bind(
                d,
                &self.moments_v,
                &[(0, &size), (3, &moments_a), (4, &moments_b)],
            ),
            kernels::bind(
                d,
                &self.partials,
                &[(0, &size), (4, &moments_b), (5, &partials_a)],
            ),
            kernels::bind(
                d,
                &self.back_v,
                &[(0, &size), (5, &partials_a), (6, &partials_b)],
            ),
            kernels::bind(
                d,
                &self.back_h,
                &[
                    (0, &size),
                    (1, &image.image),
                    (2, &target),
                    (6, &partials_b),
                    (7, &grad),
                ],
            ),
            kernels::bind(
                d,
                &self.totals,
                &[
                    (0, &size),
                    (1, &image.image),
                    (2, &target),
                    (7, &grad),
                    (8, &totals),
                ],
            ),
        ];
        Ok(LossBuffers {
            width,
            height,
            target,
            grad,
            totals,
            groups,
        })
    }

    /// A GPU-resident photo for [`Loss::use_photo`] (linear RGB per pixel, row-major): upload
    /// the training photos once, switch between them with a device copy.
    pub fn photo(&self, gpu: &Gpu, rgb: &[[f32; 3]]) -> Result<wgpu::Buffer, GpuError> {
        let bytes = rgb.len() as u64 * 16;
        gpu.check_binding("a photo", bytes)?;
        let buffer = gpu.storage("photo", bytes, wgpu::BufferUsages::COPY_SRC);
        let padded: Vec<[f32; 4]> = rgb.iter().map(|p| [p[0], p[1], p[2], 0.0]).collect();
        gpu.queue
            .write_buffer(&buffer, 0, bytemuck::cast_slice(&padded));
        Ok(buffer)
    }

    /// Encodes copying `photo` (from [`Loss::photo`], same size) into the loss's target.
    pub fn use_photo(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        b: &LossBuffers,
        photo: &wgpu::Buffer,
    ) {
        encoder.copy_buffer_to_buffer(
            photo,
            0,
            &b.target,
            0,
            b.width as u64 * b.height as u64 * 16,
        );
    }

    /// Uploads the photo (linear RGB per pixel, row-major).
    pub fn set_target(&self, gpu: &Gpu, b: &LossBuffers, rgb: &[[f32; 3]]) -> Result<(), GpuError> {
        if rgb.len() != b.width as usize * b.height as usize {
            return Err(GpuError::Readback(format!(
                "photo has {} pixels, the image {}x{}",
                rgb.len(),
                b.width,
                b.height
            )));
        }
        let padded: Vec<[f32; 4]> = rgb.iter().map(|p| [p[0], p[1], p[2], 0.0]).collect();
        gpu.queue
            .write_buffer(&b.target, 0, bytemuck::cast_slice(&padded));
        Ok(())
    }

    /// The loss of the last encoded evaluation (waits for the GPU).
    pub fn read_loss(&self, gpu: &Gpu, b: &LossBuffers) -> Result<f64, GpuError> {
        Ok(self.read_totals(gpu, b)?.1)
    }

    /// PSNR of the last encoded evaluation's image against its photo, as
    /// [`crate::metrics::psnr`] computes it (waits for the GPU).
    pub fn read_psnr(&self, gpu: &Gpu, b: &LossBuffers) -> Result<f64, GpuError> {
        let squared = self.read_totals(gpu, b)?.0;
        let values = 3 * b.width as u64 * b.height as u64;
        Ok(crate::metrics::psnr_from_mse(
            squared / values.max(1) as f64,
        ))
    }

    /// Summed squared error and loss over the tiles.
    fn read_totals(&self, gpu: &Gpu, b: &LossBuffers) -> Result<(f64, f64), GpuError> {
        let raw = gpu.read(&b.totals, tiles(b.width, b.height) * 8)?;
        let tiles: &[[f32; 2]] = bytemuck::cast_slice(&raw);
        Ok(tiles
            .iter()
            .fold((0.0, 0.0), |(e, l), t| (e + t[0] as f64, l + t[1] as f64)))
    }

    /// Encodes the loss and its gradient of the image last rendered into the bound buffers, and
    /// the totals [`Loss::read_loss`] and [`Loss::read_psnr`] read.
    pub fn encode(&self, encoder: &mut wgpu::CommandEncoder, b: &LossBuffers) {
        let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
            label: Some("loss"),
            timestamp_writes: None,
        });
        let pipelines = [
            &self.moments_h,
            &self.moments_v,
            &self.partials,
            &self.back_v,
            &self.back_h,
            &self.totals,
        ];
        for (pipeline, group) in pipelines.into_iter().zip(&b.groups) {
            pass.set_pipeline(pipeline);
            pass.set_bind_group(0, group, &[]);
            pass.dispatch_workgroups(b.width.div_ceil(16), b.height.div_ceil(16), 1);
        }
    }
}

/// 16×16 tiles covering a `width` × `height` image.
fn tiles(width: u32, height: u32) -> u64 {
    width.div_ceil(16) as u64 * height.div_ceil(16) as u64
}
