//! Splatcast shaders: the projection and rasterisation math shared by the trainer and the player.
//!
//! The WGSL kernels (`src/wgsl/`) project 3D Gaussians with EWA splatting, evaluate SH of degree
//! 0–3, sort by depth and bin into 16×16 tiles with a GPU radix sort, and composite each tile front
//! to back with early termination. [`reference`] is the same math in f64 on the CPU; tests hold
//! the GPU to it. Everything runs on wgpu's Vulkan and GL backends within
//! `wgpu::Limits::downlevel_defaults()` (see [`gpu`] for the one limit raised).

pub mod backward;
pub mod camera;
pub mod gpu;
mod kernels;
pub mod loss;
pub mod metrics;
pub mod optimizer;
pub mod orbit;
pub mod posed;
pub mod present;
pub mod reference;
pub mod renderer;
pub mod residual;
mod scan;
pub mod sh;
mod sort;
pub mod synthetic;
pub mod unpack;

pub use camera::{Camera, CameraError};
pub use gpu::{Gpu, GpuError, Readback};
pub use renderer::{
    GpuGaussians, RenderBuffers, RenderError, RenderedImage, Renderer, render_frame,
};
