//! Decoded planes → Gaussians on the GPU (`wgsl/unpack.wgsl`), so a player never rebuilds
//! Gaussians on the CPU: per GOP the side data is uploaded once ([`GpuGop`]), per frame only the
//! decoded 10-bit samples travel.

use bytemuck::{Pod, Zeroable};
use splatcast_protocol::av1::Picture;
use splatcast_protocol::gaussian::sh_rest_count;
use splatcast_protocol::gop::{Attribute, GopSide, Tiles};

use crate::gpu::{Gpu, GpuError};
use crate::kernels::{self, Groups, Source, groups_for};
use crate::renderer::GpuGaussians;

/// Why planes cannot be unpacked.
#[derive(Debug, thiserror::Error)]
pub enum UnpackError {
    /// The pictures do not match the side data.
    #[error("planes do not match the GOP's side data: {0}")]
    Mismatch(String),
    /// The GPU refused.
    #[error(transparent)]
    Gpu(#[from] GpuError),
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct Params {
    box_min: [f32; 3],
    count: u32,
    box_max: [f32; 3],
    channels: u32,
    stride: u32,
    sh_rest: u32,
    grid_width: u32,
    first: u32,
    offset: [f32; 3],
    pad: u32,
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct Channel {
    kind: u32,
    index: u32,
    origin: u32,
    row: u32,
    lo: f32,
    hi: f32,
    max_code: f32,
    pad: u32,
}

/// The order unpacked Gaussians take in the output buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Order {
    /// Coded (grid) order, as the CPU decode gives them.
    Coded,
    /// Bit-reversed grid order: every prefix is an even subsample of the scene, so a device
    /// with a Gaussian budget renders the first N and still sees all of it.
    Spread,
}

/// Where one stream's Gaussians go in a shared output buffer: the room view unpacks several
/// participants into one buffer, each moved to its own place, so one sort composites them all.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Placement {
    /// Index of its first Gaussian in the output.
    pub first: u32,
    /// Added to every position.
    pub offset: glam::Vec3,
}

/// Grid-order indices `0..n` in bit-reversed order (those ≥ `n` skipped): prefixes are
/// stratified over the whole range.
pub fn spread_order(n: usize) -> Vec<u32> {
    let bits = usize::BITS - n.saturating_sub(1).leading_zeros();
    (0..1usize << bits)
        .map(|i| {
            if bits == 0 {
                0
            } else {
                i.reverse_bits() >> (usize::BITS - bits)
            }
        })
        .filter(|&i| i < n)
        .map(|i| i as u32)
        .collect()
}

/// The unpack pipeline.
pub struct Unpacker {
    pipeline: wgpu::ComputePipeline,
}

/// One GOP's side data on the GPU, and the per-frame plane buffer it binds.
pub struct GpuGop {
    count: u32,
    /// Sample offset (u16 units) and size of each track's picture in `planes`.
    tracks: Vec<(usize, usize, usize)>,
    planes: wgpu::Buffer,
    plane_samples: usize,
    bind_group: wgpu::BindGroup,
}

fn attribute_code(a: Attribute) -> u32 {
    match a {
        Attribute::Position => 0,
        Attribute::Rotation => 1,
        Attribute::Scale => 2,
        Attribute::ColorOpacity => 3,
        Attribute::ShRest => 4,
    }
}

impl Unpacker {
    /// Compiles the kernel.
    pub fn new(gpu: &Gpu) -> Self {
        let module = Source::Unpack.module(&gpu.device);
        Self {
            pipeline: kernels::pipeline(&gpu.device, &module, "unpack"),
        }
    }

    /// Output buffer sized for `side`'s Gaussians.
    pub fn output(&self, gpu: &Gpu, side: &GopSide) -> Result<GpuGaussians, GpuError> {
        Self::output_for(
            gpu,
            side.keyframe_positions.len(),
            sh_rest_count(side.sh_degree) as u32,
        )
    }

    /// Output buffer for `count` Gaussians with `sh_rest` SH coefficients beyond the first
    /// (several streams placed side by side; a stream with fewer gets zeros).
    pub fn output_for(gpu: &Gpu, count: usize, sh_rest: u32) -> Result<GpuGaussians, GpuError> {
        let bytes = count as u64 * GpuGaussians::stride(sh_rest) as u64 * 4;
        gpu.check_binding("the Gaussians", bytes)?;
        Ok(GpuGaussians {
            buffer: gpu.storage("unpacked gaussians", bytes, wgpu::BufferUsages::COPY_SRC),
            // Fits: a binding holds far fewer than 2^32 records of at least 56 bytes.
            count: count as u32,
            sh_rest,
        })
    }

    /// Uploads `side` and binds it to `out` (from [`Unpacker::output`]), Gaussians in `order`
    /// at `placement`.
    pub fn prepare(
        &self,
        gpu: &Gpu,
        side: &GopSide,
        out: &GpuGaussians,
        order: Order,
        placement: Placement,
    ) -> Result<GpuGop, UnpackError> {
        let w = side.grid.width;
        let pixels: Vec<u32> = (0..w * side.grid.height)
            .filter(|&p| side.occupied(p))
            .map(|p| p as u32)
            .collect();
        let fits = placement.first as usize + pixels.len() <= out.count as usize;
        if pixels.len() != side.keyframe_positions.len() || !fits {
            return Err(UnpackError::Mismatch(
                "occupancy, keyframe positions and output disagree".into(),
            ));
        }
        if sh_rest_count(side.sh_degree) as u32 > out.sh_rest {
            return Err(UnpackError::Mismatch(format!(
                "SH degree {} does not fit the output",
                side.sh_degree
            )));
        }
        let record = |i: usize| {
            let (p, q) = (pixels[i], side.keyframe_positions[i]);
            [p, q[0] as u32 | (q[1] as u32) << 16, q[2] as u32]
        };
        let gop: Vec<u32> = match order {
            Order::Coded => (0..pixels.len()).flat_map(record).collect(),
            Order::Spread => spread_order(pixels.len())
                .into_iter()
                .flat_map(|i| record(i as usize))
                .collect(),
        };
        let (mut channels, mut tracks, mut at) = (Vec::new(), Vec::new(), 0usize);
        for t in &side.tracks {
            let tiles = Tiles::new(t.ranges.len(), side.grid);
            let (pw, ph) = tiles.picture_size();
            for (c, r) in t.ranges.iter().enumerate() {
                let (tx, ty) = tiles.origin(c);
                channels.push(Channel {
                    kind: attribute_code(t.attribute),
                    index: c as u32,
                    origin: (at + ty * pw + tx) as u32,
                    row: pw as u32,
                    lo: r.lo,
                    hi: r.hi,
                    max_code: ((1u32 << t.bit_depth) - 1) as f32,
                    pad: 0,
                });
            }
            tracks.push((at, pw, ph));
            at += (pw * ph).next_multiple_of(2);
        }
        let params = Params {
            box_min: side.box_min.to_array(),
            count: pixels.len() as u32,
            box_max: side.box_max.to_array(),
            channels: channels.len() as u32,
            stride: GpuGaussians::stride(out.sh_rest) as u32,
            sh_rest: out.sh_rest,
            grid_width: w as u32,
            first: placement.first,
            offset: placement.offset.to_array(),
            pad: 0,
        };
        gpu.check_binding("the decoded planes", at as u64 * 2)?;
        let device = &gpu.device;
        let uniform = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("unpack params"),
            size: std::mem::size_of::<Params>() as u64,
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        gpu.queue
            .write_buffer(&uniform, 0, bytemuck::bytes_of(&params));
        let gop_buffer = gpu.storage_with(
            "gop pixels",
            bytemuck::cast_slice(&gop),
            wgpu::BufferUsages::empty(),
        );
        let channel_buffer = gpu.storage_with(
            "gop channels",
            bytemuck::cast_slice(&channels),
            wgpu::BufferUsages::empty(),
        );
        let planes = gpu.storage("decoded planes", at as u64 * 2, wgpu::BufferUsages::empty());
        let bind_group = kernels::bind(
            device,
            &self.pipeline,
            &[
                (0, &uniform),
                (1, &planes),
                (2, &gop_buffer),
                (3, &channel_buffer),
                (4, &out.buffer),
            ],
        );
        Ok(GpuGop {
            count: pixels.len() as u32,
            tracks,
            planes,
            plane_samples: at,
            bind_group,
        })
    }

    /// Uploads one frame's pictures (one per track, in side-data order) and encodes the unpack
    /// into the output bound by [`Unpacker::prepare`].
    pub fn unpack(
        &self,
        gpu: &Gpu,
        encoder: &mut wgpu::CommandEncoder,
        gop: &GpuGop,
        pictures: &[&Picture],
    ) -> Result<(), UnpackError> {
        if pictures.len() != gop.tracks.len() {
            return Err(UnpackError::Mismatch(format!(
                "{} pictures for {} tracks",
                pictures.len(),
                gop.tracks.len()
            )));
        }
        let mut samples = vec![0u16; gop.plane_samples];
        for (pic, &(at, pw, ph)) in pictures.iter().zip(&gop.tracks) {
            if pic.width != pw || pic.height != ph || pic.samples.len() != pw * ph {
                return Err(UnpackError::Mismatch(format!(
                    "picture {}x{}, side data says {pw}x{ph}",
                    pic.width, pic.height
                )));
            }
            samples[at..at + pw * ph].copy_from_slice(&pic.samples);
        }
        gpu.queue
            .write_buffer(&gop.planes, 0, bytemuck::cast_slice(&samples));
        let mut pass = encoder.begin_compute_pass(&Default::default());
        Groups::Direct(groups_for(gop.count as u64)).dispatch(
            &mut pass,
            &self.pipeline,
            &gop.bind_group,
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::spread_order;

    #[test]
    fn spread_order_is_a_permutation_whose_prefixes_are_even() {
        for n in [0usize, 1, 2, 5, 1000, 1024, 1025] {
            let order = spread_order(n);
            let mut sorted = order.clone();
            sorted.sort_unstable();
            assert_eq!(sorted, (0..n as u32).collect::<Vec<_>>(), "n = {n}");
        }
        // The first quarter of 1000 covers every stretch of 8 consecutive indices once or twice.
        let quarter = &spread_order(1000)[..250];
        for block in 0..125 {
            let hits = quarter.iter().filter(|&&i| i as usize / 8 == block).count();
            assert!((1..=3).contains(&hits), "block {block}: {hits}");
        }
    }
}
