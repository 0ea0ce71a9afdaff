//! The wgpu device every kernel here runs on, with the limits the renderer asks for.
//!
//! The renderer fits [`wgpu::Limits::downlevel_defaults`] (what GLES 3.1 phones offer: four
//! storage buffers per stage, 16 KiB of workgroup memory, no subgroups) with one exception:
//! storage buffer binding and buffer sizes are raised to what the adapter offers, because a
//! million Gaussians with degree-3 SH need 236 MB in one binding. The device still works at the
//! downlevel 128 MiB; scenes that do not fit are refused with [`GpuError::TooLarge`]. The
//! trainer's backward pass binds 6 storage buffers per stage; up to 8 are requested where the
//! adapter offers them (every desktop GPU), and training refuses devices with fewer.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, mpsc};

/// Why the GPU cannot do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum GpuError {
    /// No adapter on the requested backends.
    #[error("no GPU adapter found for backends {0} (set WGPU_BACKEND=gl or vulkan)")]
    NoAdapter(String),
    /// The adapter refused the device.
    #[error("cannot open the GPU device: {0}")]
    Device(String),
    /// The adapter lacks compute shaders or indirect dispatch.
    #[error("adapter {0} lacks compute shaders or indirect dispatch")]
    Unsupported(String),
    /// Reading results back failed.
    #[error("reading GPU results back failed: {0}")]
    Readback(String),
    /// A buffer would exceed the device's binding size.
    #[error("{what} needs {bytes} bytes in one buffer; this device allows {limit}")]
    TooLarge {
        /// Which buffer.
        what: &'static str,
        /// Bytes needed.
        bytes: u64,
        /// The device limit.
        limit: u64,
    },
}

/// An open device and queue, plus what the adapter is.
pub struct Gpu {
    /// The device.
    pub device: wgpu::Device,
    /// Its queue.
    pub queue: wgpu::Queue,
    /// Adapter name, backend and driver, for reports.
    pub adapter: wgpu::AdapterInfo,
    /// Whether GPU timestamps are available (benchmarks split time by phase with them).
    pub timestamps: bool,
    /// Whether kernels may use subgroup operations (the trainer's backward pass sums over
    /// subgroups when it can); benchmarks clear it to measure the fallback.
    pub subgroups: bool,
    /// Kernels compiled once for the device's life.
    pub(crate) pipelines: crate::kernels::PipelineCache,
}

impl Gpu {
    /// Opens the first adapter on the backends named by `WGPU_BACKEND`; otherwise on Vulkan,
    /// Metal or DX12, and on GL only when none of those has an adapter.
    pub fn new() -> Result<Self, GpuError> {
        match wgpu::Backends::from_env() {
            Some(backends) => Self::with_backends(backends),
            None => Self::with_backends(wgpu::Backends::PRIMARY)
                .or_else(|_| Self::with_backends(wgpu::Backends::GL)),
        }
    }

    /// Opens the first adapter on `backends` (high performance preferred).
    pub fn with_backends(backends: wgpu::Backends) -> Result<Self, GpuError> {
        let mut desc = wgpu::InstanceDescriptor::new_without_display_handle();
        desc.backends = backends;
        let instance = wgpu::Instance::new(desc);
        let adapter = pollster::block_on(instance.request_adapter(&wgpu::RequestAdapterOptions {
            power_preference: wgpu::PowerPreference::HighPerformance,
            ..Default::default()
        }))
        .map_err(|e| GpuError::NoAdapter(format!("{backends:?} ({e})")))?;
        Self::from_adapter(&adapter)
    }

    /// Opens a device on `adapter` with the renderer's limits.
    pub fn from_adapter(adapter: &wgpu::Adapter) -> Result<Self, GpuError> {
        let info = adapter.get_info();
        let flags = adapter.get_downlevel_capabilities().flags;
        if !flags.contains(
            wgpu::DownlevelFlags::COMPUTE_SHADERS | wgpu::DownlevelFlags::INDIRECT_EXECUTION,
        ) {
            return Err(GpuError::Unsupported(info.name));
        }
        let offered = adapter.limits();
        // The renderer needs 4 storage buffers per stage; the trainer's backward pass 6 (desktop
        // GPUs offer at least 8): ask for up to 8 when the adapter has them.
        let required_limits = wgpu::Limits {
            max_storage_buffer_binding_size: offered.max_storage_buffer_binding_size,
            max_buffer_size: offered.max_buffer_size,
            max_storage_buffers_per_shader_stage: offered
                .max_storage_buffers_per_shader_stage
                .clamp(4, 8),
            ..wgpu::Limits::downlevel_defaults()
        }
        .using_resolution(offered.clone())
        .using_alignment(offered);
        let timestamps = adapter.features().contains(wgpu::Features::TIMESTAMP_QUERY);
        let subgroups = adapter.features().contains(wgpu::Features::SUBGROUP);
        let mut required_features = wgpu::Features::empty();
        required_features.set(wgpu::Features::TIMESTAMP_QUERY, timestamps);
        required_features.set(wgpu::Features::SUBGROUP, subgroups);
        let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
            label: Some("splatcast"),
            required_features,
            required_limits,
            ..Default::default()
        }))
        .map_err(|e| GpuError::Device(e.to_string()))?;
        Ok(Self {
            device,
            queue,
            adapter: info,
            timestamps,
            subgroups,
            pipelines: Default::default(),
        })
    }

    /// Wraps a device someone else opened (a game engine's, say), so the kernels run on it;
    /// what the device offers decides timestamps and subgroups.
    pub fn from_device(
        device: wgpu::Device,
        queue: wgpu::Queue,
        adapter: wgpu::AdapterInfo,
    ) -> Self {
        let features = device.features();
        Self {
            timestamps: features.contains(wgpu::Features::TIMESTAMP_QUERY),
            subgroups: features.contains(wgpu::Features::SUBGROUP),
            device,
            queue,
            adapter,
            pipelines: Default::default(),
        }
    }

    /// Opens the first adapter on `backends` with exactly [`wgpu::Limits::downlevel_defaults`]
    /// and no optional features: what a GLES 3.1 phone offers, for testing the player's path
    /// on desktop machines.
    pub fn downlevel(backends: wgpu::Backends) -> Result<Self, GpuError> {
        let mut desc = wgpu::InstanceDescriptor::new_without_display_handle();
        desc.backends = backends;
        let instance = wgpu::Instance::new(desc);
        let adapter = pollster::block_on(instance.request_adapter(&Default::default()))
            .map_err(|e| GpuError::NoAdapter(format!("{backends:?} ({e})")))?;
        let offered = adapter.limits();
        let (device, queue) = pollster::block_on(
            adapter.request_device(&wgpu::DeviceDescriptor {
                label: Some("splatcast downlevel"),
                required_limits: wgpu::Limits::downlevel_defaults()
                    .using_resolution(offered.clone())
                    .using_alignment(offered),
                ..Default::default()
            }),
        )
        .map_err(|e| GpuError::Device(e.to_string()))?;
        Ok(Self::from_device(device, queue, adapter.get_info()))
    }

    /// One line naming the adapter, for logs and benchmark tables.
    pub fn describe(&self) -> String {
        format!(
            "{} ({:?}, {})",
            self.adapter.name, self.adapter.backend, self.adapter.driver_info
        )
    }

    /// Largest storage binding in bytes.
    pub fn max_binding(&self) -> u64 {
        self.device.limits().max_storage_buffer_binding_size
    }

    /// Fails with [`GpuError::TooLarge`] if `bytes` cannot be one storage binding.
    pub fn check_binding(&self, what: &'static str, bytes: u64) -> Result<(), GpuError> {
        let limit = self.max_binding().min(self.device.limits().max_buffer_size);
        if bytes > limit {
            return Err(GpuError::TooLarge { what, bytes, limit });
        }
        Ok(())
    }

    /// A storage buffer of at least `bytes` (never zero-sized, so it can always be bound).
    pub fn storage(&self, label: &str, bytes: u64, extra: wgpu::BufferUsages) -> wgpu::Buffer {
        self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size: bytes.max(16).next_multiple_of(4),
            usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST | extra,
            mapped_at_creation: false,
        })
    }

    /// A storage buffer holding `data` (a whole number of 4-byte words).
    pub fn storage_with(
        &self,
        label: &str,
        data: &[u8],
        extra: wgpu::BufferUsages,
    ) -> wgpu::Buffer {
        let buffer = self.storage(label, data.len() as u64, extra);
        self.queue.write_buffer(&buffer, 0, data);
        buffer
    }

    /// Copies `bytes` bytes from the start of `buffer` (which needs `COPY_SRC`) back to the CPU,
    /// waiting for all submitted work.
    pub fn read(&self, buffer: &wgpu::Buffer, bytes: u64) -> Result<Vec<u8>, GpuError> {
        let size = bytes.next_multiple_of(4).max(4);
        let staging = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("readback"),
            size,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let mut encoder = self.device.create_command_encoder(&Default::default());
        encoder.copy_buffer_to_buffer(buffer, 0, &staging, 0, size);
        self.queue.submit([encoder.finish()]);
        let (tx, rx) = mpsc::channel();
        staging.slice(..).map_async(wgpu::MapMode::Read, move |r| {
            let _ = tx.send(r);
        });
        self.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| GpuError::Readback(e.to_string()))?;
        rx.recv()
            .map_err(|e| GpuError::Readback(e.to_string()))?
            .map_err(|e| GpuError::Readback(e.to_string()))?;
        let data = staging.slice(..).get_mapped_range().to_vec();
        staging.unmap();
        Ok(data[..bytes as usize].to_vec())
    }
}

/// A small GPU → CPU copy that never waits: a presenting app cannot block its frame on a
/// readback, so it copies after a render, maps once that render has been submitted (the next
/// frame), and picks the bytes up a frame or two later. One copy is in flight at a time.
pub struct Readback {
    staging: wgpu::Buffer,
    bytes: u64,
    state: Arc<AtomicU32>,
    data: Arc<Mutex<Vec<u8>>>,
}

const IDLE: u32 = 0;
const COPIED: u32 = 1;
const MAPPING: u32 = 2;
const READY: u32 = 3;

impl Readback {
    /// A readback of `bytes` bytes (a multiple of 4).
    pub fn new(gpu: &Gpu, bytes: u64, label: &str) -> Self {
        Self {
            staging: gpu.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some(label),
                size: bytes,
                usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            }),
            bytes,
            state: Arc::new(AtomicU32::new(IDLE)),
            data: Arc::new(Mutex::new(Vec::new())),
        }
    }

    /// Call once per frame before encoding: maps what an earlier frame copied (submitted
    /// since) and returns the bytes of a finished readback, if one finished.
    pub fn poll(&self) -> Option<Vec<u8>> {
        match self.state.load(Ordering::Acquire) {
            COPIED => {
                self.state.store(MAPPING, Ordering::Release);
                let (state, data, staging) =
                    (self.state.clone(), self.data.clone(), self.staging.clone());
                self.staging
                    .slice(..)
                    .map_async(wgpu::MapMode::Read, move |result| {
                        if result.is_ok() {
                            let bytes = staging.slice(..).get_mapped_range().to_vec();
                            staging.unmap();
                            *data.lock().unwrap_or_else(|e| e.into_inner()) = bytes;
                            state.store(READY, Ordering::Release);
                        } else {
                            state.store(IDLE, Ordering::Release);
                        }
                    });
                None
            }
            READY => {
                let bytes =
                    std::mem::take(&mut *self.data.lock().unwrap_or_else(|e| e.into_inner()));
                self.state.store(IDLE, Ordering::Release);
                Some(bytes)
            }
            _ => None,
        }
    }

    /// Copies from `source` at `offset` unless a readback is still in flight.
    pub fn copy(&self, encoder: &mut wgpu::CommandEncoder, source: &wgpu::Buffer, offset: u64) {
        if self.state.load(Ordering::Acquire) == IDLE {
            encoder.copy_buffer_to_buffer(source, offset, &self.staging, 0, self.bytes);
            self.state.store(COPIED, Ordering::Release);
        }
    }
}
