//! The CLI's network commands: `relay`, `auth`, `serve`, `publish`, `token`. Each builds a tokio runtime around
//! the transport crate; failures are one line naming the address or file.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail, ensure};
use clap::ValueEnum;
use splatcast_encoder::learn::{LearnEvent, LearnOptions, learn};
use splatcast_encoder::live::{LiveEncoder, LiveOutput};
use splatcast_encoder::multiview::MultiViewVideo;
use splatcast_encoder::{EncodeOptions, Quality, SequenceEncoder, stream_layout};
use splatcast_net::auth::{AuthRules, AuthServer};
use splatcast_net::token::{Claims, Key};
use splatcast_net::{
    Address, BroadcastWriter, Identity, Relay, RelayConfig, Rendition, Trust, VodServer, connect,
    install_crypto, moq_net, stay_connected,
};
use splatcast_protocol::atomic::write_file;
use splatcast_protocol::container::{media_segment, parse_init};
use splatcast_protocol::sequence::list_frames;
use splatcast_protocol::stream::{Chunk, FRAME_TICKS, WrittenGop, split_by_frame};
use tokio::time::Instant;

use crate::commands::{check_timing, load_frame, open, scan_frames};

/// How a client trusts the server: `--fingerprint` (development certificates) or `--ca`.
#[derive(clap::Args, Clone, Debug)]
pub struct TrustArgs {
    /// SHA-256 of the server's certificate, as `splatcast relay` prints it.
    #[arg(long)]
    pub fingerprint: Vec<String>,
    /// PEM file of certificates to trust as roots.
    #[arg(long)]
    pub ca: Option<PathBuf>,
}

impl TrustArgs {
    fn trust(&self) -> Result<Trust> {
        let trust = Trust::from_flags(&self.fingerprint, self.ca.as_deref());
        match &self.ca {
            Some(ca) => trust.with_context(|| format!("{}: cannot read", ca.display())),
            None => Ok(trust?),
        }
    }
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    install_crypto();
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

/// A server's TLS identity: `--cert/--key`, or a generated development certificate.
#[derive(clap::Args)]
pub struct ServerTls {
    /// TLS certificate chain (PEM); without --cert/--key a development certificate is
    /// generated and its SHA-256 printed for clients to pin.
    #[arg(long)]
    cert: Option<PathBuf>,
    /// TLS private key (PEM).
    #[arg(long)]
    key: Option<PathBuf>,
    /// Host names of the generated certificate.
    #[arg(long = "name", default_value = "localhost")]
    names: Vec<String>,
}

impl ServerTls {
    fn identity(&self) -> Result<Identity> {
        Ok(match (&self.cert, &self.key) {
            (Some(cert), Some(k)) => Identity::load(cert, k)?,
            (None, None) => Identity::generate(&self.names)?,
            _ => bail!("--cert and --key go together"),
        })
    }
}

/// `splatcast relay`.
#[derive(clap::Args)]
pub struct RelayArgs {
    /// UDP address to listen on.
    #[arg(long, default_value = "[::]:4443")]
    listen: SocketAddr,
    /// JWK that tokens are signed with (`splatcast token --generate --key root.jwk`).
    #[arg(long)]
    auth_key: PathBuf,
    #[command(flatten)]
    tls: ServerTls,
    /// A room whose streams need a token to watch (repeatable).
    #[arg(long)]
    private: Vec<String>,
    /// Memory for one room's cached media, in MiB (its latest GOPs are kept even above it).
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..=1 << 20))]
    room_cache_mb: u64,
    /// Rooms open at once (a room is open while anyone is in it).
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..))]
    max_rooms: u32,
    /// Bytes one peer's connection may hold unacknowledged, in KiB: a viewer on a slow link
    /// costs at most this much and skips to the newest GOP when it falls behind.
    #[arg(long, default_value_t = 4096, value_parser = clap::value_parser!(u64).range(64..=1 << 22))]
    peer_buffer_kb: u64,
}

pub fn relay(args: RelayArgs) -> Result<()> {
    let key = Key::load(&args.auth_key)?;
    let identity = args.tls.identity()?;
    let fingerprint = identity.fingerprint();
    let rt = runtime()?;
    rt.block_on(async {
        let relay = Relay::bind(
            args.listen,
            RelayConfig {
                private_rooms: args.private,
                room_bytes: args.room_cache_mb << 20,
                max_rooms: args.max_rooms as usize,
                peer_bytes: args.peer_buffer_kb << 10,
                ..RelayConfig::new(identity, key)
            },
        )
        .with_context(|| format!("{}: cannot listen", args.listen))?;
        let addr = relay.local_addr()?;
        println!("relay listening on {addr} (UDP), certificate SHA-256 {fingerprint}");
        relay.run().await?;
        Ok(())
    })
}

/// `splatcast auth`.
#[derive(clap::Args)]
pub struct AuthArgs {
    /// TCP address to listen on (moq-relay's `--auth-url http://ADDRESS/`; moq-relay accepts
    /// plain HTTP only on loopback).
    #[arg(long, default_value = "127.0.0.1:4480")]
    listen: SocketAddr,
    /// JWK that tokens are signed with (`splatcast token --generate --key root.jwk`).
    #[arg(long)]
    auth_key: PathBuf,
    /// A room whose streams need a token to watch (repeatable).
    #[arg(long)]
    private: Vec<String>,
}

pub fn auth(args: AuthArgs) -> Result<()> {
    let key = Key::load(&args.auth_key)?;
    let rt = runtime()?;
    rt.block_on(async {
        let server = AuthServer::bind(
            args.listen,
            AuthRules {
                key,
                private_rooms: args.private,
            },
        )
        .await
        .with_context(|| format!("{}: cannot listen", args.listen))?;
        let addr = server.local_addr()?;
        println!("auth server on http://{addr}/ (moq-relay --auth-url http://{addr}/)");
        server.run().await?;
        Ok(())
    })
}

/// `splatcast serve`.
#[derive(clap::Args)]
pub struct ServeArgs {
    /// Splatcast MP4s, or folders of them.
    #[arg(required = true)]
    inputs: Vec<PathBuf>,
    /// UDP address to listen on.
    #[arg(long, default_value = "[::]:4443")]
    listen: SocketAddr,
    #[command(flatten)]
    tls: ServerTls,
}

pub fn serve(args: ServeArgs) -> Result<()> {
    let mut files = Vec::new();
    for input in &args.inputs {
        if input.is_dir() {
            let mut found: Vec<PathBuf> = std::fs::read_dir(input)
                .with_context(|| format!("{}: cannot list", input.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|e| e.eq_ignore_ascii_case("mp4")))
                .collect();
            found.sort();
            ensure!(!found.is_empty(), "{}: holds no .mp4 file", input.display());
            files.extend(found);
        } else {
            files.push(input.clone());
        }
    }
    let mut named: Vec<(String, PathBuf)> = Vec::new();
    for path in files {
        let name = path
            .file_stem()
            .map(|s| s.to_string_lossy().replace(' ', "_"))
            .with_context(|| format!("{}: no file name", path.display()))?;
        ensure!(
            !named.iter().any(|(n, _)| *n == name),
            "{}: a second file named '{name}'",
            path.display()
        );
        named.push((name, path));
    }
    let identity = args.tls.identity()?;
    let fingerprint = identity.fingerprint();
    let rt = runtime()?;
    rt.block_on(async {
        let server = VodServer::bind(args.listen, &identity, &named)?;
        let addr = server.local_addr()?;
        println!("serving on {addr} (UDP), certificate SHA-256 {fingerprint}");
        for (name, path) in &named {
            println!("  vod/{name}  {}", path.display());
        }
        server.run().await?;
        Ok(())
    })
}

/// `splatcast publish`.
pub struct PublishArgs {
    pub input: PathBuf,
    pub to: String,
    pub trust: TrustArgs,
    pub looped: bool,
    pub ladder: Vec<Quality>,
    pub options: EncodeOptions,
    pub strict: bool,
    /// Set when the input is a multi-view video: how it is learnt (online).
    pub learn: Option<LearnOptions>,
}

pub fn publish(args: PublishArgs) -> Result<()> {
    check_timing(&args.options)?;
    let address: Address = args.to.parse()?;
    let trust = args.trust.trust()?;
    let is_file = args
        .input
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("mp4"));
    ensure!(
        args.ladder.is_empty() || !args.looped,
        "--ladder encodes renditions live, once; --loop replays a file as it is"
    );
    ensure!(args.ladder.len() <= 8, "--ladder: at most 8 renditions");
    let mut renditions: Vec<(String, EncodeOptions)> = Vec::new();
    for quality in &args.ladder {
        let name = quality
            .to_possible_value()
            .map_or_else(|| format!("{quality:?}"), |v| v.get_name().to_owned());
        ensure!(
            renditions.iter().all(|(n, _)| *n != name),
            "--ladder names '{name}' twice"
        );
        let options = EncodeOptions {
            quality: *quality,
            ..args.options.clone()
        };
        renditions.push((name, options));
    }
    if renditions.is_empty() {
        renditions.push((String::new(), args.options.clone()));
    }
    let rt = runtime()?;
    rt.block_on(async {
        let (origin, driver) = moq_net::origin::Producer::new(moq_net::origin::Config::default());
        tokio::spawn(moq_net::time::run(driver));
        let session = connect(
            &address,
            &trust,
            moq_net::Client::new().with_publisher(&origin),
        )
        .await
        .with_context(|| format!("{address}"))?;
        let broadcast = origin.create_broadcast("")?;
        let work = async {
            if let Some(options) = args.learn {
                ensure!(
                    args.ladder.is_empty() && !args.looped,
                    "a multi-view video is learnt live, once, at one quality: no --ladder or --loop"
                );
                learn_live(&args.input, broadcast, options).await?;
            } else if is_file && args.ladder.is_empty() {
                replay(&args.input, broadcast, args.looped).await?;
            } else {
                ensure!(
                    !args.looped,
                    "--loop replays a file; live encoding runs once"
                );
                if renditions.len() == 1 {
                    let (_, options) = renditions.remove(0);
                    encode_frame_by_frame(&args.input, broadcast, options, args.strict).await?;
                } else {
                    encode_live(&args.input, broadcast, renditions, args.strict).await?;
                }
            }
            // Let the last frames leave before the session closes.
            tokio::time::sleep(Duration::from_millis(300)).await;
            Ok(())
        };
        // A refusal (bad token, no access) arrives as the relay closing the session; a relay
        // that goes away (a restart) is reconnected to, and the broadcast goes on.
        tokio::select! {
            done = work => done,
            err = stay_connected(session, &address, &trust, &origin, Duration::from_secs(120)) => {
                Err(anyhow::anyhow!("{address}: the session ended: {err}"))
            }
        }
    })
}

/// Sends a Splatcast file's GOPs at its frame rate, each frame's chunks as one MoQ frame per
/// track (GOP-fragmented files are split the same way).
async fn replay(path: &Path, broadcast: moq_net::broadcast::Producer, looped: bool) -> Result<()> {
    let mut reader = open(path)?;
    let fps = reader.fps();
    let side = reader.tracks().side;
    let mut writer = BroadcastWriter::new(broadcast, reader.movie().clone())?;
    let start = Instant::now();
    let (mut group, mut sent) = (0u64, 0u64);
    loop {
        for g in 0..reader.gop_count() {
            let fragment = match reader.gop_fragment(g) {
                Ok(f) => f,
                Err(e) => {
                    eprintln!("{}: skipping GOP {g}: {e}", path.display());
                    continue;
                }
            };
            let (first, frames) = reader.gop_span(g)?;
            for (track, frame, mut part) in split_by_frame(&fragment, side) {
                let at = sent + frame.saturating_sub(first);
                // The broadcast's timeline goes on across loops.
                part.base_time = at * FRAME_TICKS as u64;
                tokio::time::sleep_until(start + Duration::from_secs_f64(at as f64 / fps)).await;
                let chunk = Chunk {
                    track: Some(track),
                    frame: at,
                    bytes: media_segment(&part),
                };
                writer.write(group, &chunk)?;
            }
            writer.finish_group()?;
            group += 1;
            sent += frames;
        }
        if !looped {
            break;
        }
    }
    writer.finish()?;
    println!("sent {group} GOPs, {sent} frames");
    Ok(())
}

/// Encodes a sequence of Gaussian frames as a live source would deliver them — frame `k` taken
/// at `k / fps` after the start — and sends each frame's chunks the moment the encoder has
/// them ([`LiveEncoder`]: a frame leaves after rav1e's four-frame lookahead, not after its
/// GOP). Prints how long frames took from being taken to being sent.
async fn encode_frame_by_frame(
    input: &Path,
    broadcast: moq_net::broadcast::Producer,
    mut options: EncodeOptions,
    strict: bool,
) -> Result<()> {
    let mut frames = FrameSource::open(input, strict)?;
    let (max_n, degree) = frames.extent()?;
    if let Some(fps) = frames.fps() {
        options.fps = fps;
    }
    let fps = options.fps;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<LiveOutput>();
    let start = std::time::Instant::now();
    let encoding = tokio::task::spawn_blocking(move || -> Result<()> {
        let mut encoder = LiveEncoder::new(stream_layout(&options, max_n, degree), options);
        let mut taken = 0u64;
        frames.each(|frame| {
            // A live source hands over frame k at k / fps; an encoder that falls behind takes
            // it late.
            let due = start + Duration::from_secs_f64(taken as f64 / fps);
            std::thread::sleep(due.saturating_duration_since(std::time::Instant::now()));
            taken += 1;
            let _ = tx.send(encoder.push(frame)?);
            Ok(())
        })?;
        let _ = tx.send(encoder.finish()?);
        Ok(())
    });
    let summary = send_live(&mut rx, &broadcast, |k| {
        Some(start + Duration::from_secs_f64(k as f64 / fps))
    })
    .await;
    encoding.await??;
    println!("{}", summary?);
    Ok(())
}

/// Sends live output as it comes, until its sender closes: the stream header first, each chunk
/// the moment it arrives, one MoQ group per GOP. Returns the closing line, with each frame's
/// wait from being taken (`taken`, by frame index) to its first track's chunk being sent.
async fn send_live(
    rx: &mut tokio::sync::mpsc::UnboundedReceiver<LiveOutput>,
    broadcast: &moq_net::broadcast::Producer,
    taken: impl Fn(u64) -> Option<std::time::Instant>,
) -> Result<String> {
    let mut writer: Option<BroadcastWriter> = None;
    let (mut group, mut groups) = (0u64, 0u64);
    let mut waits: Vec<f64> = Vec::new();
    let mut bytes = 0usize;
    while let Some(out) = rx.recv().await {
        if let Some(init) = &out.init
            && writer.is_none()
        {
            writer = Some(BroadcastWriter::new(broadcast.clone(), parse_init(init)?)?);
        }
        for (g, chunk) in &out.chunks {
            let w = writer
                .as_mut()
                .context("the encoder sent a chunk before the stream header")?;
            if *g != group {
                w.finish_group()?;
                group = *g;
            }
            groups = groups.max(g + 1);
            bytes += chunk.bytes.len();
            w.write(*g, chunk)?;
            if chunk.track == Some(1)
                && let Some(at) = taken(chunk.frame)
            {
                waits.push(at.elapsed().as_secs_f64() * 1e3);
            }
        }
    }
    if let Some(w) = writer {
        w.finish()?;
    }
    Ok(sent_summary(groups, waits.len(), bytes, &mut waits))
}

/// The closing line of a live publisher: GOPs, frames and bytes sent, and the median and worst
/// of `waits`, each frame's milliseconds from being taken to being sent.
fn sent_summary(groups: u64, frames: usize, bytes: usize, waits: &mut [f64]) -> String {
    waits.sort_by(f64::total_cmp);
    let at = |q: f64| {
        waits
            .get(((waits.len() as f64 - 1.0) * q).round() as usize)
            .copied()
            .unwrap_or(0.0)
    };
    format!(
        "sent {groups} GOPs, {frames} frames, {bytes} bytes; taken → sent: median {:.0} ms, max {:.0} ms",
        at(0.5),
        at(1.0)
    )
}

/// Learns a multi-view video online ([`learn`] with its frame clock: frame t taken (t − 1) /
/// fps after the first keyframe is learnt) and sends each frame's chunks as soon as it is
/// learnt and coded (rav1e's low-latency mode; the learner hands chunks over between frames).
/// Prints how long frames took from being taken to being sent.
async fn learn_live(
    input: &Path,
    broadcast: moq_net::broadcast::Producer,
    mut options: LearnOptions,
) -> Result<()> {
    let video = MultiViewVideo::open(input)?;
    if let Some(fps) = video.fps {
        options.encode.fps = fps;
    }
    options.live_budget = Some(1.0 / options.encode.fps);
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<LiveOutput>();
    // When each frame was taken: when it left the learner, less how late it left.
    let taken = std::sync::Arc::new(std::sync::Mutex::new(Vec::<std::time::Instant>::new()));
    let learning = {
        let taken = taken.clone();
        let input = input.to_owned();
        tokio::task::spawn_blocking(move || -> Result<()> {
            learn(&video, &options, std::io::sink(), |event| match event {
                LearnEvent::Frame(report, _) => {
                    let left = std::time::Instant::now();
                    let at = left - Duration::from_secs_f64(report.lag);
                    taken.lock().expect("not poisoned").push(at);
                    // The frame's line, as `encode` prints it (the first comes once the first
                    // keyframe is learnt: the broadcast's first frame leaves then).
                    eprintln!("{report}");
                }
                LearnEvent::Chunks {
                    group,
                    init,
                    chunks,
                } => {
                    let _ = tx.send(LiveOutput {
                        init: init.map(<[u8]>::to_vec),
                        chunks: chunks.iter().map(|c| (group, c.clone())).collect(),
                        index: None,
                    });
                }
                // Online, frames are coded one by one: no whole GOPs.
                LearnEvent::Gop(_) => {}
            })
            .with_context(|| format!("{}", input.display()))?;
            Ok(())
        })
    };
    let summary = send_live(&mut rx, &broadcast, |k| {
        taken.lock().expect("not poisoned").get(k as usize).copied()
    })
    .await;
    learning.await??;
    println!("{}", summary?);
    Ok(())
}

/// Encodes a sequence of Gaussian frames once per rendition of a ladder and sends each GOP as
/// soon as every rendition has coded it, paced so no frame leaves before its time, the
/// renditions' chunks interleaved frame by frame (a GOP at a time: the catalog announces each
/// rendition's bitrate, measured on its first GOP).
async fn encode_live(
    input: &Path,
    broadcast: moq_net::broadcast::Producer,
    mut renditions: Vec<(String, EncodeOptions)>,
    strict: bool,
) -> Result<()> {
    let mut frames = FrameSource::open(input, strict)?;
    let (max_n, degree) = frames.extent()?;
    if let Some(fps) = frames.fps() {
        renditions.iter_mut().for_each(|(_, o)| o.fps = fps);
    }
    let fps = renditions[0].1.fps;
    let count = renditions.len();
    let names: Vec<String> = renditions.iter().map(|(n, _)| n.clone()).collect();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(usize, WrittenGop)>();
    let encoding = tokio::task::spawn_blocking(move || -> Result<()> {
        let mut encoders: Vec<_> = renditions
            .into_iter()
            .enumerate()
            .map(|(k, (_, options))| {
                let layout = stream_layout(&options, max_n, degree);
                let mut encoder = SequenceEncoder::new(std::io::sink(), layout, options, false);
                let tx = tx.clone();
                encoder.observe(move |gop| {
                    let _ = tx.send((k, gop.clone()));
                });
                encoder
            })
            .collect();
        frames.each(|frame| {
            for encoder in &mut encoders {
                encoder.push(frame.clone())?;
            }
            Ok(())
        })?;
        for encoder in encoders {
            encoder.finish()?;
        }
        Ok(())
    });
    let start = Instant::now();
    let mut writer: Option<BroadcastWriter> = None;
    let mut pending: std::collections::BTreeMap<u64, Vec<Option<WrittenGop>>> = Default::default();
    while let Some((k, gop)) = rx.recv().await {
        let slots = pending
            .entry(gop.index)
            .or_insert_with(|| vec![None; count]);
        slots[k] = Some(gop);
        ensure!(
            pending.len() <= 4,
            "the renditions' GOPs diverged (a rendition is more than 3 GOPs behind)"
        );
        while let Some(entry) = pending.first_entry()
            && entry.get().iter().all(Option::is_some)
        {
            let gops: Vec<WrittenGop> = entry.remove().into_iter().flatten().collect();
            if writer.is_none() {
                writer = Some(ladder_writer(&broadcast, &gops, &names, fps)?);
            }
            let w = writer.as_mut().expect("made above");
            let mut chunks: Vec<(usize, &Chunk)> = gops
                .iter()
                .enumerate()
                .flat_map(|(k, g)| g.chunks.iter().map(move |c| (k, c)))
                .collect();
            chunks.sort_by_key(|(k, c)| (c.frame, *k));
            for (k, chunk) in chunks {
                let at = start + Duration::from_secs_f64(chunk.frame as f64 / fps);
                tokio::time::sleep_until(at).await;
                w.write_rendition(k, gops[k].index, chunk)?;
            }
            w.finish_group()?;
            let gop = &gops[0];
            println!(
                "sent GOP {} (frames {}..{}) {:.0} ms after start",
                gop.index,
                gop.first_frame,
                gop.first_frame + gop.frames as u64,
                start.elapsed().as_secs_f64() * 1e3
            );
        }
    }
    encoding.await??;
    if let Some(w) = writer {
        w.finish()?;
    }
    Ok(())
}

/// Gaussian frames to encode live: files (PLY, .splat, SOG, SPZ), or a Splatcast MP4 decoded
/// GOP by GOP (a ladder made from a file: its renditions are transcoded from what it decodes to).
enum FrameSource {
    Files { paths: Vec<PathBuf>, strict: bool },
    Stream(Box<splatcast_protocol::stream::StreamReader<std::io::BufReader<std::fs::File>>>),
}

impl FrameSource {
    fn open(input: &Path, strict: bool) -> Result<Self> {
        let is_file = input
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("mp4"));
        Ok(if is_file {
            Self::Stream(Box::new(open(input)?))
        } else {
            Self::Files {
                paths: list_frames(input)?,
                strict,
            }
        })
    }

    /// Most Gaussians in a frame, and the SH degree.
    fn extent(&mut self) -> Result<(usize, u8)> {
        match self {
            Self::Files { paths, strict } => scan_frames(paths, *strict),
            Self::Stream(reader) => {
                let (mut n, mut degree) = (0, 0);
                for g in 0..reader.gop_count() {
                    let side = reader.gop_sizes(g)?.side;
                    n = n.max(side.keyframe_positions.len());
                    degree = degree.max(side.sh_degree);
                }
                ensure!(n > 0, "the stream holds no Gaussians");
                Ok((n, degree))
            }
        }
    }

    /// A stream's own frame rate.
    fn fps(&self) -> Option<f64> {
        match self {
            Self::Files { .. } => None,
            Self::Stream(reader) => Some(reader.fps()),
        }
    }

    /// Calls `f` with every frame in order.
    fn each(
        self,
        mut f: impl FnMut(splatcast_protocol::GaussianFrame) -> Result<()>,
    ) -> Result<()> {
        match self {
            Self::Files { paths, strict } => {
                for path in &paths {
                    f(load_frame(path, strict, false)?)?;
                }
            }
            Self::Stream(mut reader) => {
                let mut decoder = splatcast_protocol::av1::Rav1dDecoder::new(1);
                for g in 0..reader.gop_count() {
                    for frame in reader.read_gop(g, &mut decoder)?.frames {
                        f(frame)?;
                    }
                }
            }
        }
        Ok(())
    }
}

/// The broadcast writer for the first GOP of each rendition (it carries the stream header);
/// a rendition's bitrate is its first GOP's.
fn ladder_writer(
    broadcast: &moq_net::broadcast::Producer,
    first: &[WrittenGop],
    names: &[String],
    fps: f64,
) -> Result<BroadcastWriter> {
    let mut renditions = Vec::with_capacity(first.len());
    for (gop, name) in first.iter().zip(names) {
        let Some(init) = &gop.init else {
            bail!("the encoder sent a GOP before the stream header");
        };
        let bytes: usize = gop.chunks.iter().map(|c| c.bytes.len()).sum();
        renditions.push(Rendition {
            name: name.clone(),
            bits_per_second: (8.0 * bytes as f64 * fps / gop.frames.max(1) as f64) as u64,
            movie: parse_init(init)?,
        });
    }
    Ok(if renditions.len() == 1 {
        BroadcastWriter::new(broadcast.clone(), renditions.remove(0).movie)?
    } else {
        BroadcastWriter::with_ladder(broadcast.clone(), renditions)?
    })
}

/// `splatcast token`.
#[derive(clap::Args)]
pub struct TokenArgs {
    /// The signing key (JWK).
    #[arg(long)]
    key: PathBuf,
    /// Create the key file first.
    #[arg(long)]
    generate: bool,
    /// The room the token is for.
    #[arg(long)]
    room: Option<String>,
    /// Allow publishing as this participant.
    #[arg(long)]
    publish: Option<String>,
    /// Allow watching the whole room.
    #[arg(long)]
    subscribe: bool,
    /// Lifetime: 90s, 15m, 24h, 7d.
    #[arg(long, default_value = "24h")]
    expires: String,
}

pub fn token(args: TokenArgs) -> Result<()> {
    if args.generate {
        ensure!(
            !args.key.exists(),
            "{}: exists; not overwriting a key",
            args.key.display()
        );
        let key = Key::generate()?;
        write_file(&args.key, key.to_jwk().as_bytes())
            .with_context(|| format!("{}: cannot write", args.key.display()))?;
        eprintln!("wrote {}", args.key.display());
        if args.room.is_none() {
            return Ok(());
        }
    }
    let key = Key::load(&args.key)?;
    let Some(room) = args.room else {
        bail!("--room is needed to mint a token");
    };
    ensure!(
        args.publish.is_some() || args.subscribe,
        "say what the token allows: --publish NAME and/or --subscribe"
    );
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
    let claims = Claims {
        root: format!("rooms/{room}"),
        publish: args.publish.into_iter().collect(),
        subscribe: if args.subscribe {
            vec![String::new()]
        } else {
            Vec::new()
        },
        expires: Some(now + parse_duration(&args.expires)?.as_secs()),
        issued: Some(now),
    };
    println!("{}", key.sign(&claims));
    Ok(())
}

/// "90s", "15m", "24h", "7d".
fn parse_duration(s: &str) -> Result<Duration> {
    let (number, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = number
        .parse()
        .with_context(|| format!("bad duration '{s}' (e.g. 90s, 15m, 24h, 7d)"))?;
    let secs = match unit {
        "s" | "" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => bail!("bad duration '{s}' (e.g. 90s, 15m, 24h, 7d)"),
    };
    Ok(Duration::from_secs(n * secs))
}

#[cfg(test)]
mod tests {
    use super::parse_duration;

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("90s").unwrap().as_secs(), 90);
        assert_eq!(parse_duration("2h").unwrap().as_secs(), 7200);
        assert_eq!(parse_duration("7d").unwrap().as_secs(), 604_800);
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("3w").is_err());
    }
}
