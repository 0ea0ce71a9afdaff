//! The forward splat renderer on wgpu: project → depth sort → tile binning → tile sort →
//! rasterize, all on the GPU (`wgsl/*.wgsl`). Matches [`crate::reference`] to within f32.

use bytemuck::{Pod, Zeroable};
use glam::{DVec3, Vec3};
use splatcast_protocol::GaussianFrame;

use crate::camera::{Camera, CameraError};
use crate::gpu::{Gpu, GpuError, Readback};
use crate::kernels::{self, Groups, Source, groups_for};
use crate::scan::{self, Scan, ScanBindings};
use crate::sort::{RadixSort, SORT_BLOCK, SortBindings};

/// Pixels per tile side.
pub const TILE: u32 = 16;
/// Floats per Gaussian before the SH rest coefficients.
const BASE_FLOATS: usize = 14;
/// Bytes of one projected splat on the GPU.
const SPLAT_BYTES: u64 = 48;
/// Bits of the depth sort key (see `wgsl/project.wgsl`).
const DEPTH_BITS: u32 = 24;
/// Largest image [`Renderer::render`] returns (32 bytes per pixel: 8192×8192 and a bit).
const MAX_IMAGE_BYTES: u64 = 4 << 30;
/// Bytes of one (key, value) pair.
const PAIR_BYTES: u64 = 8;

/// Why a render failed.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// The camera cannot render (size, intrinsics or pose).
    #[error(transparent)]
    Camera(#[from] CameraError),
    /// The GPU refused.
    #[error(transparent)]
    Gpu(#[from] GpuError),
    /// A frame wanted more tile-splat pairs than the buffers hold, so it was cut short.
    #[error("a frame wanted {wanted} tile-splat pairs; the buffers hold {capacity}")]
    Overflowed {
        /// Pairs the frame wanted.
        wanted: u32,
        /// Pairs the buffers hold.
        capacity: u32,
    },
}

/// Gaussians resident on the GPU in the layout the projection kernel reads: per Gaussian
/// position, opacity logit, log scale, rotation (x y z w), DC colour, then the SH rest.
pub struct GpuGaussians {
    /// The packed records.
    pub buffer: wgpu::Buffer,
    /// Number of Gaussians.
    pub count: u32,
    /// SH coefficients beyond DC per colour channel (0, 3, 8 or 15).
    pub sh_rest: u32,
}

impl GpuGaussians {
    /// Floats per Gaussian record for `sh_rest` extra coefficients.
    pub fn stride(sh_rest: u32) -> usize {
        BASE_FLOATS + 3 * sh_rest as usize
    }

    /// Packs `frame` into the GPU record layout.
    pub fn pack(frame: &GaussianFrame) -> Vec<f32> {
        let rest = frame.rest_per_gaussian();
        let stride = Self::stride(rest as u32);
        let mut out = Vec::with_capacity(frame.len() * stride);
        for i in 0..frame.len() {
            let q = frame.rotations[i];
            out.extend_from_slice(&frame.positions[i].to_array());
            out.push(frame.opacity_logits[i]);
            out.extend_from_slice(&frame.log_scales[i].to_array());
            out.extend_from_slice(&[q.x, q.y, q.z, q.w]);
            out.extend_from_slice(&frame.sh_dc[i].to_array());
            for c in &frame.sh_rest[i * rest..(i + 1) * rest] {
                out.extend_from_slice(&c.to_array());
            }
        }
        out
    }

    /// Inverse of [`GpuGaussians::pack`]: records with `sh_rest` extra coefficients back into a
    /// frame (rotations as stored; the renderer normalises them).
    pub fn unpack(records: &[f32], sh_rest: u32) -> GaussianFrame {
        let stride = Self::stride(sh_rest);
        let degree = match sh_rest {
            0 => 0,
            3 => 1,
            8 => 2,
            _ => 3,
        };
        let n = records.len() / stride;
        let mut f = GaussianFrame::with_capacity(n, degree);
        for r in records.chunks_exact(stride) {
            f.positions.push(Vec3::new(r[0], r[1], r[2]));
            f.opacity_logits.push(r[3]);
            f.log_scales.push(Vec3::new(r[4], r[5], r[6]));
            f.rotations
                .push(glam::Quat::from_xyzw(r[7], r[8], r[9], r[10]));
            f.sh_dc.push(Vec3::new(r[11], r[12], r[13]));
            for c in r[14..].chunks_exact(3) {
                f.sh_rest.push(Vec3::new(c[0], c[1], c[2]));
            }
        }
        f
    }

    /// Overwrites the records with `frame` (same count and SH degree).
    pub fn write(&self, gpu: &Gpu, frame: &GaussianFrame) -> Result<(), GpuError> {
        if frame.len() != self.count as usize || frame.rest_per_gaussian() as u32 != self.sh_rest {
            return Err(GpuError::Readback(
                "frame does not match the GPU records".into(),
            ));
        }
        gpu.queue
            .write_buffer(&self.buffer, 0, bytemuck::cast_slice(&Self::pack(frame)));
        Ok(())
    }

    /// Reads the records back.
    pub fn download(&self, gpu: &Gpu) -> Result<GaussianFrame, GpuError> {
        let bytes = self.count as u64 * Self::stride(self.sh_rest) as u64 * 4;
        let raw = gpu.read(&self.buffer, bytes)?;
        Ok(Self::unpack(bytemuck::cast_slice(&raw), self.sh_rest))
    }

    /// Uploads `frame`.
    pub fn upload(gpu: &Gpu, frame: &GaussianFrame) -> Result<Self, GpuError> {
        let sh_rest = frame.rest_per_gaussian() as u32;
        let bytes = frame.len() as u64 * Self::stride(sh_rest) as u64 * 4;
        gpu.check_binding("the Gaussians", bytes)?;
        let buffer = gpu.storage("gaussians", bytes, wgpu::BufferUsages::COPY_SRC);
        gpu.queue
            .write_buffer(&buffer, 0, bytemuck::cast_slice(&Self::pack(frame)));
        Ok(Self {
            buffer,
            count: frame.len() as u32,
            sh_rest,
        })
    }
}

/// The uniform every kernel reads (`View` in `wgsl/splat.wgsl`).
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct ViewUniform {
    world_to_camera: [f32; 16],
    focal: [f32; 2],
    principal: [f32; 2],
    size: [u32; 2],
    tiles: [u32; 2],
    camera_position: [f32; 3],
    count: u32,
    background: [f32; 3],
    stride: u32,
    sh_rest: u32,
    capacity: u32,
    frustum: [f32; 2],
}

/// A rendered image read back from the GPU.
#[derive(Clone, Debug, PartialEq)]
pub struct RenderedImage {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Per pixel: linear RGB over the background, and accumulated alpha.
    pub rgba: Vec<[f32; 4]>,
    /// Per pixel: alpha-weighted depth, final transmittance, splats that contributed, 0.
    pub aux: Vec<[f32; 4]>,
}

impl RenderedImage {
    /// 8-bit sRGB-less RGB (values clamped to [0, 1]), as `splatcast render` writes PNGs.
    pub fn to_rgb8(&self) -> Vec<u8> {
        self.rgba
            .iter()
            .flat_map(|p| {
                p[..3]
                    .iter()
                    .map(|v| (v.clamp(0.0, 1.0) * 255.0).round() as u8)
            })
            .collect()
    }
}

/// Phases of a render, for timing.
pub const PHASES: [&str; 4] = ["project", "depth sort", "bin + tile sort", "rasterize"];

/// Compiled pipelines; create once per device.
pub struct Renderer {
    project: wgpu::ComputePipeline,
    gather: wgpu::ComputePipeline,
    emit: wgpu::ComputePipeline,
    prepare: wgpu::ComputePipeline,
    ranges: wgpu::ComputePipeline,
    rasterize: wgpu::ComputePipeline,
    sort: RadixSort,
    scan: Scan,
}

/// Buffers and bind groups for one (Gaussian set, image size, intersection capacity); reuse
/// them across frames of a sequence.
pub struct RenderBuffers {
    count: u32,
    sh_rest: u32,
    width: u32,
    height: u32,
    tiles: [u32; 2],
    capacity: u32,
    pub(crate) view: wgpu::Buffer,
    tile_info: wgpu::Buffer,
    pub(crate) ranges: wgpu::Buffer,
    /// The image: two vec4 per pixel (see [`RenderedImage`]).
    pub image: wgpu::Buffer,
    /// Projected splats in depth order (what the rasterizer composited).
    pub(crate) sorted: wgpu::Buffer,
    /// (depth key, Gaussian) in depth order.
    pub(crate) depth_sorted: wgpu::Buffer,
    /// (tile, splat) pairs sorted by tile.
    pub(crate) tile_sorted: wgpu::Buffer,
    project: wgpu::BindGroup,
    depth_sort: SortBindings,
    gather: wgpu::BindGroup,
    offsets_scan: ScanBindings,
    emit: wgpu::BindGroup,
    prepare: wgpu::BindGroup,
    tile_sort: SortBindings,
    tile_ranges: wgpu::BindGroup,
    rasterize: wgpu::BindGroup,
    args: wgpu::Buffer,
}

impl RenderBuffers {
    /// Image size these buffers render.
    pub fn size(&self) -> (u32, u32) {
        (self.width, self.height)
    }

    /// Gaussians these buffers render.
    pub fn count(&self) -> u32 {
        self.count
    }

    /// Tiles per row and column.
    pub fn tiles(&self) -> [u32; 2] {
        self.tiles
    }

    /// Tile-splat pairs the binning can hold.
    pub fn capacity(&self) -> u32 {
        self.capacity
    }
}

/// Optional GPU timestamps around each phase.
pub struct Timestamps {
    set: wgpu::QuerySet,
    resolve: wgpu::Buffer,
}

impl Timestamps {
    /// Queries for one render (two per phase).
    pub fn new(gpu: &Gpu) -> Option<Self> {
        gpu.timestamps.then(|| Self {
            set: gpu.device.create_query_set(&wgpu::QuerySetDescriptor {
                label: Some("phases"),
                ty: wgpu::QueryType::Timestamp,
                count: 2 * PHASES.len() as u32,
            }),
            resolve: gpu.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("phase times"),
                size: 16 * PHASES.len() as u64,
                usage: wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
                mapped_at_creation: false,
            }),
        })
    }

    /// Milliseconds per phase of the last render encoded with these queries.
    pub fn read(&self, gpu: &Gpu) -> Result<[f64; 4], GpuError> {
        Ok(Self::millis(gpu, &gpu.read(&self.resolve, Self::BYTES)?))
    }
}

/// A compute pass for phase `p`, with timestamps around it when profiling.
fn phase<'e>(
    encoder: &'e mut wgpu::CommandEncoder,
    timestamps: Option<&Timestamps>,
    p: u32,
) -> wgpu::ComputePass<'e> {
    encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
        label: Some(PHASES[p as usize]),
        timestamp_writes: timestamps.map(|t| wgpu::ComputePassTimestampWrites {
            query_set: &t.set,
            beginning_of_pass_write_index: Some(2 * p),
            end_of_pass_write_index: Some(2 * p + 1),
        }),
    })
}

fn tile_bits(tiles: u32) -> u32 {
    (32 - tiles.saturating_sub(1).leading_zeros()).max(1)
}

impl Renderer {
    /// Compiles the kernels.
    pub fn new(gpu: &Gpu) -> Self {
        let device = &gpu.device;
        let project = Source::Project.module(device);
        let bin = Source::Bin.module(device);
        let raster = Source::Rasterize.module(device);
        Self {
            project: kernels::pipeline(device, &project, "project"),
            gather: kernels::pipeline(device, &bin, "gather"),
            emit: kernels::pipeline(device, &bin, "emit"),
            prepare: kernels::pipeline(device, &bin, "prepare"),
            ranges: kernels::pipeline(device, &bin, "tile_ranges"),
            rasterize: kernels::pipeline(device, &raster, "rasterize"),
            sort: RadixSort::new(device),
            scan: Scan::new(device),
        }
    }

    /// Allocates buffers for `gaussians` at `width`×`height` with room for `capacity`
    /// tile-splat pairs (grown by [`Renderer::render`] when a frame needs more).
    pub fn buffers(
        &self,
        gpu: &Gpu,
        gaussians: &GpuGaussians,
        width: u32,
        height: u32,
        capacity: u32,
    ) -> Result<RenderBuffers, GpuError> {
        let device = &gpu.device;
        let n = gaussians.count as u64;
        let tiles = [width.div_ceil(TILE), height.div_ceil(TILE)];
        let tile_count = tiles[0] as u64 * tiles[1] as u64;
        let capacity = capacity.max(1);
        let cap = capacity as u64;
        for (what, bytes) in [
            ("the projected splats", n * SPLAT_BYTES),
            ("the tile-splat pairs", cap * PAIR_BYTES),
            ("the image", width as u64 * height as u64 * 32),
        ] {
            gpu.check_binding(what, bytes)?;
        }
        let storage =
            |label: &str, bytes: u64| gpu.storage(label, bytes, wgpu::BufferUsages::empty());
        let view = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("view"),
            size: std::mem::size_of::<ViewUniform>() as u64,
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let splats = storage("splats", n * SPLAT_BYTES);
        let sorted = storage("sorted splats", n * SPLAT_BYTES);
        let depth_a = storage("depth pairs", n * PAIR_BYTES);
        let depth_b = storage("depth pairs'", n * PAIR_BYTES);
        let offsets = storage("tile offsets", (n + 1) * 4);
        let tile_a = storage("tile pairs", cap * PAIR_BYTES);
        let tile_b = storage("tile pairs'", cap * PAIR_BYTES);
        let ranges = storage("tile ranges", tile_count * 8);
        let image = gpu.storage(
            "image",
            width as u64 * height as u64 * 32,
            wgpu::BufferUsages::COPY_SRC,
        );
        let tile_info = gpu.storage("tile info", 16, wgpu::BufferUsages::COPY_SRC);
        let args = gpu.storage("dispatch args", 48, wgpu::BufferUsages::INDIRECT);
        let hist_len = 16 * n.max(cap).div_ceil(SORT_BLOCK);
        let hist = storage("sort histogram", hist_len * 4);
        let sums = storage("scan sums", scan::blocks(n + 1) * 4);
        let depth_info = storage("depth sort info", 8);
        gpu.queue.write_buffer(
            &depth_info,
            0,
            bytemuck::cast_slice(&[n as u32, (16 * n.div_ceil(SORT_BLOCK)) as u32]),
        );
        let offsets_info = storage("offset scan info", 8);
        gpu.queue.write_buffer(
            &offsets_info,
            0,
            bytemuck::cast_slice(&[n as u32 + 1, n as u32 + 1]),
        );

        let depth_sort = self.sort.bind(
            device,
            &self.scan,
            &depth_info,
            &depth_a,
            &depth_b,
            &hist,
            DEPTH_BITS,
        );
        let depth_sorted = if depth_sort.result_in_second() {
            &depth_b
        } else {
            &depth_a
        };
        let tile_sort = self.sort.bind(
            device,
            &self.scan,
            &tile_info,
            &tile_a,
            &tile_b,
            &hist,
            tile_bits(tile_count as u32),
        );
        let tile_sorted = if tile_sort.result_in_second() {
            &tile_b
        } else {
            &tile_a
        };
        Ok(RenderBuffers {
            count: gaussians.count,
            sh_rest: gaussians.sh_rest,
            width,
            height,
            tiles,
            capacity,
            project: kernels::bind(
                device,
                &self.project,
                &[
                    (0, &view),
                    (1, &gaussians.buffer),
                    (2, &splats),
                    (3, &depth_a),
                ],
            ),
            depth_sort,
            gather: kernels::bind(
                device,
                &self.gather,
                &[
                    (0, &view),
                    (1, depth_sorted),
                    (2, &splats),
                    (3, &sorted),
                    (4, &offsets),
                ],
            ),
            offsets_scan: self.scan.bind(device, &offsets_info, &offsets, &sums),
            emit: kernels::bind(
                device,
                &self.emit,
                &[(0, &view), (3, &sorted), (4, &offsets), (5, &tile_a)],
            ),
            prepare: kernels::bind(
                device,
                &self.prepare,
                &[(0, &view), (4, &offsets), (6, &tile_info), (7, &args)],
            ),
            tile_sort,
            tile_ranges: kernels::bind(
                device,
                &self.ranges,
                &[(5, tile_sorted), (6, &tile_info), (8, &ranges)],
            ),
            rasterize: kernels::bind(
                device,
                &self.rasterize,
                &[
                    (0, &view),
                    (1, &ranges),
                    (2, tile_sorted),
                    (3, &sorted),
                    (4, &image),
                ],
            ),
            sorted: sorted.clone(),
            depth_sorted: depth_sorted.clone(),
            tile_sorted: tile_sorted.clone(),
            view,
            tile_info,
            ranges,
            image,
            args,
        })
    }

    /// Writes the camera for the next encoded render.
    pub fn set_view(
        &self,
        gpu: &Gpu,
        buffers: &RenderBuffers,
        camera: &Camera,
        background: Vec3,
    ) -> Result<(), CameraError> {
        self.set_view_in(gpu, buffers, camera, camera.frustum_limits(), background)
    }

    /// [`Renderer::set_view`] for a strip of a larger image whose Jacobian clamp is `frustum`.
    fn set_view_in(
        &self,
        gpu: &Gpu,
        buffers: &RenderBuffers,
        camera: &Camera,
        frustum: [f64; 2],
        background: Vec3,
    ) -> Result<(), CameraError> {
        camera.validate()?;
        if (camera.width, camera.height) != (buffers.width, buffers.height) {
            return Err(CameraError::Size(camera.width, camera.height));
        }
        let position = camera.position().as_vec3();
        let uniform = ViewUniform {
            world_to_camera: camera.world_to_camera.as_mat4().to_cols_array(),
            focal: [camera.fx as f32, camera.fy as f32],
            principal: [camera.cx as f32, camera.cy as f32],
            size: [buffers.width, buffers.height],
            tiles: buffers.tiles,
            camera_position: position.to_array(),
            count: buffers.count,
            background: background.to_array(),
            stride: GpuGaussians::stride(buffers.sh_rest) as u32,
            sh_rest: buffers.sh_rest,
            capacity: buffers.capacity,
            frustum: frustum.map(|v| v as f32),
        };
        gpu.queue
            .write_buffer(&buffers.view, 0, bytemuck::bytes_of(&uniform));
        Ok(())
    }

    /// Encodes one render with the view last set; `timestamps` brackets each phase.
    pub fn encode(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        b: &RenderBuffers,
        timestamps: Option<&Timestamps>,
    ) {
        let n = b.count as u64;
        {
            let mut pass = phase(encoder, timestamps, 0);
            Groups::Direct(groups_for(n)).dispatch(&mut pass, &self.project, &b.project);
        }
        {
            let mut pass = phase(encoder, timestamps, 1);
            let blocks = n.div_ceil(SORT_BLOCK);
            self.sort.encode(
                &mut pass,
                &self.scan,
                &b.depth_sort,
                Groups::Direct(blocks as u32),
            );
        }
        encoder.clear_buffer(&b.ranges, 0, None);
        {
            let mut pass = phase(encoder, timestamps, 2);
            let items = Groups::Direct(groups_for(n).max(1));
            items.dispatch(&mut pass, &self.gather, &b.gather);
            self.scan.encode(
                &mut pass,
                &b.offsets_scan,
                Groups::Direct(scan::blocks(n + 1) as u32),
            );
            items.dispatch(&mut pass, &self.emit, &b.emit);
            Groups::Direct(1).dispatch(&mut pass, &self.prepare, &b.prepare);
            self.sort.encode(
                &mut pass,
                &self.scan,
                &b.tile_sort,
                Groups::Indirect(&b.args, 0),
            );
            Groups::Indirect(&b.args, 12).dispatch(&mut pass, &self.ranges, &b.tile_ranges);
        }
        {
            let mut pass = phase(encoder, timestamps, 3);
            pass.set_pipeline(&self.rasterize);
            pass.set_bind_group(0, &b.rasterize, &[]);
            pass.dispatch_workgroups(b.tiles[0], b.tiles[1], 1);
        }
        if let Some(t) = timestamps {
            encoder.resolve_query_set(&t.set, 0..2 * PHASES.len() as u32, &t.resolve, 0);
        }
    }

    /// Renders `frames` frames from `camera_at(i)` the way a presenting player would (the queue
    /// drained every 16 frames) and returns wall-clock frames per second; fails if a frame needed
    /// more tile-splat pairs than `b` holds (render once with [`Renderer::render`] to size it).
    pub fn frames_per_second(
        &self,
        gpu: &Gpu,
        b: &RenderBuffers,
        frames: u32,
        camera_at: impl Fn(u32) -> Camera,
    ) -> Result<f64, RenderError> {
        let wait = || {
            gpu.device
                .poll(wgpu::PollType::wait_indefinitely())
                .map_err(|e| GpuError::Readback(e.to_string()))
        };
        wait()?;
        let start = std::time::Instant::now();
        for i in 0..frames {
            self.set_view(gpu, b, &camera_at(i), Vec3::ZERO)?;
            let mut encoder = gpu.device.create_command_encoder(&Default::default());
            self.encode(&mut encoder, b, None);
            gpu.queue.submit([encoder.finish()]);
            if i % 16 == 15 {
                wait()?;
            }
        }
        wait()?;
        let fps = frames as f64 / start.elapsed().as_secs_f64();
        let wanted = self.pairs_wanted(gpu, b)?;
        if wanted > b.capacity {
            return Err(RenderError::Overflowed {
                wanted,
                capacity: b.capacity,
            });
        }
        Ok(fps)
    }

    /// Tile-splat pairs the last render wanted (more than the capacity means it was cut short).
    pub fn pairs_wanted(&self, gpu: &Gpu, b: &RenderBuffers) -> Result<u32, GpuError> {
        let info = gpu.read(&b.tile_info, 12)?;
        Ok(u32::from_le_bytes(info[8..12].try_into().expect("4 bytes")))
    }

    /// Renders `gaussians` from `camera` and reads the image back, growing `buffers` (or making
    /// them) when the image size or the needed capacity changes. Images larger than one storage
    /// binding are rendered in horizontal strips (the principal point moves with each strip, so
    /// every pixel sees exactly the same math) and stitched.
    pub fn render(
        &self,
        gpu: &Gpu,
        gaussians: &GpuGaussians,
        buffers: &mut Option<RenderBuffers>,
        camera: &Camera,
        background: Vec3,
    ) -> Result<RenderedImage, RenderError> {
        camera.validate()?;
        let row_bytes = camera.width as u64 * 32;
        let total = row_bytes * camera.height as u64;
        if total > MAX_IMAGE_BYTES {
            return Err(GpuError::TooLarge {
                what: "the image",
                bytes: total,
                limit: MAX_IMAGE_BYTES,
            }
            .into());
        }
        let rows = (gpu.max_binding() / row_bytes).min(camera.height as u64) as u32;
        if rows == 0 {
            return Err(GpuError::TooLarge {
                what: "one image row",
                bytes: row_bytes,
                limit: gpu.max_binding(),
            }
            .into());
        }
        let frustum = camera.frustum_limits();
        if rows == camera.height {
            return self.render_whole(gpu, gaussians, buffers, camera, frustum, background);
        }
        let mut image = RenderedImage {
            width: camera.width,
            height: camera.height,
            rgba: Vec::with_capacity(camera.width as usize * camera.height as usize),
            aux: Vec::with_capacity(camera.width as usize * camera.height as usize),
        };
        for y0 in (0..camera.height).step_by(rows as usize) {
            let strip = Camera {
                cy: camera.cy - y0 as f64,
                height: rows.min(camera.height - y0),
                ..*camera
            };
            let part = self.render_whole(gpu, gaussians, buffers, &strip, frustum, background)?;
            image.rgba.extend(part.rgba);
            image.aux.extend(part.aux);
        }
        Ok(image)
    }

    fn render_whole(
        &self,
        gpu: &Gpu,
        gaussians: &GpuGaussians,
        buffers: &mut Option<RenderBuffers>,
        camera: &Camera,
        frustum: [f64; 2],
        background: Vec3,
    ) -> Result<RenderedImage, RenderError> {
        let fits = |b: &RenderBuffers| {
            b.size() == (camera.width, camera.height)
                && b.count == gaussians.count
                && b.sh_rest == gaussians.sh_rest
        };
        if !buffers.as_ref().is_some_and(fits) {
            let guess = (gaussians.count.saturating_mul(4)).max(1 << 16);
            *buffers = Some(self.buffers(gpu, gaussians, camera.width, camera.height, guess)?);
        }
        loop {
            let b = buffers.as_ref().expect("made above");
            self.set_view_in(gpu, b, camera, frustum, background)?;
            let mut encoder = gpu.device.create_command_encoder(&Default::default());
            self.encode(&mut encoder, b, None);
            gpu.queue.submit([encoder.finish()]);
            let wanted = self.pairs_wanted(gpu, b)?;
            if wanted <= b.capacity {
                return read_image(gpu, b);
            }
            let grown = (wanted as u64 * 5 / 4).min(gpu.max_binding() / PAIR_BYTES) as u32;
            if grown <= b.capacity {
                return Err(GpuError::TooLarge {
                    what: "the tile-splat pairs",
                    bytes: wanted as u64 * PAIR_BYTES,
                    limit: gpu.max_binding(),
                }
                .into());
            }
            *buffers = Some(self.buffers(gpu, gaussians, camera.width, camera.height, grown)?);
        }
    }
}

impl RenderBuffers {
    /// Copies the tile-splat pairs the render just encoded wanted into `readback`: more than
    /// [`RenderBuffers::capacity`] means crowded tiles lost splats, and the buffers should grow.
    pub fn copy_pairs_wanted(&self, encoder: &mut wgpu::CommandEncoder, readback: &Readback) {
        readback.copy(encoder, &self.tile_info, 8);
    }
}

impl Timestamps {
    /// Copies the phase times of the render just encoded into `readback` (of
    /// [`Timestamps::BYTES`]); [`Timestamps::millis`] reads them.
    pub fn copy(&self, encoder: &mut wgpu::CommandEncoder, readback: &Readback) {
        readback.copy(encoder, &self.resolve, 0);
    }

    /// Bytes of the phase times.
    pub const BYTES: u64 = 16 * PHASES.len() as u64;

    /// Milliseconds per phase from raw timestamps.
    pub fn millis(gpu: &Gpu, raw: &[u8]) -> [f64; 4] {
        let mut ticks = [0u64; 8];
        for (t, chunk) in ticks.iter_mut().zip(raw.chunks_exact(8)) {
            *t = u64::from_le_bytes(chunk.try_into().expect("8 bytes"));
        }
        let period = gpu.queue.get_timestamp_period() as f64;
        std::array::from_fn(|p| {
            ticks[2 * p + 1].saturating_sub(ticks[2 * p]) as f64 * period * 1e-6
        })
    }
}

/// Reads the image of the last render on `b`.
pub fn read_image(gpu: &Gpu, b: &RenderBuffers) -> Result<RenderedImage, RenderError> {
    let pixels = b.width as usize * b.height as usize;
    let raw = gpu.read(&b.image, pixels as u64 * 32)?;
    let all: &[[f32; 4]] = bytemuck::cast_slice(&raw);
    Ok(RenderedImage {
        width: b.width,
        height: b.height,
        rgba: all.iter().step_by(2).copied().collect(),
        aux: all.iter().skip(1).step_by(2).copied().collect(),
    })
}

/// Renders one frame on a fresh device-side copy: the simplest way to get a picture.
pub fn render_frame(
    gpu: &Gpu,
    renderer: &Renderer,
    frame: &GaussianFrame,
    camera: &Camera,
    background: DVec3,
) -> Result<RenderedImage, RenderError> {
    let gaussians = GpuGaussians::upload(gpu, frame)?;
    renderer.render(gpu, &gaussians, &mut None, camera, background.as_vec3())
}
