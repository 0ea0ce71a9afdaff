//! Splatcast player: a bevy plugin that plays volumetric video, and the app built on it.
//!
//! - [`source`]: where coded frames come from (files through one trait), [`vod`]: a stored
//!   stream served on demand over MoQ, [`live`]: a live MoQ broadcast decoded frame by frame ([`ladder`]: its rendition choice), [`room`]: everyone in a room, [`decode`]: the decode worker and its bounded queue,
//!   [`playback`]: the clock.
//! - [`render`]: the GPU half inside bevy's render graph (unpack → project → sort → rasterize
//!   → present), [`app`]: the plugin, camera controls and lifecycle, [`controls`]: orbit view
//!   and touch gestures, [`overlay`]: figures and the timeline bar.
//! - [`headless`]: the same pipeline into images, for PNG sequences and timings;
//!   [`window`]: the app in a window, on desktops and phones.

pub mod app;
pub mod controls;
pub mod decode;
pub mod headless;
pub mod ladder;
pub mod live;
pub mod overlay;
pub mod playback;
pub mod render;
pub mod room;
pub mod source;
pub mod stage;
pub mod vod;
pub mod window;

pub use app::{Budget, Player, PlayerOptions, PlayerPlugin, splat_camera};
pub use live::LiveSource;
pub use room::RoomSource;
pub use source::{DecodedGop, FileSource, PlaneSource, Source, SourceError};
pub use vod::VodSource;
