//! Splatcast encoder: turns sequences of Gaussian frames into Splatcast streams.
//!
//! The learned dynamic encoder (keyframe training, quantisation-aware residuals) builds on this
//! crate; today it encodes sequences of already-trained frames.

pub mod correspond;
pub mod datasets;
pub mod demo;
pub mod encode;
pub mod init;
pub mod metrics;
pub mod plot;
pub mod presets;
pub mod quality;
pub mod scene;
pub mod train;
pub mod views;

pub use encode::{EncodeError, EncodeOptions, Encoded, GopReport, SequenceEncoder, stream_layout};
pub use presets::Quality;
