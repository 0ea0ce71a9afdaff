//! `splatcast serve`: stored streams on demand. Each file is a broadcast at `vod/<name>` whose
//! catalog carries the GOP index; no group exists until a viewer fetches one (a MoQ FETCH of
//! one group per track: a seek costs a round trip plus the GOP's transfer), and then it is read
//! from the file, split into the same per-frame chunks a live broadcast carries. A GOP is read
//! once for all its tracks (their fetches arrive together).

use std::fs::File;
use std::io::BufReader;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use moq_net::{broadcast, origin, track};
use splatcast_protocol::container::media_segment;
use splatcast_protocol::stream::{StreamError, StreamReader, split_by_frame};

use crate::catalog::GopIndex;
use crate::publish::{frame_time, track_info, write_catalog};
use crate::server::{Admitted, Grant, serve_sessions};
use crate::{Identity, NetError, StreamCatalog, tls};

/// How long fetched GOPs stay cached for other viewers (media time bound of the track).
const HISTORY: Duration = Duration::from_secs(24 * 3600);

/// One GOP split into per-frame chunks: (track, frame, chunk).
type Chunks = Vec<(u32, u64, Vec<u8>)>;

/// A file being served: its reader and the last GOP read (every track asks for it at once).
struct Stored {
    path: PathBuf,
    reader: StreamReader<BufReader<File>>,
    last: Option<(u64, Arc<Chunks>)>,
}

impl Stored {
    fn chunks(&mut self, gop: u64) -> Result<Arc<Chunks>, StreamError> {
        if let Some((g, chunks)) = &self.last
            && *g == gop
        {
            return Ok(chunks.clone());
        }
        let index = usize::try_from(gop).unwrap_or(usize::MAX);
        let fragment = self.reader.gop_fragment(index)?;
        let side = self.reader.tracks().side;
        let chunks: Chunks = split_by_frame(&fragment, side)
            .into_iter()
            .map(|(track, frame, part)| (track, frame, media_segment(&part)))
            .collect();
        let chunks = Arc::new(chunks);
        self.last = Some((gop, chunks.clone()));
        Ok(chunks)
    }
}

/// A bound on-demand server.
pub struct VodServer {
    endpoint: quinn::Endpoint,
    origin: origin::Producer,
    /// The broadcasts and their catalog tracks live while the server does.
    _broadcasts: Vec<(broadcast::Producer, track::Producer)>,
}

impl VodServer {
    /// Binds `listen` (UDP) and prepares `files` — (name, path) pairs, each served at
    /// `vod/<name>`. Must run inside a tokio runtime. A file that is not a Splatcast stream
    /// with at least one complete GOP is refused, naming it.
    pub fn bind(
        listen: SocketAddr,
        identity: &Identity,
        files: &[(String, PathBuf)],
    ) -> Result<Self, NetError> {
        let endpoint = tls::server_endpoint(listen, identity, tls::SEND_WINDOW)?;
        let (origin, driver) = origin::Producer::new(origin::Config::default());
        crate::spawn_driver(driver);
        let broadcasts = files
            .iter()
            .map(|(name, path)| serve_file(&origin, name, path))
            .collect::<Result<_, _>>()?;
        Ok(Self {
            endpoint,
            origin,
            _broadcasts: broadcasts,
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> Result<SocketAddr, NetError> {
        Ok(self.endpoint.local_addr()?)
    }

    /// Accepts viewers until the endpoint closes. Anyone may watch; nobody may publish.
    pub async fn run(self) -> Result<(), NetError> {
        let origin = self.origin.clone();
        serve_sessions(&self.endpoint, move |_| {
            let grant = Grant {
                subscribe: vec![String::new()],
                ..Grant::default()
            };
            Ok(Admitted::on(&origin, grant))
        })
        .await;
        Ok(())
    }
}

/// Announces `path` at `vod/<name>`: its catalog with the GOP index, and a track per stream
/// track whose groups are read from the file when fetched.
fn serve_file(
    origin: &origin::Producer,
    name: &str,
    path: &Path,
) -> Result<(broadcast::Producer, track::Producer), NetError> {
    let named = |e: StreamError| NetError::NotSplatcast(format!("{}: {e}", path.display()));
    let file = File::open(path).map_err(|e| NetError::Credentials {
        path: path.to_path_buf(),
        problem: e.to_string(),
    })?;
    let mut reader = StreamReader::open(BufReader::new(file))
        .and_then(StreamReader::with_gops)
        .map_err(named)?;
    let gops = reader.gop_count();
    let mut gop_starts = Vec::with_capacity(gops);
    let mut frames = 0;
    for g in 0..gops {
        let (first, count) = reader.gop_span(g).map_err(named)?;
        gop_starts.push(first.max(frames));
        frames = gop_starts[g] + count.max(1);
    }
    let mut catalog = StreamCatalog::new(reader.movie().clone());
    catalog.index = Some(GopIndex { gop_starts, frames });
    let broadcast = origin.create_broadcast(format!("vod/{name}"))?;
    let catalog_track = write_catalog(&broadcast, &catalog)?;
    let side = catalog.side_id()?;
    let fps = catalog.fps();
    let stored = Arc::new(Mutex::new(Stored {
        path: path.to_path_buf(),
        reader,
        last: None,
    }));
    for (id, track_name) in &catalog.tracks {
        let producer =
            broadcast.create_track(track_name.as_str(), track_info(*id, side, HISTORY))?;
        let requests = producer.dynamic();
        let (stored, id) = (stored.clone(), *id);
        tokio::spawn(async move {
            // The producer lives as long as requests are served.
            let _producer = producer;
            while let Ok(request) = requests.requested_group().await {
                let gop = request.sequence();
                let stored = stored.clone();
                let read = tokio::task::spawn_blocking(move || {
                    let mut stored = stored.lock().unwrap_or_else(|e| e.into_inner());
                    stored.chunks(gop).map_err(|e| {
                        tracing::info!(file = %stored.path.display(), gop, "fetch refused: {e}");
                    })
                })
                .await;
                let Ok(Ok(chunks)) = read else {
                    request.reject(moq_net::Error::NotFound);
                    continue;
                };
                let Ok(mut group) = request.accept(None) else {
                    continue;
                };
                for (_, frame, bytes) in chunks.iter().filter(|(t, _, _)| *t == id) {
                    let Ok(time) = frame_time(*frame, fps) else {
                        break;
                    };
                    if group.write_frame(time, bytes.clone()).is_err() {
                        break;
                    }
                }
                let _ = group.finish();
            }
        });
    }
    broadcast.announce(Default::default())?;
    Ok((broadcast, catalog_track))
}
