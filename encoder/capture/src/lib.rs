//! Synthetic multi-view capture: an animated glTF model rendered by bevy from a rig of virtual
//! cameras into the data sets trainers read, with the ground truth a real stage lacks.
//!
//! - [`capture`]: plays the model's clip frame by frame and renders every camera (the scene
//!   half, in [`scene`]'s types),
//! - [`rig`]: rings and domes of cameras looking at the subject,
//! - [`files`]: the writers (N3DV/LLFF frame folders and `poses_bounds.npy`, nerfstudio
//!   `transforms.json` per frame, masks, joint positions).
//!
//! It lives apart from the player so that the player (and the phone builds) does not compile
//! glTF loading, PBR materials and animation, which only the capture needs.

pub mod files;
pub mod rig;
mod scene;

pub use scene::{Background, CaptureError, CaptureOptions, CaptureReport, RigSpec, capture};
