//! Exclusive prefix sums of u32 arrays on the GPU (`wgsl/scan.wgsl`).

use crate::kernels::{self, Groups, Source};

/// Elements one workgroup scans.
pub const SCAN_BLOCK: u64 = 2048;

/// The three scan pipelines.
pub(crate) struct Scan {
    reduce: wgpu::ComputePipeline,
    sums: wgpu::ComputePipeline,
    apply: wgpu::ComputePipeline,
    single: wgpu::ComputePipeline,
}

/// Bind groups of one scan: `info[1]` is the length, `data` is scanned in place, `sums` holds
/// one u32 per block.
pub(crate) struct ScanBindings {
    reduce: wgpu::BindGroup,
    sums: wgpu::BindGroup,
    apply: wgpu::BindGroup,
}

impl Scan {
    pub(crate) fn new(device: &wgpu::Device) -> Self {
        let module = Source::Scan.module(device);
        Self {
            reduce: kernels::pipeline(device, &module, "reduce"),
            sums: kernels::pipeline(device, &module, "scan_sums"),
            apply: kernels::pipeline(device, &module, "apply"),
            single: kernels::pipeline(device, &module, "scan_single"),
        }
    }

    pub(crate) fn bind(
        &self,
        device: &wgpu::Device,
        info: &wgpu::Buffer,
        data: &wgpu::Buffer,
        sums: &wgpu::Buffer,
    ) -> ScanBindings {
        let all = [(0, info), (1, data), (2, sums)];
        ScanBindings {
            reduce: kernels::bind(device, &self.reduce, &all),
            sums: kernels::bind(device, &self.sums, &[(0, info), (2, sums)]),
            apply: kernels::bind(device, &self.apply, &all),
        }
    }

    /// Binds a one-dispatch scan of a short array (up to a few times 10⁴ values).
    pub(crate) fn bind_single(
        &self,
        device: &wgpu::Device,
        info: &wgpu::Buffer,
        data: &wgpu::Buffer,
    ) -> wgpu::BindGroup {
        kernels::bind(device, &self.single, &[(0, info), (1, data)])
    }

    /// Scans a short array bound with [`Scan::bind_single`].
    pub(crate) fn encode_single(&self, pass: &mut wgpu::ComputePass, bind_group: &wgpu::BindGroup) {
        Groups::Direct(1).dispatch(pass, &self.single, bind_group);
    }

    /// Scans; `blocks` must be ⌈length / SCAN_BLOCK⌉ workgroups.
    pub(crate) fn encode(&self, pass: &mut wgpu::ComputePass, b: &ScanBindings, blocks: Groups) {
        blocks.dispatch(pass, &self.reduce, &b.reduce);
        Groups::Direct(1).dispatch(pass, &self.sums, &b.sums);
        blocks.dispatch(pass, &self.apply, &b.apply);
    }
}

/// Scan blocks (and block sums) needed for `len` elements.
pub(crate) fn blocks(len: u64) -> u64 {
    len.div_ceil(SCAN_BLOCK)
}
