//! Reading a Splatcast broadcast: the catalog, then every track's groups, reassembled by the
//! protocol's sans-IO assemblers: whole GOPs ([`GopAssembler`]) or, for live playback, whole
//! frames as soon as they complete ([`FrameAssembler`]).

use std::collections::HashMap;
use std::time::Duration;

use moq_net::{broadcast, group, track};
use splatcast_protocol::stream::{
    AssembledGop, FrameAssembler, GopAssembler, LiveFrame, StreamError, TrackSet,
};
use tokio::sync::mpsc;
use tokio::task::{JoinHandle, JoinSet};

use crate::catalog::usual_tracks;
use crate::{NetError, StreamCatalog};

/// Incomplete GOPs held while their tracks arrive; older ones are given up.
const PENDING_GOPS: usize = 3;

/// Once playing, how far (media time) a GOP may trail the newest before it is given up: long
/// enough that the last frames of one GOP are not abandoned when the next begins, short enough
/// that a viewer who fell behind skips ahead instead of buffering.
const KEEP: Duration = Duration::from_secs(2);

/// While joining, how long after a newer group began an older one is still delivered.
const JOIN_AGE: Duration = Duration::from_millis(500);

/// Track subscriptions started before the catalog arrives: the first rendition's usual track
/// names, asked for at once so joining costs one round trip less (an unused one is dropped, a
/// name the broadcast lacks is refused harmlessly). Each runs on its own task from the start:
/// through a relay a subscription is sent only once its subscriber asks for a group, so one
/// merely created would wait for the catalog (measured: a round trip after it).
pub struct Early(HashMap<String, Groups>);

impl Early {
    /// Subscribes to the usual tracks of `broadcast` from its newest group.
    pub fn start(broadcast: &broadcast::Consumer) -> Self {
        let options = track::Subscription::default().with_max_age(JOIN_AGE);
        Self(
            usual_tracks()
                .filter_map(|name| {
                    let pending = broadcast.track(name).ok()?.subscribe(options.clone());
                    Some((name.to_owned(), Groups::receive(name, pending, false)))
                })
                .collect(),
        )
    }
}

/// One track's groups as they arrive, received by a task that owns the subscription (stopped
/// when this is dropped). Once `joined` (at the first group when joining live), the
/// subscription keeps a window of whole GOPs from there.
struct Groups {
    groups: mpsc::Receiver<group::Consumer>,
    task: JoinHandle<()>,
}

impl Groups {
    fn receive(
        name: &str,
        subscribing: impl Future<Output = Result<track::Subscriber, moq_net::Error>> + Send + 'static,
        mut joined: bool,
    ) -> Self {
        let (tx, groups) = mpsc::channel(PENDING_GOPS + 1);
        let name = name.to_owned();
        let task = tokio::spawn(async move {
            let mut subscriber = match subscribing.await {
                Ok(s) => s,
                Err(e) => {
                    tracing::info!(track = %name, "subscribe failed: {e}");
                    return;
                }
            };
            loop {
                let group = match subscriber.recv_group().await {
                    Ok(Some(group)) => group,
                    Ok(None) => break,
                    Err(e) => {
                        tracing::info!(track = %name, "subscription ended: {e}");
                        break;
                    }
                };
                if !joined {
                    joined = true;
                    let keep = track::Subscription::default()
                        .with_start(track::Position::group(group.sequence))
                        .with_max_age(KEEP);
                    if subscriber.update(keep).is_err() {
                        break;
                    }
                }
                if tx.send(group).await.is_err() {
                    break;
                }
            }
        });
        Self { groups, task }
    }
}

impl Drop for Groups {
    fn drop(&mut self) {
        self.task.abort();
    }
}

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

/// A live subscription to one broadcast, yielding `T`: whole GOPs ([`subscribe`]) or whole
/// frames ([`subscribe_frames`]).
pub struct Subscription<T = AssembledGop> {
    /// What the broadcast carries.
    pub catalog: StreamCatalog,
    /// Its tracks as the decoder sees them.
    pub tracks: TrackSet,
    items: mpsc::Receiver<Result<T, NetError>>,
    _tasks: JoinSet<()>,
}

impl<T> Subscription<T> {
    /// The next complete item; `None` when the broadcast has ended. A corrupt chunk is
    /// reported as an error and the subscription goes on.
    pub async fn next(&mut self) -> Option<Result<T, NetError>> {
        self.items.recv().await
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
    let mut assembler = GopAssembler::new(tracks.clone(), PENDING_GOPS);
    assembled(
        &broadcast,
        &catalog,
        tracks,
        start,
        None,
        move |group, chunk| assembler.push(group, chunk),
    )
    .await
}

/// Subscribes to `broadcast` for live playback: each frame comes out as soon as its last
/// track's chunk arrives (latency is a frame, not a GOP), starting at the newest key frame; a
/// viewer that trails a newer key frame by `max_lag` (media time) skips ahead to it.
pub async fn subscribe_frames(
    broadcast: broadcast::Consumer,
    max_lag: Duration,
) -> Result<Subscription<LiveFrame>, NetError> {
    let early = Early::start(&broadcast);
    let catalog = StreamCatalog::read(&broadcast).await?;
    subscribe_rendition(&broadcast, catalog, 0, max_lag, Some(early)).await
}

/// [`subscribe_frames`] for rendition `rendition` of a broadcast whose `catalog` was read
/// already (joining a ladder, switching renditions), using the `early` subscriptions made
/// while it was read; the subscription's catalog is the whole one.
pub async fn subscribe_rendition(
    broadcast: &broadcast::Consumer,
    catalog: StreamCatalog,
    rendition: usize,
    max_lag: Duration,
    early: Option<Early>,
) -> Result<Subscription<LiveFrame>, NetError> {
    let view = catalog.rendition(rendition).ok_or_else(|| {
        NetError::NotSplatcast(format!("the broadcast has no rendition {rendition}"))
    })?;
    let frames = (max_lag.as_secs_f64() * catalog.fps()).ceil() as u64;
    let tracks = TrackSet::of(&view.movie)?;
    let mut assembler = FrameAssembler::new(tracks.clone(), frames, PENDING_GOPS + 1);
    // The early subscriptions named the first rendition's tracks.
    let early = early.filter(|_| rendition == 0);
    let mut subscription = assembled(
        broadcast,
        &view,
        tracks,
        None,
        early,
        move |group, chunk| assembler.push(group, chunk),
    )
    .await?;
    subscription.catalog = catalog;
    Ok(subscription)
}

/// Every track's arrivals (the tracks of `catalog`), and `push` turning them into items on a
/// task.
async fn assembled<T, F>(
    broadcast: &broadcast::Consumer,
    catalog: &StreamCatalog,
    tracks: TrackSet,
    start: Option<u64>,
    early: Option<Early>,
    mut push: F,
) -> Result<Subscription<T>, NetError>
where
    T: Send + 'static,
    F: FnMut(u64, &[u8]) -> Result<Vec<T>, StreamError> + Send + 'static,
{
    let (mut arrivals, mut tasks) = track_frames(broadcast, catalog, start, early).await?;
    let (items_tx, items_rx) = mpsc::channel(64);
    tasks.spawn(async move {
        while let Some(arrival) = arrivals.recv().await {
            let out: Vec<Result<T, NetError>> = match push(arrival.group, &arrival.payload) {
                Ok(items) => items.into_iter().map(Ok).collect(),
                Err(e) => vec![Err(NetError::from(e))],
            };
            for item in out {
                if items_tx.send(item).await.is_err() {
                    return;
                }
            }
        }
    });
    Ok(Subscription {
        catalog: catalog.clone(),
        tracks,
        items: items_rx,
        _tasks: tasks,
    })
}

/// Subscribes to every track of the stream and yields each frame as it arrives, from group
/// `start` or, when `None`, from the newest group (late joiners start at a keyframe at once);
/// after the first group, GOPs within a 2 s window of the newest are kept whole. Joining at
/// the newest group, the `early` subscriptions of tracks the catalog names are used.
/// The tasks stop when the returned set is dropped.
pub async fn track_frames(
    broadcast: &broadcast::Consumer,
    catalog: &StreamCatalog,
    start: Option<u64>,
    early: Option<Early>,
) -> Result<(mpsc::Receiver<Arrival>, JoinSet<()>), NetError> {
    let mut early = early.map(|e| e.0).unwrap_or_default();
    let (tx, rx) = mpsc::channel::<Arrival>(1024);
    let mut tasks = JoinSet::new();
    for (id, name) in &catalog.tracks {
        // Joining: the newest group, and a group superseded less than JOIN_AGE ago (without it
        // a relay that subscribed upstream for the newest group only drops the tail of a GOP
        // once the next one starts: seen through moq-relay); from the first group on, a window
        // of whole GOPs.
        let options = match start {
            Some(g) => track::Subscription::default()
                .with_start(track::Position::group(g))
                .with_max_age(KEEP),
            None => track::Subscription::default().with_max_age(JOIN_AGE),
        };
        let mut groups = match early.remove(name.as_str()) {
            Some(groups) if start.is_none() => groups,
            _ => Groups::receive(
                name,
                broadcast.track(name)?.subscribe(options),
                start.is_some(),
            ),
        };
        let (tx, track) = (tx.clone(), *id);
        let name = name.clone();
        tasks.spawn(async move {
            while let Some(mut group) = groups.groups.recv().await {
                let sequence = group.sequence;
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
