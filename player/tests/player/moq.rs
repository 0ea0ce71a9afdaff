//! The player's network sources over real QUIC on loopback with TLS: a file published through
//! our relay plays headless frame for frame as it arrives, and a file served on demand seeks to
//! any GOP; every picture equals the file's picture of the same frame bit for bit; a viewer
//! that cannot trust the relay gets one line.

use std::path::Path;
use std::time::{Duration, Instant};

use splatcast_net::token::{Claims, Key};
use splatcast_net::{
    Address, BroadcastWriter, Identity, Relay, RelayConfig, Trust, VodServer, connect,
    install_crypto, moq_net,
};
use splatcast_player::app::PlayerOptions;
use splatcast_player::headless::{self, HeadlessOptions};
use splatcast_player::{FileSource, LiveSource, PlaneSource, Source, VodSource};
use splatcast_protocol::container::media_segment;
use splatcast_protocol::stream::{Chunk, StreamReader, split_by_frame};

use crate::encode_demo;

const FRAMES: u64 = 6;

/// Our relay on a free loopback port; its address (no path), trust and signing key.
async fn relay() -> (Address, Trust, Key) {
    install_crypto();
    let identity = Identity::generate(&["localhost".into()]).unwrap();
    let trust = Trust::Pinned(vec![identity.fingerprint()]);
    let key = Key::generate().unwrap();
    let relay = Relay::bind(
        "127.0.0.1:0".parse().unwrap(),
        RelayConfig {
            identity,
            key: key.clone(),
            private_rooms: Vec::new(),
            cache_bytes: 64 << 20,
            cache_age: Duration::from_secs(30),
        },
    )
    .unwrap();
    let port = relay.local_addr().unwrap().port();
    tokio::spawn(relay.run());
    (
        format!("moq://127.0.0.1:{port}/").parse().unwrap(),
        trust,
        key,
    )
}

/// Publishes `file` at `rooms/r/alice` once `go` fires, paced at its frame rate, each frame's
/// chunks as one MoQ frame per track.
async fn publish(
    file: &Path,
    address: Address,
    trust: Trust,
    key: Key,
    go: tokio::sync::oneshot::Receiver<()>,
) {
    let mut reader = StreamReader::open(std::fs::File::open(file).unwrap()).unwrap();
    let (origin, driver) = moq_net::origin::Producer::new(moq_net::origin::Config::default());
    tokio::spawn(moq_net::time::run(driver));
    let mut writer =
        BroadcastWriter::new(origin.create_broadcast("").unwrap(), reader.movie().clone()).unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let jwt = key.sign(&Claims {
        root: "rooms/r".into(),
        publish: vec!["alice".into()],
        subscribe: vec![String::new()],
        expires: Some(now + 60),
        issued: Some(now),
    });
    let _session = connect(
        &address.with_path("rooms/r/alice").with_token(Some(jwt)),
        &trust,
        moq_net::Client::new().with_publisher(&origin),
    )
    .await
    .unwrap();
    go.await.unwrap();
    let start = tokio::time::Instant::now();
    let side = reader.tracks().side;
    for g in 0..reader.gop_count() {
        let fragment = reader.gop_fragment(g).unwrap();
        for (track, frame, part) in split_by_frame(&fragment, side) {
            tokio::time::sleep_until(start + Duration::from_secs_f64(frame as f64 / 30.0)).await;
            let chunk = Chunk {
                track: Some(track),
                frame,
                bytes: media_segment(&part),
            };
            writer.write(g as u64, &chunk).unwrap();
        }
        writer.finish_group().unwrap();
    }
    writer.finish().unwrap();
    // Let the last frames leave before the session closes.
    tokio::time::sleep(Duration::from_secs(1)).await;
}

fn render(source: Source, frames: std::ops::Range<u64>, out: &Path) -> Vec<u64> {
    let report = headless::run(
        HeadlessOptions {
            source,
            frames,
            size: (160, 120),
            player: PlayerOptions::default(),
            out: Some(out.to_path_buf()),
        },
        |_, _| {},
    )
    .unwrap();
    report.timings.iter().map(|t| t.frame).collect()
}

#[test]
fn a_published_file_plays_live_frame_for_frame_bit_for_bit() {
    let dir = tempfile::tempdir().unwrap();
    let (file, _) = encode_demo(dir.path(), "live.mp4", 2000, FRAMES as usize, 3);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (address, trust, key) = runtime.block_on(relay());
    let (go, ready) = tokio::sync::oneshot::channel();
    let publisher = runtime.spawn({
        let (file, address, trust) = (file.clone(), address.clone(), trust.clone());
        async move { publish(&file, address, trust, key, ready).await }
    });

    // The viewer joins first (it waits for the first key frame), then the publisher starts.
    let viewer = std::thread::spawn({
        let (address, trust) = (address.with_path("rooms/r/alice"), trust.clone());
        move || {
            let started = Instant::now();
            let source = LiveSource::open(&address, trust).unwrap();
            (source, started.elapsed())
        }
    });
    std::thread::sleep(Duration::from_millis(700));
    go.send(()).unwrap();
    let (source, joined) = viewer.join().unwrap();
    eprintln!(
        "joined in {joined:?} (connect → first key frame: {:?})",
        source.joined()
    );

    let live_dir = dir.path().join("live");
    let shown = render(Source::Live(Box::new(source)), 0..u64::MAX, &live_dir);
    assert_eq!(
        shown,
        (0..FRAMES).collect::<Vec<_>>(),
        "every frame, in order"
    );
    runtime.block_on(publisher).unwrap();

    let file_dir = dir.path().join("file");
    render(
        FileSource::open(&file).unwrap().into(),
        0..FRAMES,
        &file_dir,
    );
    for frame in 0..FRAMES {
        let name = format!("{frame:04}.png");
        let live = std::fs::read(live_dir.join(&name)).unwrap();
        let stored = std::fs::read(file_dir.join(&name)).unwrap();
        assert!(
            live == stored,
            "frame {frame}: live and file pictures differ"
        );
    }
    // The galaxy turns: the frames are not all the same picture.
    assert_ne!(
        std::fs::read(live_dir.join("0000.png")).unwrap(),
        std::fs::read(live_dir.join("0005.png")).unwrap()
    );
}

#[test]
fn a_relay_that_cannot_be_trusted_is_one_line() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (address, _, _) = runtime.block_on(relay());
    let wrong = Trust::Pinned(vec!["00".repeat(32).parse().unwrap()]);
    let err = match LiveSource::open(&address.with_path("rooms/r/alice"), wrong) {
        Ok(_) => panic!("connected to a relay it should not trust"),
        Err(e) => e.to_string(),
    };
    eprintln!("{err}");
    assert!(!err.contains('\n'), "{err}");
    assert!(err.contains("QUIC") || err.contains("certificate"), "{err}");
}

fn same_pictures(a: &Path, b: &Path, frames: std::ops::Range<u64>) {
    for frame in frames {
        let name = format!("{frame:04}.png");
        let x = std::fs::read(a.join(&name)).unwrap();
        let y = std::fs::read(b.join(&name)).unwrap();
        assert!(x == y, "frame {frame}: pictures differ");
    }
}

#[test]
fn a_served_file_seeks_to_any_gop_and_plays_bit_for_bit() {
    let dir = tempfile::tempdir().unwrap();
    let (file, _) = encode_demo(dir.path(), "talk.mp4", 2000, 9, 3);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    install_crypto();
    let identity = Identity::generate(&["localhost".into()]).unwrap();
    let trust = Trust::Pinned(vec![identity.fingerprint()]);
    let server = runtime
        .block_on(async {
            VodServer::bind(
                "127.0.0.1:0".parse().unwrap(),
                &identity,
                &[("talk".into(), file.clone())],
            )
        })
        .unwrap();
    let port = server.local_addr().unwrap().port();
    runtime.spawn(server.run());
    let address: Address = format!("moq://127.0.0.1:{port}/vod/talk").parse().unwrap();

    let opened = Instant::now();
    let mut vod = VodSource::open(&address, trust).unwrap();
    eprintln!(
        "opened (catalog + GOP 0's side data) in {:?}",
        opened.elapsed()
    );
    let mut stored = FileSource::open(&file).unwrap();
    assert_eq!(vod.frame_count(), 9);
    assert_eq!(vod.gop_count(), stored.gop_count());
    for g in 0..=stored.gop_count() {
        assert_eq!(vod.gop_start(g), stored.gop_start(g));
    }
    // Seeks in any order land on the file's GOP, bit for bit after decode.
    for g in [2, 0, 1, 2] {
        let fetched = Instant::now();
        let a = vod.decode_gop(g).unwrap();
        eprintln!("GOP {g}: fetched and decoded in {:?}", fetched.elapsed());
        let b = stored.decode_gop(g).unwrap();
        assert_eq!(
            (a.first_frame, &a.frames),
            (b.first_frame, &b.frames),
            "GOP {g}"
        );
    }
    assert!(vod.decode_gop(3).is_err());

    // Through the player: frames from the middle, equal to the file's pictures.
    let (vod_dir, file_dir) = (dir.path().join("vod"), dir.path().join("file"));
    render(Source::Stored(Box::new(vod)), 4..7, &vod_dir);
    render(FileSource::open(&file).unwrap().into(), 4..7, &file_dir);
    same_pictures(&vod_dir, &file_dir, 4..7);

    // A file that is not a stream is refused, naming it.
    let junk = dir.path().join("junk.mp4");
    std::fs::write(&junk, b"not a stream").unwrap();
    let err = runtime
        .block_on(async {
            VodServer::bind(
                "127.0.0.1:0".parse().unwrap(),
                &identity,
                &[("junk".into(), junk.clone())],
            )
        })
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("junk.mp4"), "{err}");
}
