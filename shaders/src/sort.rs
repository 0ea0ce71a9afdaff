//! Stable GPU radix sort of (u32 key, u32 value) pairs (`wgsl/sort.wgsl`), 4 bits per pass.

use wgpu::util::DeviceExt;

use crate::kernels::{self, Groups, Source};
use crate::scan::Scan;

/// Pairs one workgroup sorts per pass.
pub const SORT_BLOCK: u64 = 2048;
/// Digit bits per pass.
const RADIX_BITS: u32 = 4;
/// Uniform offsets must be 256-byte aligned: one slot per pass shift.
const SHIFT_SLOT: u64 = 256;

/// Sort pipelines and the per-pass shift uniforms.
pub(crate) struct RadixSort {
    count: wgpu::ComputePipeline,
    scatter: wgpu::ComputePipeline,
    shifts: wgpu::Buffer,
}

/// Everything one sort of a fixed set of buffers needs.
pub(crate) struct SortBindings {
    passes: Vec<(wgpu::BindGroup, wgpu::BindGroup)>,
    scan: wgpu::BindGroup,
}

impl SortBindings {
    /// Whether the sorted pairs end in the second buffer (odd pass count).
    pub(crate) fn result_in_second(&self) -> bool {
        self.passes.len() % 2 == 1
    }
}

impl RadixSort {
    pub(crate) fn new(device: &wgpu::Device) -> Self {
        let module = Source::Sort.module(device);
        let mut shifts = vec![0u8; (SHIFT_SLOT * 8) as usize];
        for pass in 0..8u32 {
            let at = (pass as u64 * SHIFT_SLOT) as usize;
            shifts[at..at + 4].copy_from_slice(&(pass * RADIX_BITS).to_le_bytes());
        }
        Self {
            count: kernels::pipeline(device, &module, "count"),
            scatter: kernels::pipeline(device, &module, "scatter"),
            shifts: device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some("sort shifts"),
                contents: &shifts,
                usage: wgpu::BufferUsages::UNIFORM,
            }),
        }
    }

    /// Binds a sort of the low `bits` key bits of pairs in `a` (ping-ponging through `b`);
    /// `info` holds [pair count, 16 · blocks], `hist` 16 u32 per block.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn bind(
        &self,
        device: &wgpu::Device,
        scan: &Scan,
        info: &wgpu::Buffer,
        a: &wgpu::Buffer,
        b: &wgpu::Buffer,
        hist: &wgpu::Buffer,
        bits: u32,
    ) -> SortBindings {
        let passes = bits.div_ceil(RADIX_BITS).clamp(1, 8);
        let passes = (0..passes)
            .map(|p| {
                let (src, dst) = if p % 2 == 0 { (a, b) } else { (b, a) };
                let shift = wgpu::BindGroupEntry {
                    binding: 0,
                    resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                        buffer: &self.shifts,
                        offset: p as u64 * SHIFT_SLOT,
                        size: wgpu::BufferSize::new(16),
                    }),
                };
                let group = |pipeline: &wgpu::ComputePipeline, with_dst: bool| {
                    let mut entries = vec![
                        shift.clone(),
                        wgpu::BindGroupEntry {
                            binding: 1,
                            resource: info.as_entire_binding(),
                        },
                        wgpu::BindGroupEntry {
                            binding: 2,
                            resource: src.as_entire_binding(),
                        },
                        wgpu::BindGroupEntry {
                            binding: 3,
                            resource: hist.as_entire_binding(),
                        },
                    ];
                    if with_dst {
                        entries.push(wgpu::BindGroupEntry {
                            binding: 4,
                            resource: dst.as_entire_binding(),
                        });
                    }
                    device.create_bind_group(&wgpu::BindGroupDescriptor {
                        label: Some("sort pass"),
                        layout: &pipeline.get_bind_group_layout(0),
                        entries: &entries,
                    })
                };
                (group(&self.count, false), group(&self.scatter, true))
            })
            .collect();
        SortBindings {
            passes,
            scan: scan.bind_single(device, info, hist),
        }
    }

    /// Encodes every pass; `blocks` covers the pairs (⌈n / SORT_BLOCK⌉ workgroups).
    pub(crate) fn encode(
        &self,
        pass: &mut wgpu::ComputePass,
        scan: &Scan,
        b: &SortBindings,
        blocks: Groups,
    ) {
        for (count, scatter) in &b.passes {
            blocks.dispatch(pass, &self.count, count);
            scan.encode_single(pass, &b.scan);
            blocks.dispatch(pass, &self.scatter, scatter);
        }
    }
}
