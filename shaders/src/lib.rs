//! Splatcast shaders: the WGSL projection and rasterisation kernels shared by the trainer and
//! the player, with a CPU reference of the same math.
//!
//! The kernels arrive with the renderer issue. Until then this crate only fixes where they will
//! live, so the workspace layout and dependency direction (`protocol` ← `shaders` ← `encoder` /
//! `player`) are in place.
