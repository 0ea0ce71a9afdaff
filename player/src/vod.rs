//! A stored stream served on demand over MoQ (`splatcast serve`): the catalog's GOP index gives
//! the timeline, and each GOP is one MoQ FETCH per track — a seek costs a round trip plus the
//! GOP's transfer. It is a [`PlaneSource`] like a file, so playback, seeking and looping are
//! the file's.

use std::time::Duration;

use splatcast_net::{Address, GopIndex, NetError, StreamCatalog, Trust, install_crypto, moq_net};
use splatcast_protocol::av1::{PlaneDecoder, Rav1dDecoder};
use splatcast_protocol::gop::GopSide;
use splatcast_protocol::stream::{GopAssembler, StreamError, TrackSet};

use crate::source::{DecodedGop, PlaneSource, SourceError};

/// Longest wait for one GOP.
const FETCH_TIMEOUT: Duration = Duration::from_secs(20);

/// A broadcast at `vod/<name>` with a GOP index.
pub struct VodSource {
    runtime: tokio::runtime::Runtime,
    _session: moq_net::Session,
    broadcast: moq_net::broadcast::Consumer,
    catalog: StreamCatalog,
    tracks: TrackSet,
    index: GopIndex,
    decoders: Vec<Box<dyn PlaneDecoder>>,
    first_side: Option<GopSide>,
}

impl VodSource {
    /// Connects, reads the catalog (refused when it has no GOP index: a live broadcast) and
    /// fetches the first GOP's side data for the scene's extent.
    pub fn open(address: &Address, trust: Trust) -> Result<Self, SourceError> {
        install_crypto();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?;
        let (session, broadcast, catalog) = runtime.block_on(async {
            tokio::time::timeout(FETCH_TIMEOUT, async {
                let (session, broadcast) = splatcast_net::watch(address, &trust).await?;
                let catalog = StreamCatalog::read(&broadcast).await?;
                Ok::<_, NetError>((session, broadcast, catalog))
            })
            .await
            .map_err(|_| SourceError::Silent(FETCH_TIMEOUT))?
            .map_err(SourceError::from)
        })?;
        let index = catalog.index.clone().ok_or_else(|| {
            SourceError::Net(NetError::NotSplatcast(
                "a live broadcast, not a stored stream (no GOP index)".into(),
            ))
        })?;
        let tracks = TrackSet::of(&catalog.movie)?;
        let mut source = Self {
            runtime,
            _session: session,
            broadcast,
            decoders: tracks
                .video
                .iter()
                .map(|_| Box::new(Rav1dDecoder::new(1)) as Box<dyn PlaneDecoder>)
                .collect(),
            catalog,
            tracks,
            index,
            first_side: None,
        };
        let first = source.fetch(0)?;
        source.first_side = Some(source.tracks.side_of(&first.fragment)?);
        Ok(source)
    }

    /// Fetches GOP `gop` on every track at once and joins it.
    fn fetch(
        &mut self,
        gop: usize,
    ) -> Result<splatcast_protocol::stream::AssembledGop, SourceError> {
        let sequence = gop as u64;
        let names: Vec<String> = self.catalog.tracks.iter().map(|(_, n)| n.clone()).collect();
        let broadcast = self.broadcast.clone();
        let chunks = self.runtime.block_on(async move {
            // Every track's fetch at once; chunks carry their track, so order does not matter.
            let mut fetches = tokio::task::JoinSet::new();
            for name in names {
                let broadcast = broadcast.clone();
                fetches.spawn(async move {
                    let track = broadcast.track(&name)?;
                    let mut group = track.fetch_group(sequence, None).await?;
                    let mut chunks = Vec::new();
                    while let Some(frame) = group.read_frame().await? {
                        chunks.push(frame.payload);
                    }
                    Ok::<_, NetError>(chunks)
                });
            }
            tokio::time::timeout(FETCH_TIMEOUT, fetches.join_all())
                .await
                .map_err(|_| SourceError::Silent(FETCH_TIMEOUT))
        })?;
        let mut assembler = GopAssembler::new(self.tracks.clone(), 1);
        let mut done = None;
        for track in chunks {
            for chunk in track? {
                done = assembler.push(sequence, &chunk)?.pop().or(done);
            }
        }
        done.ok_or_else(|| {
            StreamError::Inconsistent(format!("GOP {gop} arrived incomplete")).into()
        })
    }
}

impl PlaneSource for VodSource {
    fn fps(&self) -> f64 {
        self.catalog.fps()
    }

    fn gop_count(&self) -> usize {
        self.index.gop_starts.len()
    }

    fn gop_start(&self, gop: usize) -> u64 {
        self.index
            .gop_starts
            .get(gop)
            .copied()
            .unwrap_or(self.index.frames)
    }

    fn frame_count(&self) -> u64 {
        self.index.frames
    }

    fn first_side(&self) -> Option<&GopSide> {
        self.first_side.as_ref()
    }

    fn cut_short(&self) -> Option<String> {
        None
    }

    fn decode_gop(&mut self, gop: usize) -> Result<DecodedGop, SourceError> {
        if gop >= self.gop_count() {
            return Err(SourceError::NoSuchGop(gop));
        }
        let assembled = self.fetch(gop)?;
        let planes = self
            .tracks
            .decode_parallel(&assembled.fragment, &mut self.decoders)?;
        DecodedGop::new(gop, planes, assembled.bytes)
    }
}
