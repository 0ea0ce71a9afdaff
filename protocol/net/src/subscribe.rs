//! Reading a Splatcast broadcast: the catalog, then every track's groups, reassembled into whole
//! GOPs by the protocol's sans-IO [`GopAssembler`].

use std::time::Duration;

use moq_net::{broadcast, track};
use splatcast_protocol::stream::{AssembledGop, GopAssembler, TrackSet};
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use crate::{NetError, StreamCatalog};

/// Incomplete GOPs held while their tracks arrive; older ones are given up.
const PENDING_GOPS: usize = 3;

/// Once playing, how far (media time) a GOP may trail the newest before it is given up: long
/// enough that the last frames of one GOP are not abandoned when the next begins, short enough
/// that a viewer who fell behind skips ahead instead of buffering.
const KEEP: Duration = Duration::from_secs(2);

/// One MoQ frame as it arrived: a chunk of one track.
#[derive(Clone, Debug)]
pub struct Arrival {
    /// Container track ID.
    pub track: u32,
    /// Group (GOP) number.
    pub group: u64,
    /// Index of the frame within its group on this track.
    pub index: u64,
    /// The chunk (`moof` + `mdat`).
    pub payload: bytes::Bytes,
}

/// A live subscription to one broadcast.
pub struct Subscription {
    /// What the broadcast carries.
    pub catalog: StreamCatalog,
    /// Its tracks as the decoder sees them.
    pub tracks: TrackSet,
    gops: mpsc::Receiver<Result<AssembledGop, NetError>>,
    _tasks: JoinSet<()>,
}

impl Subscription {
    /// The next complete GOP; `None` when the broadcast has ended. A corrupt chunk is reported
    /// as an error and the subscription goes on with the next GOP.
    pub async fn next_gop(&mut self) -> Option<Result<AssembledGop, NetError>> {
        self.gops.recv().await
    }
}

/// Subscribes to the Splatcast broadcast `broadcast`, starting at its newest GOP (group), or at
/// group `start` when given and still available. A GOP that trails the newest by more than two
/// seconds of media time is given up (a viewer that fell behind skips ahead).
pub async fn subscribe(
    broadcast: broadcast::Consumer,
    start: Option<u64>,
) -> Result<Subscription, NetError> {
    let catalog = StreamCatalog::read(&broadcast).await?;
    let tracks = TrackSet::of(&catalog.movie)?;
    let (mut arrivals, mut tasks) = track_frames(&broadcast, &catalog, start).await?;
    let (gops_tx, gops_rx) = mpsc::channel(4);
    let mut assembler = GopAssembler::new(tracks.clone(), PENDING_GOPS);
    tasks.spawn(async move {
        while let Some(arrival) = arrivals.recv().await {
            let out: Vec<Result<AssembledGop, NetError>> =
                match assembler.push(arrival.group, &arrival.payload) {
                    Ok(gops) => gops.into_iter().map(Ok).collect(),
                    Err(e) => vec![Err(NetError::from(e))],
                };
            for gop in out {
                if gops_tx.send(gop).await.is_err() {
                    return;
                }
            }
        }
    });
    Ok(Subscription {
        catalog,
        tracks,
        gops: gops_rx,
        _tasks: tasks,
    })
}

/// Subscribes to every track of the stream and yields each frame as it arrives, from group
/// `start` or, when `None`, from the newest group (late joiners start at a keyframe at once);
/// after the first group, GOPs within a 2 s window of the newest are kept whole.
/// The tasks stop when the returned set is dropped.
pub async fn track_frames(
    broadcast: &broadcast::Consumer,
    catalog: &StreamCatalog,
    start: Option<u64>,
) -> Result<(mpsc::Receiver<Arrival>, JoinSet<()>), NetError> {
    let (tx, rx) = mpsc::channel::<Arrival>(1024);
    let mut tasks = JoinSet::new();
    for (id, name) in &catalog.tracks {
        // Joining: the newest group only (moq-net's default); from the first group on, a
        // window of whole GOPs.
        let options = match start {
            Some(g) => track::Subscription::default()
                .with_start(track::Position::group(g))
                .with_max_age(KEEP),
            None => track::Subscription::default(),
        };
        let mut joined = start.is_some();
        // Every track subscribes at once: a subscription costs a round trip per hop.
        let subscribing = broadcast.track(name)?.subscribe(options);
        let (tx, name, track) = (tx.clone(), name.clone(), *id);
        tasks.spawn(async move {
            let mut subscriber = match subscribing.await {
                Ok(s) => s,
                Err(e) => {
                    tracing::info!(track = %name, "subscribe failed: {e}");
                    return;
                }
            };
            loop {
                let mut group = match subscriber.recv_group().await {
                    Ok(Some(group)) => group,
                    Ok(None) => break,
                    Err(e) => {
                        tracing::info!(track = %name, "subscription ended: {e}");
                        break;
                    }
                };
                let sequence = group.sequence;
                if !joined {
                    joined = true;
                    let keep = track::Subscription::default()
                        .with_start(track::Position::group(sequence))
                        .with_max_age(KEEP);
                    if subscriber.update(keep).is_err() {
                        break;
                    }
                }
                let mut index = 0;
                loop {
                    match group.read_frame().await {
                        Ok(Some(frame)) => {
                            let arrival = Arrival {
                                track,
                                group: sequence,
                                index,
                                payload: frame.payload,
                            };
                            if tx.send(arrival).await.is_err() {
                                return;
                            }
                            index += 1;
                        }
                        Ok(None) => break,
                        // Superseded by a newer group: move on to it.
                        Err(moq_net::Error::Old) => break,
                        Err(e) => {
                            tracing::info!(track = %name, group = sequence, "group lost: {e}");
                            break;
                        }
                    }
                }
            }
        });
    }
    Ok((rx, tasks))
}
