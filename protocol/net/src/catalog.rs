//! The broadcast's `catalog.json` (hang's catalog): what a subscriber needs before the first
//! group. Each AV1 plane track is a video rendition in the CMAF container with a one-track init
//! segment; the side-data track and the stream version ride in the `splatcast` extension.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use hang::catalog::{AV1, Container, VideoConfig};
use serde::{Deserialize, Serialize};
use splatcast_protocol::container::{Movie, Track, TrackKind, init_segment, parse_init};

use crate::NetError;

/// Version of our catalog extension.
const EXTENSION_VERSION: u32 = 1;

/// The `splatcast` section of the catalog.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
struct Extension {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    splatcast: Option<Layout>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Layout {
    version: u32,
    /// Frames per second.
    fps: f64,
    /// The side-data track's name and one-track init segment (base64).
    side: SideTrack,
    /// A stored stream served on demand: where its GOPs start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    index: Option<GopIndex>,
    /// A quality ladder: every rendition (the first is the one the hang tracks describe).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    ladder: Vec<LadderEntry>,
}

/// One rendition of a ladder in the catalog: its whole init segment (base64), its tracks named
/// `<track>.<name>` (the first rendition's keep the plain names).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct LadderEntry {
    name: String,
    bitrate: u64,
    init: String,
}

/// One quality of a broadcast that offers several (`publish --ladder`): a complete stream of
/// its own tracks, GOPs aligned with the others' so a viewer can switch at any group.
#[derive(Clone, Debug, PartialEq)]
pub struct Rendition {
    /// Its name (`low`, `medium`…).
    pub name: String,
    /// About how many bits per second it needs.
    pub bits_per_second: u64,
    /// Its movie header.
    pub movie: Movie,
}

/// Where the GOPs of a stored stream start (a broadcast served on demand has a timeline; any
/// GOP, which is one MoQ group on every track, can be fetched by its number).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GopIndex {
    /// First frame of each GOP, increasing.
    pub gop_starts: Vec<u64>,
    /// Frames in the stream.
    pub frames: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct SideTrack {
    track: String,
    init: String,
}

/// A stream's catalog: the movie it rebuilds and each MoQ track's name.
#[derive(Clone, Debug, PartialEq)]
pub struct StreamCatalog {
    /// The stream's movie header (every track, ours and the planes').
    pub movie: Movie,
    /// (container track ID, MoQ track name), plane tracks first, side data last.
    pub tracks: Vec<(u32, String)>,
    /// For a stored stream served on demand, where its GOPs start; `None` when live.
    pub index: Option<GopIndex>,
    /// A quality ladder, when the broadcast offers one (the first rendition is `movie`).
    pub ladder: Vec<Rendition>,
}

impl StreamCatalog {
    /// The catalog of a stream with this movie header.
    pub fn new(movie: Movie) -> Self {
        let tracks = movie.tracks.iter().map(|t| (t.id, track_name(t))).collect();
        Self {
            movie,
            tracks,
            index: None,
            ladder: Vec::new(),
        }
    }

    /// The catalog of a broadcast offering `renditions` (at least one; the first is what
    /// players that know no ladder see).
    pub fn with_ladder(renditions: Vec<Rendition>) -> Result<Self, NetError> {
        let first = renditions
            .first()
            .ok_or_else(|| NetError::NotSplatcast("a ladder without renditions".into()))?;
        let mut catalog = Self::new(first.movie.clone());
        if renditions.len() > 1 {
            catalog.ladder = renditions;
        }
        Ok(catalog)
    }

    /// What a subscriber of rendition `k` reads: that rendition's movie and track names (the
    /// whole catalog for `k` = 0 of a broadcast without a ladder).
    pub fn rendition(&self, k: usize) -> Option<Self> {
        if self.ladder.is_empty() {
            return (k == 0).then(|| Self {
                ladder: Vec::new(),
                ..self.clone()
            });
        }
        let r = self.ladder.get(k)?;
        let tracks = r
            .movie
            .tracks
            .iter()
            .map(|t| (t.id, rendition_track_name(t, k, &r.name)))
            .collect();
        Some(Self {
            movie: r.movie.clone(),
            tracks,
            index: self.index.clone(),
            ladder: Vec::new(),
        })
    }

    /// Frames per second.
    pub fn fps(&self) -> f64 {
        self.movie.timescale as f64 / splatcast_protocol::stream::FRAME_TICKS as f64
    }

    /// The catalog as hang's JSON.
    pub fn to_json(&self) -> Result<String, NetError> {
        let mut catalog = hang::Catalog::<Extension>::default();
        let mut side = None;
        for track in &self.movie.tracks {
            let init = init_segment(&Movie {
                timescale: self.movie.timescale,
                tracks: vec![track.clone()],
            });
            let name = track_name(track);
            match &track.kind {
                TrackKind::Av1 {
                    width,
                    height,
                    bit_depth,
                    ..
                } => {
                    let mut video = VideoConfig::new(AV1 {
                        profile: 0,
                        level: 31,
                        tier: 'M',
                        bitdepth: *bit_depth,
                        mono_chrome: true,
                        ..AV1::default()
                    });
                    video.coded_width = Some(*width as u32);
                    video.coded_height = Some(*height as u32);
                    video.framerate = Some(self.fps());
                    video.optimize_for_latency = Some(true);
                    video.container = Container::Cmaf { init: init.into() };
                    catalog.video.insert(&name, video)?;
                }
                TrackKind::Metadata { .. } => {
                    side = Some(SideTrack {
                        track: name,
                        init: B64.encode(init),
                    });
                }
            }
        }
        let side = side.ok_or_else(|| NetError::NotSplatcast("no side-data track".into()))?;
        let ladder = self
            .ladder
            .iter()
            .map(|r| LadderEntry {
                name: r.name.clone(),
                bitrate: r.bits_per_second,
                init: B64.encode(init_segment(&r.movie)),
            })
            .collect();
        catalog.ext = Extension {
            splatcast: Some(Layout {
                version: EXTENSION_VERSION,
                fps: self.fps(),
                side,
                index: self.index.clone(),
                ladder,
            }),
        };
        Ok(catalog.to_json()?)
    }

    /// Reads a catalog: the video renditions in CMAF and our extension, back into the movie.
    pub fn from_json(json: &str) -> Result<Self, NetError> {
        let catalog = hang::Catalog::<Extension>::from_str(json)?;
        Self::from_catalog(catalog)
    }

    /// The catalog a broadcast publishes (its latest version).
    pub async fn read(broadcast: &moq_net::broadcast::Consumer) -> Result<Self, NetError> {
        let mut catalogs = hang::Catalog::<Extension>::subscribe(broadcast).await?;
        let catalog = catalogs.next().await?.ok_or_else(|| {
            NetError::NotSplatcast("the broadcast ended before its catalog".into())
        })?;
        Self::from_catalog(catalog)
    }

    fn from_catalog(catalog: hang::Catalog<Extension>) -> Result<Self, NetError> {
        let layout = catalog.ext.splatcast.ok_or_else(|| {
            NetError::NotSplatcast("the catalog has no 'splatcast' section".into())
        })?;
        if layout.version != EXTENSION_VERSION {
            return Err(NetError::NotSplatcast(format!(
                "catalog version {} (this build reads {EXTENSION_VERSION})",
                layout.version
            )));
        }
        let mut named: Vec<(String, Movie)> = Vec::new();
        for (name, video) in &catalog.video.renditions {
            let Container::Cmaf { init } = &video.container else {
                continue;
            };
            named.push((name.clone(), parse_init(init)?));
        }
        let side_init = B64
            .decode(&layout.side.init)
            .map_err(|e| NetError::NotSplatcast(format!("side init is not base64: {e}")))?;
        named.push((layout.side.track.clone(), parse_init(&side_init)?));
        let mut tracks: Vec<(Track, String)> = Vec::new();
        let mut timescale = None;
        for (name, movie) in named {
            let [track] = <[Track; 1]>::try_from(movie.tracks).map_err(|_| {
                NetError::NotSplatcast(format!("track '{name}' init is not one track"))
            })?;
            if *timescale.get_or_insert(movie.timescale) != movie.timescale {
                return Err(NetError::NotSplatcast(
                    "tracks disagree on timescale".into(),
                ));
            }
            if tracks.iter().any(|(t, _)| t.id == track.id) {
                return Err(NetError::NotSplatcast(format!(
                    "track ID {} appears twice",
                    track.id
                )));
            }
            tracks.push((track, name));
        }
        tracks.sort_by_key(|(t, _)| t.id);
        if let Some(index) = &layout.index
            && (index.gop_starts.windows(2).any(|w| w[0] >= w[1])
                || index.gop_starts.last().is_some_and(|&l| l >= index.frames))
        {
            return Err(NetError::NotSplatcast(
                "the GOP index is not increasing within the stream".into(),
            ));
        }
        let mut ladder = Vec::with_capacity(layout.ladder.len().min(16));
        for entry in &layout.ladder {
            let init = B64.decode(&entry.init).map_err(|e| {
                NetError::NotSplatcast(format!(
                    "rendition '{}' init is not base64: {e}",
                    entry.name
                ))
            })?;
            ladder.push(Rendition {
                name: entry.name.clone(),
                bits_per_second: entry.bitrate,
                movie: parse_init(&init)?,
            });
        }
        if ladder
            .iter()
            .any(|r| r.name.is_empty() || r.name.contains('/'))
        {
            return Err(NetError::NotSplatcast(
                "a rendition name is empty or holds '/'".into(),
            ));
        }
        Ok(Self {
            index: layout.index,
            tracks: tracks.iter().map(|(t, n)| (t.id, n.clone())).collect(),
            movie: Movie {
                timescale: timescale.unwrap_or(1),
                tracks: tracks.into_iter().map(|(t, _)| t).collect(),
            },
            ladder,
        })
    }
}

/// Rendition `k`'s MoQ name for `track`: the plain name for the first, `<name>.<rendition>`
/// for the others.
pub(crate) fn rendition_track_name(track: &Track, k: usize, rendition: &str) -> String {
    match k {
        0 => track_name(track),
        _ => format!("{}.{rendition}", track_name(track)),
    }
}

/// The side-data track's MoQ name.
pub(crate) const SIDE_TRACK: &str = "side";

/// The MoQ names [`track_name`] can give in a first rendition: every attribute's and the
/// side data's (what a joining viewer subscribes to before the catalog says which it has).
pub(crate) fn usual_tracks() -> impl Iterator<Item = &'static str> {
    splatcast_protocol::gop::Attribute::ALL
        .iter()
        .map(|a| a.name())
        .chain([SIDE_TRACK])
}

/// A track's MoQ name: the attribute for planes (`position`, `sh_rest`…), `side` for side data.
fn track_name(track: &Track) -> String {
    match track.kind {
        TrackKind::Metadata { .. } => SIDE_TRACK.into(),
        TrackKind::Av1 { .. } => track
            .name
            .strip_prefix("splatcast ")
            .unwrap_or(&track.name)
            .replace(' ', "_"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalog_round_trips_the_movie() {
        let movie = Movie {
            timescale: 30_000,
            tracks: vec![
                Track {
                    id: 1,
                    name: "splatcast position".into(),
                    kind: TrackKind::Av1 {
                        width: 96,
                        height: 32,
                        bit_depth: 10,
                        sequence_header: vec![0x0a, 0x0b, 0, 0, 0],
                    },
                },
                Track {
                    id: 2,
                    name: "splatcast gop side data".into(),
                    kind: TrackKind::Metadata {
                        mime: splatcast_protocol::stream::SIDE_DATA_MIME.into(),
                    },
                },
            ],
        };
        let mut catalog = StreamCatalog::new(movie.clone());
        catalog.index = Some(GopIndex {
            gop_starts: vec![0, 30],
            frames: 45,
        });
        let json = catalog.to_json().unwrap();
        assert!(json.contains("\"splatcast\""), "{json}");
        assert!(json.contains("av01.0.31M.10"), "{json}");
        let back = StreamCatalog::from_json(&json).unwrap();
        assert_eq!(back, catalog);
        assert_eq!(
            back.tracks,
            vec![(1, "position".into()), (2, "side".into())]
        );
        assert!(StreamCatalog::from_json("{}").is_err());
        let backwards = json.replace("[0,30]", "[30,0]");
        assert_ne!(backwards, json);
        assert!(StreamCatalog::from_json(&backwards).is_err());

        // A ladder: every rendition comes back, each with its own track names.
        let ladder = StreamCatalog::with_ladder(
            ["low", "high"]
                .iter()
                .zip([100_000, 900_000])
                .map(|(name, bits)| Rendition {
                    name: name.to_string(),
                    bits_per_second: bits,
                    movie: movie.clone(),
                })
                .collect(),
        )
        .unwrap();
        let back = StreamCatalog::from_json(&ladder.to_json().unwrap()).unwrap();
        assert_eq!(back, ladder);
        assert_eq!(back.rendition(0).unwrap().tracks[0].1, "position");
        let high = back.rendition(1).unwrap();
        assert_eq!(
            high.tracks,
            vec![(1, "position.high".into()), (2, "side.high".into())]
        );
        assert!(back.rendition(2).is_none());
    }
}
