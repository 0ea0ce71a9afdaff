//! Watching a room: the participants' broadcasts under `rooms/<room>/` as they are announced
//! and retracted, for a viewer that shows everyone (the room view).

use std::collections::BTreeMap;
use std::time::Duration;

use moq_net::{announce, broadcast, origin};

use crate::{Address, NetError, Trust, connect, spawn_driver};

/// How long an announced participant's broadcast may take to resolve.
const RESOLVE: Duration = Duration::from_secs(5);

/// A participant came or went.
pub enum RoomChange {
    /// A participant's broadcast was announced.
    Joined(String, broadcast::Consumer),
    /// A participant's broadcast was retracted (it left, or its publisher dropped).
    Left(String),
}

/// The participants of one room, as announcements arrive.
pub struct RoomWatcher {
    origin: origin::Consumer,
    announced: announce::Consumer,
    /// Announced routes per participant (a participant may announce more than one path).
    routes: BTreeMap<String, usize>,
}

/// Connects as a viewer of the room at `address`'s path (`rooms/<room>`): the session (keep
/// it) and the room's participants.
pub async fn watch_room(
    address: &Address,
    trust: &Trust,
) -> Result<(moq_net::Session, RoomWatcher), NetError> {
    let (producer, driver) = origin::Producer::new(origin::Config::default());
    spawn_driver(driver);
    let session = connect(
        address,
        trust,
        moq_net::Client::new().with_subscriber(producer.clone()),
    )
    .await?;
    let origin = producer.consume();
    let announced = origin.announced();
    Ok((
        session,
        RoomWatcher {
            origin,
            announced,
            routes: BTreeMap::new(),
        },
    ))
}

impl RoomWatcher {
    /// The next participant to join or leave; `None` when the session's origin closed.
    pub async fn next(&mut self) -> Option<Result<RoomChange, NetError>> {
        loop {
            let update = self.announced.next().await?;
            // The session is rooted at the room: a participant is the first path segment.
            let Some(name) = update
                .prefix
                .as_str()
                .split('/')
                .find(|s| !s.is_empty())
                .map(str::to_owned)
            else {
                continue;
            };
            match update.kind {
                announce::Kind::Announced => {
                    let routes = self.routes.entry(name.clone()).or_default();
                    *routes += 1;
                    if *routes > 1 {
                        continue;
                    }
                    // Announced means routable; the bound only guards against a route that
                    // vanished in between (its retraction follows).
                    let routed =
                        tokio::time::timeout(RESOLVE, self.origin.routed_broadcast(name.as_str()))
                            .await;
                    return Some(match routed {
                        Ok(Ok(b)) => Ok(RoomChange::Joined(name, b)),
                        Ok(Err(e)) => Err(e.into()),
                        Err(_) => Err(NetError::NotSplatcast(format!(
                            "participant '{name}' was announced but could not be reached"
                        ))),
                    });
                }
                announce::Kind::Updated => continue,
                announce::Kind::Retracted => {
                    let Some(routes) = self.routes.get_mut(&name) else {
                        continue;
                    };
                    *routes -= 1;
                    if *routes == 0 {
                        self.routes.remove(&name);
                        return Some(Ok(RoomChange::Left(name)));
                    }
                }
            }
        }
    }
}
