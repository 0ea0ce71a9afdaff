//! Building compute pipelines from the WGSL sources and binding buffers to them.

/// Shared declarations and projection math, prepended to every kernel that sees splats.
const SPLAT: &str = include_str!("wgsl/splat.wgsl");
/// Record reading and SH colour, for kernels with a `gaussians` binding.
const RECORD: &str = include_str!("wgsl/record.wgsl");
/// The backward kernels, completed by one of the `accumulate_*.wgsl` strategies.
const BACKWARD: &str = include_str!("wgsl/backward.wgsl");

/// A WGSL source of this crate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Source {
    Project,
    Bin,
    Rasterize,
    Sort,
    Scan,
    Unpack,
    Loss,
    /// The backward pass, accumulating with workgroup atomics only.
    Backward,
    /// The backward pass, summing over subgroups first (devices with `Features::SUBGROUP`).
    BackwardSubgroups,
    Adam,
    /// Residual frames: gates, rate term, quantised composition.
    Residual,
    /// The player's full-screen pass from the rendered image to a colour target.
    Present,
}

impl Source {
    fn text(self) -> String {
        match self {
            Source::Project => format!("{SPLAT}\n{RECORD}\n{}", include_str!("wgsl/project.wgsl")),
            Source::Bin => format!("{SPLAT}\n{}", include_str!("wgsl/bin.wgsl")),
            Source::Rasterize => format!("{SPLAT}\n{}", include_str!("wgsl/rasterize.wgsl")),
            Source::Sort => include_str!("wgsl/sort.wgsl").to_owned(),
            Source::Scan => include_str!("wgsl/scan.wgsl").to_owned(),
            Source::Unpack => include_str!("wgsl/unpack.wgsl").to_owned(),
            Source::Loss => include_str!("wgsl/loss.wgsl").to_owned(),
            Source::Adam => format!("{SPLAT}\n{}", include_str!("wgsl/adam.wgsl")),
            Source::Residual => format!("{SPLAT}\n{}", include_str!("wgsl/residual.wgsl")),
            Source::Present => include_str!("wgsl/present.wgsl").to_owned(),
            Source::Backward => format!(
                "{SPLAT}\n{RECORD}\n{}\n{BACKWARD}",
                include_str!("wgsl/accumulate_atomic.wgsl")
            ),
            Source::BackwardSubgroups => format!(
                "{SPLAT}\n{RECORD}\n{}\n{BACKWARD}",
                include_str!("wgsl/accumulate_subgroup.wgsl")
            ),
        }
    }

    /// Compiles the source.
    pub(crate) fn module(self, device: &wgpu::Device) -> wgpu::ShaderModule {
        device.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some(&format!("{self:?}")),
            source: wgpu::ShaderSource::Wgsl(self.text().into()),
        })
    }
}

/// A compute pipeline for `entry` of `module`, with the layout derived from what it uses.
pub(crate) fn pipeline(
    device: &wgpu::Device,
    module: &wgpu::ShaderModule,
    entry: &str,
) -> wgpu::ComputePipeline {
    device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
        label: Some(entry),
        layout: None,
        module,
        entry_point: Some(entry),
        compilation_options: Default::default(),
        cache: None,
    })
}

/// Compute pipelines compiled on one device, kept for reuse: objects made per frame (a
/// residual frame's kernels, its optimiser) would otherwise compile their shaders again every
/// frame — each a WGSL → driver compile of tens to hundreds of milliseconds.
#[derive(Default)]
pub(crate) struct PipelineCache(
    std::sync::Mutex<std::collections::HashMap<(Source, &'static str), wgpu::ComputePipeline>>,
);

impl PipelineCache {
    /// The pipeline for `entry` of `source`, compiled on first use.
    pub(crate) fn get(
        &self,
        device: &wgpu::Device,
        source: Source,
        entry: &'static str,
    ) -> wgpu::ComputePipeline {
        let mut cache = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(pipeline) = cache.get(&(source, entry)) {
            return pipeline.clone();
        }
        let pipeline = pipeline(device, &source.module(device), entry);
        cache.insert((source, entry), pipeline.clone());
        pipeline
    }
}

/// A bind group for `pipeline`'s group 0 from whole buffers at the given bindings.
pub(crate) fn bind(
    device: &wgpu::Device,
    pipeline: &wgpu::ComputePipeline,
    buffers: &[(u32, &wgpu::Buffer)],
) -> wgpu::BindGroup {
    let entries: Vec<wgpu::BindGroupEntry> = buffers
        .iter()
        .map(|(binding, buffer)| wgpu::BindGroupEntry {
            binding: *binding,
            resource: buffer.as_entire_binding(),
        })
        .collect();
    device.create_bind_group(&wgpu::BindGroupDescriptor {
        label: None,
        layout: &pipeline.get_bind_group_layout(0),
        entries: &entries,
    })
}

/// How many workgroups a dispatch runs: known on the CPU, or written by an earlier kernel.
#[derive(Clone, Copy)]
pub(crate) enum Groups<'a> {
    /// A count known when encoding.
    Direct(u32),
    /// Three u32 at this byte offset of an indirect-arguments buffer.
    Indirect(&'a wgpu::Buffer, u64),
}

impl Groups<'_> {
    /// Dispatches `pipeline` with `bind_group` on `pass`.
    pub(crate) fn dispatch(
        self,
        pass: &mut wgpu::ComputePass,
        pipeline: &wgpu::ComputePipeline,
        bind_group: &wgpu::BindGroup,
    ) {
        pass.set_pipeline(pipeline);
        pass.set_bind_group(0, bind_group, &[]);
        match self {
            Groups::Direct(n) => {
                let (x, y) = split_groups(n);
                pass.dispatch_workgroups(x, y, 1);
            }
            Groups::Indirect(buffer, offset) => pass.dispatch_workgroups_indirect(buffer, offset),
        }
    }
}

/// Most workgroups per dimension every device allows.
pub(crate) const MAX_GROUPS: u32 = 65_535;

/// Splits `n` workgroups into a 2D grid within [`MAX_GROUPS`] per side; kernels recover the flat
/// index as `x + y · groups.x · 256` and skip the excess.
pub(crate) fn split_groups(n: u32) -> (u32, u32) {
    if n <= MAX_GROUPS {
        (n, 1)
    } else {
        (MAX_GROUPS, n.div_ceil(MAX_GROUPS))
    }
}

/// Workgroups of 256 invocations that cover `n` items.
pub(crate) fn groups_for(n: u64) -> u32 {
    n.div_ceil(256) as u32
}
