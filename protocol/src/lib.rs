//! Splatcast's protocol crate: the Gaussian frame model, splat file formats, the plane layout
//! and quantisation, the AV1 plane codec adapters and the fragmented-MP4 container.
//!
//! Nothing here touches a GPU; the encoder and the player both build on it.

pub mod formats;
pub mod gaussian;

pub use gaussian::GaussianFrame;
pub mod atomic;
pub mod av1;
pub mod colmap;
pub mod container;
pub mod gop;
pub mod layout;
pub mod llff;
pub mod sequence;
pub mod stream;
pub mod transforms;
