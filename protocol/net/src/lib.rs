//! Splatcast over Media over QUIC (moq-lite on quinn): the transport half of the protocol crate.
//!
//! The mapping, the same for live publishers and files served on demand:
//! - a broadcast per publisher at `rooms/<room>/<participant>`;
//! - a `catalog.json` track (hang's catalog): each AV1 plane track as a video rendition in the
//!   CMAF container with its own init segment, and our layout (the side-data track and its
//!   init segment) in the `splatcast` extension field;
//! - one MoQ track per plane track plus one for the side data, carrying our CMAF chunks
//!   unchanged: **one MoQ group per GOP** (the same sequence on every track) and **one MoQ frame
//!   per video frame** (a one-track `moof`+`mdat`), so live latency is a frame, not a GOP.
//!
//! The protocol logic that is ours (chunking, GOP assembly) is sans-IO in
//! `splatcast_protocol::stream`; this crate binds it to moq-net sessions over QUIC with TLS:
//! raw QUIC (`moq://host:port/path`) and WebTransport (`https://host:port/path`).

mod address;
pub mod auth;
mod catalog;
mod connect;
mod error;
pub mod impair;
mod publish;
mod relay;
mod room;
mod rooms;
mod server;
mod subscribe;
mod tls;
pub mod token;
mod vod;

pub use address::{Address, Transport};
pub use catalog::{GopIndex, Rendition, StreamCatalog};
pub use connect::{connect, refused, stay_connected, watch, with_backoff};
pub use error::NetError;
pub use publish::BroadcastWriter;
pub use relay::{Relay, RelayConfig, RelayRooms};
pub use room::{RoomChange, RoomWatcher, watch_room};
pub use subscribe::{
    Arrival, Early, Subscription, subscribe, subscribe_frames, subscribe_rendition, track_frames,
};
pub use tls::{Fingerprint, Identity, Trust};
pub use vod::VodServer;

/// Re-exported so users of this crate name moq-net's types without depending on it directly.
pub use moq_net;

/// Installs ring as the process's rustls crypto provider (call once, early; repeated calls are
/// harmless). Everything here is built on ring, so no second provider is compiled in.
pub fn install_crypto() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Runs a moq-net driver (sessions and origins are driven, never self-spawning) on tokio.
fn spawn_driver<D: moq_net::time::Driver + Send + 'static>(driver: D) {
    tokio::spawn(async move {
        let err = moq_net::time::run(driver).await;
        tracing::debug!(%err, "moq driver ended");
    });
}
