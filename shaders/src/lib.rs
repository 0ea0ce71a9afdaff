//! Splatcast shaders: the projection and rasterisation math shared by the trainer and the player.
//!
//! This crate starts with the CPU reference of that math ([`reference`]), in f64, which the WGSL
//! kernels (renderer issue) are tested against: EWA projection of 3D Gaussians, SH colour of
//! degree 0–3, depth-sorted front-to-back alpha compositing with early termination.

pub mod camera;
pub mod reference;
pub mod sh;

pub use camera::{Camera, CameraError};
