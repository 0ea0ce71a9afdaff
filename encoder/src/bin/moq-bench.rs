//! Streaming over MoQ, measured: a Splatcast file replayed live at its frame rate through our
//! relay to subscribers, every hop over an impaired UDP link (delay each way, random loss).
//!
//! Per run: **join time** (connect → a keyframe complete on every track, side data included:
//! what a player needs before its first picture; decode time is reported beside it), **live latency**
//! per frame (the publisher hands a frame's chunks to MoQ → the last of them arrives at the
//! subscriber, encode excluded), **stalls** (gaps between consecutive frames completing beyond
//! the frame interval) and **lost GOPs** (groups sent but never complete).
//!
//! `cargo run --release -p splatcast-encoder --bin moq-bench -- stream.mp4 [--rtt-ms 50]
//! [--loss 0.01] [--seconds 20] [--subscribers 1]`

use std::collections::{BTreeMap, HashMap};
use std::io::Cursor;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use splatcast_net::impair::{Impairment, link};
use splatcast_net::token::{Claims, Key};
use splatcast_net::{
    Address, BroadcastWriter, Early, Identity, Relay, RelayConfig, StreamCatalog, Trust, connect,
    install_crypto, moq_net, track_frames,
};
use splatcast_protocol::av1::{PlaneDecoder, Rav1dDecoder};
use splatcast_protocol::container::{media_segment, parse_fragment};
use splatcast_protocol::stream::{Chunk, StreamReader, split_by_frame};
use tokio::time::Instant;

struct Args {
    input: PathBuf,
    rtt: Duration,
    loss: f64,
    seconds: f64,
    subscribers: usize,
}

fn args() -> Result<Args> {
    let mut it = std::env::args().skip(1);
    let mut a = Args {
        input: PathBuf::new(),
        rtt: Duration::from_millis(50),
        loss: 0.0,
        seconds: 20.0,
        subscribers: 1,
    };
    while let Some(arg) = it.next() {
        let mut value = || it.next().context("missing value");
        match arg.as_str() {
            "--rtt-ms" => a.rtt = Duration::from_millis(value()?.parse()?),
            "--loss" => a.loss = value()?.parse()?,
            "--seconds" => a.seconds = value()?.parse()?,
            "--subscribers" => a.subscribers = value()?.parse()?,
            s if !s.starts_with('-') => a.input = PathBuf::from(s),
            s => bail!("unknown argument {s}"),
        }
    }
    if a.input.as_os_str().is_empty() {
        bail!(
            "usage: moq-bench stream.mp4 [--rtt-ms 50] [--loss 0.01] [--seconds 20] [--subscribers 1]"
        );
    }
    if !(0.0..1.0).contains(&a.loss) {
        bail!("--loss is a fraction of datagrams in [0, 1), e.g. 0.01 for 1 %");
    }
    Ok(a)
}

/// When each (group, frame in group) left the publisher, and what each subscriber saw.
#[derive(Default)]
struct Log {
    sent: HashMap<(u64, u64), Instant>,
    /// Frames sent per group.
    frames_in: HashMap<u64, u64>,
    groups_sent: u64,
}

/// Arrival of one subscriber's chunks: per (group, frame in group) the tracks seen and the time
/// the last arrived; per group whether the side data came.
#[derive(Default)]
struct Arrivals {
    /// When the subscriber started connecting.
    start: Option<Instant>,
    frames: BTreeMap<(u64, u64), (usize, Instant)>,
    sides: BTreeMap<u64, Instant>,
}

fn main() -> Result<()> {
    let args = args()?;
    let bytes = std::fs::read(&args.input).with_context(|| format!("{}", args.input.display()))?;
    let mut reader = StreamReader::open(Cursor::new(bytes))?;
    let fps = reader.fps();
    let movie = reader.movie().clone();
    let tracks = reader.tracks().clone();
    let gops: Vec<_> = (0..reader.gop_count())
        .map(|g| {
            let (first, _) = reader.gop_span(g)?;
            let fragment = reader.gop_fragment(g)?;
            Ok(split_by_frame(&fragment, tracks.side)
                .into_iter()
                .map(|(track, frame, part)| (track, frame - first, media_segment(&part)))
                .collect::<Vec<_>>())
        })
        .collect::<Result<_>>()?;
    // Decode time of one GOP's first frame (what a joining player pays before its picture).
    let first = reader.gop_fragment(0)?;
    let samples = tracks.track_samples(&first)?;
    let t = std::time::Instant::now();
    for s in &samples {
        Rav1dDecoder::new(1).decode_gop(&s[..1])?;
    }
    let decode_ms = t.elapsed().as_secs_f64() * 1e3;

    install_crypto();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let identity = Identity::generate(&["localhost".into()])?;
        let trust = Trust::Pinned(vec![identity.fingerprint()]);
        let key = Key::generate()?;
        let relay = Relay::bind(
            "127.0.0.1:0".parse()?,
            RelayConfig::new(identity, key.clone()),
        )?;
        let relay_addr = relay.local_addr()?;
        tokio::spawn(relay.run());
        let impairment = |seed| Impairment {
            delay: args.rtt / 2,
            loss: args.loss,
            seed,
            rate: None,
        };
        let publish_link = link(relay_addr, impairment(1)).await?;
        let jwt = key.sign(&Claims {
            root: "rooms/bench".into(),
            publish: vec!["p".into()],
            ..Claims::default()
        });
        let address: Address =
            format!("moq://127.0.0.1:{}/rooms/bench/p?jwt={jwt}", publish_link.port()).parse()?;
        let (origin, driver) = moq_net::origin::Producer::new(moq_net::origin::Config::default());
        tokio::spawn(moq_net::time::run(driver));
        let _publisher = connect(&address, &trust, moq_net::Client::new().with_publisher(&origin)).await?;
        let mut writer = BroadcastWriter::new(origin.create_broadcast("")?, movie)?;
        let log = Arc::new(Mutex::new(Log::default()));

        // Subscribers, each through its own impaired link, joining while the stream runs.
        let mut joins = Vec::new();
        for s in 0..args.subscribers {
            let link = link(relay_addr, impairment(100 + s as u64)).await?;
            let address: Address =
                format!("moq://127.0.0.1:{}/rooms/bench/p", link.port()).parse()?;
            let trust = trust.clone();
            let arrivals = Arc::new(Mutex::new(Arrivals::default()));
            let record = arrivals.clone();
            let side = tracks.side;
            joins.push((arrivals, tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(500 + 137 * s as u64)).await;
                let start = Instant::now();
                let (origin, driver) = moq_net::origin::Producer::new(moq_net::origin::Config::default());
                tokio::spawn(moq_net::time::run(driver));
                let session = connect(&address, &trust, moq_net::Client::new().with_subscriber(origin.clone())).await?;
                let broadcast = origin.consume().routed_broadcast("").await?;
                record.lock().unwrap().start = Some(start);
                watch(broadcast, record, side).await?;
                drop(session);
                anyhow::Ok(start)
            })));
        }

        // The publisher: frames at the file's rate, looping, one group per GOP.
        let start = Instant::now();
        let (mut group, mut frame) = (0u64, 0u64);
        'run: loop {
            for chunks in &gops {
                let frames = chunks.iter().map(|c| c.1).max().unwrap_or(0) + 1;
                for k in 0..frames {
                    let at = start + Duration::from_secs_f64(frame as f64 / fps);
                    if at.duration_since(start).as_secs_f64() > args.seconds {
                        break 'run;
                    }
                    tokio::time::sleep_until(at).await;
                    for (track, _, bytes) in chunks.iter().filter(|c| c.1 == k) {
                        let chunk = Chunk { track: Some(*track), frame, bytes: bytes.clone() };
                        writer.write(group, &chunk)?;
                    }
                    let mut l = log.lock().unwrap();
                    l.sent.insert((group, k), Instant::now());
                    *l.frames_in.entry(group).or_default() += 1;
                    drop(l);
                    frame += 1;
                }
                writer.finish_group()?;
                group += 1;
                log.lock().unwrap().groups_sent = group;

            }
        }
        writer.finish_group()?;
        tokio::time::sleep(Duration::from_secs(2)).await;
        let log = log.lock().unwrap();
        println!(
            "{} s of {:.0} fps, {} GOPs sent, {} ms RTT per hop, {:.1} % loss per datagram each way, first-frame decode {decode_ms:.1} ms",
            args.seconds, fps, log.groups_sent, args.rtt.as_millis(), args.loss * 100.0
        );
        for (s, (arrivals, join)) in joins.into_iter().enumerate() {
            join.abort();
            let arrivals = arrivals.lock().unwrap();
            report(s, &arrivals, &log, &tracks, fps);
        }
        anyhow::Ok(())
    })
}

/// Records when every chunk of every track arrives (no decoding: this measures the transport).
async fn watch(
    broadcast: moq_net::broadcast::Consumer,
    arrivals: Arc<Mutex<Arrivals>>,
    side: u32,
) -> Result<()> {
    let early = Early::start(&broadcast);
    let catalog = StreamCatalog::read(&broadcast).await?;
    let (mut frames, _tasks) = track_frames(&broadcast, &catalog, None, Some(early)).await?;
    while let Some(f) = frames.recv().await {
        let now = Instant::now();
        let mut a = arrivals.lock().unwrap();
        if f.track == side {
            a.sides.insert(f.group, now);
        } else if parse_fragment(&f.payload).is_ok() {
            let e = a.frames.entry((f.group, f.index)).or_insert((0, now));
            e.0 += 1;
            e.1 = e.1.max(now);
        }
    }
    Ok(())
}

fn report(
    s: usize,
    arrivals: &Arrivals,
    log: &Log,
    tracks: &splatcast_protocol::stream::TrackSet,
    fps: f64,
) {
    let n = tracks.video.len();
    let complete: Vec<((u64, u64), Instant)> = arrivals
        .frames
        .iter()
        .filter(|(key, (count, _))| *count == n && arrivals.sides.contains_key(&key.0))
        .map(|(key, (_, at))| (*key, *at))
        .collect();
    let first_group = complete.first().map_or(0, |(k, _)| k.0);
    // Join: connect → the first keyframe (of any GOP: a late joiner starts at the newest one)
    // complete on every track, side data included.
    let join = complete
        .iter()
        .filter(|(k, _)| k.1 == 0)
        .filter_map(|(k, at)| Some((*arrivals.sides.get(&k.0)?).max(*at)))
        .min()
        .zip(arrivals.start)
        .map(|(at, start)| (at - start).as_secs_f64() * 1e3)
        .unwrap_or(f64::NAN);
    // Latency of live frames (the joining GOP's cached frames arrive in a burst: left out).
    let mut latencies: Vec<f64> = complete
        .iter()
        .filter(|(key, _)| key.0 > first_group)
        .filter_map(|(key, at)| {
            let sent = log.sent.get(key)?;
            Some(at.saturating_duration_since(*sent).as_secs_f64() * 1e3)
        })
        .collect();
    latencies.sort_by(f64::total_cmp);
    let pct = |p: f64| {
        latencies
            .get(((latencies.len() as f64 - 1.0) * p).round() as usize)
            .copied()
            .unwrap_or(f64::NAN)
    };
    // Completion order by time; the longest gap beyond one frame interval is the worst stall.
    let mut times: Vec<Instant> = complete.iter().map(|(_, at)| *at).collect();
    times.sort();
    let interval = 1.0 / fps;
    let stalls: Vec<f64> = times
        .windows(2)
        .map(|w| (w[1] - w[0]).as_secs_f64() - interval)
        .filter(|&gap| gap > 0.1)
        .collect();
    let worst = stalls.iter().copied().fold(0.0, f64::max);
    // A GOP counts as delivered when every frame of it completed.
    let mut per_group: BTreeMap<u64, u64> = BTreeMap::new();
    for (k, _) in &complete {
        *per_group.entry(k.0).or_default() += 1;
    }
    let lost = (first_group..log.groups_sent)
        .filter(|g| {
            per_group.get(g).copied().unwrap_or(0) < log.frames_in.get(g).copied().unwrap_or(1)
        })
        .count();
    println!(
        "subscriber {s}: join {join:.0} ms; {} frames complete from GOP {first_group}; latency p50 {:.1} ms, p95 {:.1} ms, max {:.1} ms; stalls > 100 ms: {} (worst {:.0} ms); lost GOPs: {lost}",
        complete.len(),
        pct(0.5),
        pct(0.95),
        pct(1.0),
        stalls.len(),
        worst * 1e3
    );
}
