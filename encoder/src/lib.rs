//! Splatcast encoder: turns sequences of Gaussian frames into Splatcast streams.
//!
//! Two ways in: sequences of already-trained Gaussian frames ([`SequenceEncoder`]), and
//! multi-view video learnt into a stream ([`learn`]: keyframes trained on the GPU, residual
//! frames learnt against the decoded previous frame with quantisation in the loop).

pub mod correspond;
pub mod datasets;
pub mod demo;
pub mod encode;
pub mod init;
pub mod learn;
pub mod live;
pub mod metrics;
pub mod multiview;
pub mod planned;
pub mod plot;
pub mod presets;
pub mod quality;
pub mod residual;
pub mod scene;
pub mod stages;
pub mod train;
pub mod views;

pub use encode::{
    EncodeError, EncodeOptions, Encoded, GopReport, SequenceEncoder, kept_gaussians, stream_layout,
};
pub use presets::Quality;
