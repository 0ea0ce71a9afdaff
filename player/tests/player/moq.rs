//! The player's network sources over real QUIC on loopback with TLS: a file published through
//! our relay plays headless frame for frame as it arrives, and a file served on demand seeks to
//! any GOP; every picture equals the file's picture of the same frame bit for bit; a viewer
//! that cannot trust the relay gets one line.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use splatcast_encoder::Quality;
use splatcast_net::auth::{AuthRules, AuthServer};
use splatcast_net::token::{Claims, Key};
use splatcast_net::{
    Address, BroadcastWriter, Identity, Relay, RelayConfig, Rendition, Trust, VodServer, connect,
    install_crypto, moq_net, stay_connected,
};
use splatcast_player::app::PlayerOptions;
use splatcast_player::headless::{self, HeadlessOptions};
use splatcast_player::room::RoomUpdate;
use splatcast_player::{FileSource, LiveSource, PlaneSource, RoomSource, Source, VodSource};
use splatcast_protocol::av1::Picture;
use splatcast_protocol::container::media_segment;
use splatcast_protocol::stream::{Chunk, FRAME_TICKS, StreamReader, split_by_frame};

use crate::{encode_demo, encode_demo_at};

const FRAMES: u64 = 6;

/// Our relay on a free loopback port; its address (no path), trust and signing key.
async fn relay() -> (Address, Trust, Key) {
    install_crypto();
    let identity = Identity::generate(&["localhost".into()]).unwrap();
    let key = Key::generate().unwrap();
    relay_on("127.0.0.1:0".parse().unwrap(), identity, key)
}

/// Our relay on `listen` with this identity and key.
fn relay_on(listen: std::net::SocketAddr, identity: Identity, key: Key) -> (Address, Trust, Key) {
    let trust = Trust::Pinned(vec![identity.fingerprint()]);
    let relay = Relay::bind(listen, RelayConfig::new(identity, key.clone())).unwrap();
    let port = relay.local_addr().unwrap().port();
    tokio::spawn(relay.run());
    (
        format!("moq://127.0.0.1:{port}/").parse().unwrap(),
        trust,
        key,
    )
}

/// Publishes `file` at `rooms/r/<name>` once `go` fires, `laps` times over (the timeline going
/// on), paced at its frame rate, each frame's chunks as one MoQ frame per track; reconnects
/// when the relay goes away.
async fn publish(
    file: &Path,
    name: &str,
    address: Address,
    trust: Trust,
    key: Option<Key>,
    go: tokio::sync::oneshot::Receiver<()>,
    laps: u64,
) {
    let files = [(String::new(), file.to_path_buf())];
    publish_renditions(&files, name, address, trust, key, go, laps).await
}

/// [`publish`] for files of the same frames at several qualities: a ladder, one rendition per
/// file, the renditions' chunks interleaved frame by frame.
async fn publish_renditions(
    files: &[(String, std::path::PathBuf)],
    name: &str,
    address: Address,
    trust: Trust,
    key: Option<Key>,
    go: tokio::sync::oneshot::Receiver<()>,
    laps: u64,
) {
    let mut readers: Vec<_> = files
        .iter()
        .map(|(_, f)| StreamReader::open(std::fs::File::open(f).unwrap()).unwrap())
        .collect();
    let (origin, driver) = moq_net::origin::Producer::new(moq_net::origin::Config::default());
    tokio::spawn(moq_net::time::run(driver));
    let broadcast = origin.create_broadcast("").unwrap();
    let mut writer = if readers.len() == 1 {
        BroadcastWriter::new(broadcast, readers[0].movie().clone()).unwrap()
    } else {
        let renditions = files
            .iter()
            .zip(&mut readers)
            .map(|((rendition, path), reader)| {
                let frames = reader_frames(reader);
                let bytes = std::fs::metadata(path).unwrap().len();
                Rendition {
                    name: rendition.clone(),
                    bits_per_second: 8 * bytes * 30 / frames,
                    movie: reader.movie().clone(),
                }
            })
            .collect();
        BroadcastWriter::with_ladder(broadcast, renditions).unwrap()
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let jwt = key.map(|key| {
        key.sign(&Claims {
            root: "rooms/r".into(),
            publish: vec![name.into()],
            subscribe: vec![String::new()],
            expires: Some(now + 600),
            issued: Some(now),
        })
    });
    let address = address
        .with_path(&format!("rooms/r/{name}"))
        .with_token(jwt);
    let session = connect(
        &address,
        &trust,
        moq_net::Client::new().with_publisher(&origin),
    )
    .await
    .unwrap();
    go.await.unwrap();
    let send = async {
        let start = tokio::time::Instant::now();
        let (gops, frames) = (
            readers[0].gop_count() as u64,
            reader_frames(&mut readers[0]),
        );
        for lap in 0..laps {
            for g in 0..gops {
                let mut parts = Vec::new();
                for (k, reader) in readers.iter_mut().enumerate() {
                    let side = reader.tracks().side;
                    let fragment = reader.gop_fragment(g as usize).unwrap();
                    for (track, frame, part) in split_by_frame(&fragment, side) {
                        parts.push((k, track, frame, part));
                    }
                }
                parts.sort_by_key(|&(k, _, frame, _)| (frame, k));
                for (k, track, frame, mut part) in parts {
                    let at = lap * frames + frame;
                    part.base_time = at * FRAME_TICKS as u64;
                    tokio::time::sleep_until(start + Duration::from_secs_f64(at as f64 / 30.0))
                        .await;
                    let chunk = Chunk {
                        track: Some(track),
                        frame: at,
                        bytes: media_segment(&part),
                    };
                    writer.write_rendition(k, lap * gops + g, &chunk).unwrap();
                }
                writer.finish_group().unwrap();
            }
        }
        writer.finish().unwrap();
        // Let the last frames leave before the session closes.
        tokio::time::sleep(Duration::from_secs(1)).await;
    };
    tokio::select! {
        () = send => {}
        err = stay_connected(session, &address, &trust, &origin, Duration::from_secs(60)) => {
            panic!("publisher: {err}");
        }
    }
}

/// Frames in the stream.
fn reader_frames(reader: &mut StreamReader<std::fs::File>) -> u64 {
    let last = reader.gop_count() - 1;
    let (first, n) = reader.gop_span(last).unwrap();
    first + n
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
        async move { publish(&file, "alice", address, trust, Some(key), ready, 1).await }
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
    runtime.block_on(publisher).unwrap();
    let file_dir = dir.path().join("file");
    render(
        FileSource::open(&file).unwrap().into(),
        0..FRAMES,
        &file_dir,
    );
    played_to_the_end(&shown, &live_dir, &file_dir);
    // The galaxy turns: the frames are not all the same picture.
    let (first, last) = (shown[0], FRAMES - 1);
    assert_ne!(
        std::fs::read(live_dir.join(format!("{first:04}.png"))).unwrap(),
        std::fs::read(live_dir.join(format!("{last:04}.png"))).unwrap()
    );
}

/// A live viewer that joined before the publisher started shows every frame from a key frame
/// on (the first GOP, unless its subscription was still on its way under load) to the end, in
/// order, each picture equal to the file's.
fn played_to_the_end(shown: &[u64], live: &Path, file: &Path) {
    let first = shown.first().copied().expect("frames shown");
    assert_eq!(first % 3, 0, "starts at a key frame: {shown:?}");
    assert!(first <= 3, "at most the first GOP missed: {shown:?}");
    assert_eq!(shown, (first..FRAMES).collect::<Vec<_>>(), "in order");
    same_pictures(live, file, first..FRAMES);
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

/// The demo encoded (2,000 Gaussians, [`FRAMES`] frames, GOPs of 3) and its frames rendered
/// from the file into a folder: what every viewer must show.
fn demo_and_pictures(dir: &Path) -> (PathBuf, PathBuf) {
    let (file, _) = encode_demo(dir, "live.mp4", 2000, FRAMES as usize, 3);
    let pictures = dir.join("file");
    render(
        FileSource::open(&file).unwrap().into(),
        0..FRAMES,
        &pictures,
    );
    (file, pictures)
}

/// A moq-relay process; killed when the test ends.
struct MoqRelay(std::process::Child);

impl Drop for MoqRelay {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A loopback port free for both UDP (QUIC) and TCP (moq-relay's HTTP side).
fn free_port() -> u16 {
    (0..100)
        .find_map(|_| {
            let udp = std::net::UdpSocket::bind("127.0.0.1:0").ok()?;
            let port = udp.local_addr().ok()?.port();
            std::net::TcpListener::bind(("127.0.0.1", port))
                .is_ok()
                .then_some(port)
        })
        .expect("a port free for UDP and TCP")
}

/// Starts a moq-relay node on `port` (generated certificate; public rooms, or sessions checked
/// by the auth server at `auth_url`), joined to the node on `peer` when given, pulling from the
/// relay at `upstream` (URL, certificate SHA-256) when given; returns it and its certificate's
/// fingerprint.
fn moq_relay(
    port: u16,
    peer: Option<u16>,
    auth_url: Option<&str>,
    upstream: Option<(&str, &str)>,
) -> (MoqRelay, Trust) {
    let bin = std::env::var("MOQ_RELAY").unwrap_or_else(|_| "moq-relay".into());
    let listen = format!("127.0.0.1:{port}");
    let mut command = std::process::Command::new(&bin);
    command
        .args(["--listen", &listen, "--listen-tls-generate", "localhost"])
        .args(["--web-http-listen", &listen])
        .args(["--cluster-id", &port.to_string(), "--log-level", "warn"]);
    match auth_url {
        Some(url) => command.args(["--auth-url", url]),
        None => command.args(["--auth-public", "rooms/**"]),
    };
    if let Some((url, fingerprint)) = upstream {
        command.args([
            "--cluster-connect",
            url,
            "--connect-tls-fingerprint",
            fingerprint,
        ]);
    }
    if let Some(peer) = peer {
        command.args([
            "--connect-tls-insecure",
            "--cluster-connect",
            &format!("https://localhost:{peer}/"),
        ]);
    }
    let child = command
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("{bin}: {e} (cargo install moq-relay@0.17.10)"));
    let relay = MoqRelay(child);
    // Its HTTP side serves the generated certificate's SHA-256.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(fingerprint) = http_get(port, "/certificate.sha256") {
            let pin = fingerprint.trim().parse().unwrap();
            return (relay, Trust::Pinned(vec![pin]));
        }
        assert!(
            Instant::now() < deadline,
            "moq-relay on {port} did not come up"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn http_get(port: u16, path: &str) -> std::io::Result<String> {
    use std::io::{Read, Write};
    let mut tcp = std::net::TcpStream::connect(("127.0.0.1", port))?;
    write!(tcp, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n")?;
    let mut response = String::new();
    tcp.read_to_string(&mut response)?;
    match response.split_once("\r\n\r\n") {
        Some((head, body))
            if head.starts_with("HTTP/1.1 200") || head.starts_with("HTTP/1.0 200") =>
        {
            Ok(body.to_string())
        }
        _ => Err(std::io::Error::other(response)),
    }
}

#[test]
#[ignore = "needs moq-relay 0.17.10 (cargo install moq-relay@0.17.10); .ci/run installs it"]
fn moq_relay_and_its_two_node_cluster_carry_a_published_file() {
    let dir = tempfile::tempdir().unwrap();
    let (file, file_dir) = demo_and_pictures(dir.path());

    let (a, b) = (free_port(), free_port());
    let (_node_a, trust_a) = moq_relay(a, None, None, None);
    let (_node_b, trust_b) = moq_relay(b, Some(a), None, None);
    install_crypto();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let node = |port: u16| -> Address {
        format!("moq://127.0.0.1:{port}/rooms/r/alice")
            .parse()
            .unwrap()
    };
    // The publisher on node A; one viewer on A, one on B (the broadcast crosses the cluster).
    let (go, ready) = tokio::sync::oneshot::channel();
    let publisher = runtime.spawn({
        let (file, address, trust) = (file.clone(), node(a), trust_a.clone());
        async move { publish(&file, "alice", address, trust, None, ready, 1).await }
    });
    let viewers: Vec<_> = [(node(a), trust_a), (node(b), trust_b)]
        .into_iter()
        .map(|(address, trust)| std::thread::spawn(move || LiveSource::open(&address, trust)))
        .collect();
    std::thread::sleep(Duration::from_millis(1500));
    go.send(()).unwrap();
    for (name, viewer) in ["moq-relay", "moq-relay cluster"].into_iter().zip(viewers) {
        let source = viewer.join().unwrap().unwrap();
        eprintln!(
            "{name}: joined, first key frame {:?} after connecting",
            source.joined()
        );
        let out = dir.path().join(name.replace(' ', "_"));
        let shown = render(Source::Live(Box::new(source)), 0..u64::MAX, &out);
        played_to_the_end(&shown, &out, &file_dir);
    }
    runtime.block_on(publisher).unwrap();
}

/// A third-party MoQ peer reads our relay: moq-relay dials it as a cluster peer (its own
/// moq-lite client, with our token), takes our announcements, subscribes to our broadcast and
/// serves it on; our player plays it from moq-relay frame for frame.
#[test]
#[ignore = "needs moq-relay 0.17.10 (cargo install moq-relay@0.17.10); .ci/run installs it"]
fn moq_relay_pulls_a_broadcast_from_our_relay() {
    let dir = tempfile::tempdir().unwrap();
    let (file, file_dir) = demo_and_pictures(dir.path());
    install_crypto();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let identity = Identity::generate(&["localhost".into()]).unwrap();
    let fingerprint = identity.fingerprint().to_string();
    let key = Key::generate().unwrap();
    let (ours, our_trust, key) = {
        let _inside = runtime.enter();
        relay_on("127.0.0.1:0".parse().unwrap(), identity, key)
    };
    // moq-relay may watch every room of ours.
    let jwt = key.sign(&Claims {
        root: "rooms".into(),
        subscribe: vec![String::new()],
        ..Claims::default()
    });
    let upstream = format!("moql://127.0.0.1:{}/?jwt={jwt}", ours.port);
    let port = free_port();
    let (_theirs, their_trust) = moq_relay(port, None, None, Some((&upstream, &fingerprint)));

    let theirs: Address = format!("moq://127.0.0.1:{port}/rooms/r/alice")
        .parse()
        .unwrap();
    play_through(
        &runtime,
        (&file, &file_dir),
        (ours, our_trust, Some(key)),
        (theirs, their_trust),
        &dir.path().join("through_moq_relay"),
    );
}

/// Publishes `file` as alice at the first address (with a token signed by the key) once a
/// viewer at the second has subscribed, and checks that the viewer shows every frame from a
/// key frame on, each picture equal to the file's in `pictures`.
fn play_through(
    runtime: &tokio::runtime::Runtime,
    (file, pictures): (&Path, &Path),
    (publish_to, publish_trust, key): (Address, Trust, Option<Key>),
    (view, view_trust): (Address, Trust),
    out: &Path,
) {
    let (go, ready) = tokio::sync::oneshot::channel();
    let publisher = runtime.spawn({
        let file = file.to_path_buf();
        async move { publish(&file, "alice", publish_to, publish_trust, key, ready, 1).await }
    });
    let viewer = std::thread::spawn(move || LiveSource::open(&view, view_trust));
    // Through moq-relay the subscription crosses a node (or its auth server) first.
    std::thread::sleep(Duration::from_millis(2000));
    go.send(()).unwrap();
    let source = viewer.join().unwrap().unwrap();
    let shown = render(Source::Live(Box::new(source)), 0..u64::MAX, out);
    played_to_the_end(&shown, out, pictures);
    runtime.block_on(publisher).unwrap();
}

/// moq-relay checks no tokens itself: `splatcast auth` answers its `--auth-url` with our rule.
/// A token lets a publisher in and its broadcast plays; publishing without a token, with a
/// wrong or expired one, and watching a private room without one are refused.
#[test]
#[ignore = "needs moq-relay 0.17.10 (cargo install moq-relay@0.17.10); .ci/run installs it"]
fn moq_relay_checks_our_tokens_through_splatcast_auth() {
    let dir = tempfile::tempdir().unwrap();
    let (file, file_dir) = demo_and_pictures(dir.path());
    install_crypto();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let key = Key::generate().unwrap();
    let rules = AuthRules {
        key: key.clone(),
        private_rooms: vec!["hidden".into()],
    };
    let server = runtime
        .block_on(AuthServer::bind("127.0.0.1:0".parse().unwrap(), rules))
        .unwrap();
    let url = format!("http://{}/", server.local_addr().unwrap());
    runtime.spawn(server.run());
    let port = free_port();
    let (_relay, trust) = moq_relay(port, None, Some(&url), None);
    let at = |path: &str| -> Address { format!("moq://127.0.0.1:{port}/{path}").parse().unwrap() };

    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let publisher_token = |key: &Key, expires: u64| {
        key.sign(&Claims {
            root: "rooms/r".into(),
            publish: vec!["mallory".into()],
            subscribe: Vec::new(),
            expires: Some(expires),
            issued: Some(now),
        })
    };
    let other = Key::generate().unwrap();
    runtime.block_on(async {
        for (what, token) in [
            ("no token", None),
            (
                "another key's token",
                Some(publisher_token(&other, now + 600)),
            ),
            ("an expired token", Some(publisher_token(&key, now - 10))),
        ] {
            let (origin, driver) =
                moq_net::origin::Producer::new(moq_net::origin::Config::default());
            tokio::spawn(moq_net::time::run(driver));
            let _broadcast = origin.create_broadcast("").unwrap();
            let address = at("rooms/r/mallory").with_token(token);
            let session = connect(
                &address,
                &trust,
                moq_net::Client::new().with_publisher(&origin),
            );
            assert!(
                refused(session.await).await,
                "publishing with {what} was let in"
            );
        }
        let hidden = at("rooms/hidden");
        let private = connect(&hidden, &trust, moq_net::Client::new());
        assert!(
            refused(private.await).await,
            "a private room let a viewer in without a token"
        );
    });

    // A publisher with a token, a viewer of the public room without one.
    play_through(
        &runtime,
        (&file, &file_dir),
        (at(""), trust.clone(), Some(key)),
        (at("rooms/r/alice"), trust),
        &dir.path().join("through_auth"),
    );
}

/// Whether a session was refused: it failed to connect, or the relay closed it within 5 s
/// (a session left open is not refused).
async fn refused(session: Result<moq_net::Session, splatcast_net::NetError>) -> bool {
    match session {
        Err(e) => {
            eprintln!("refused: {e}");
            true
        }
        Ok(session) => match tokio::time::timeout(Duration::from_secs(5), session.closed()).await {
            Ok(err) => {
                eprintln!("closed: {err}");
                true
            }
            Err(_) => false,
        },
    }
}

#[test]
fn publisher_and_viewer_come_back_after_the_relay_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let (file, _) = encode_demo(dir.path(), "loop.mp4", 1000, FRAMES as usize, 3);
    install_crypto();
    let identity = Identity::generate(&["localhost".into()]).unwrap();
    let key = Key::generate().unwrap();
    // The relay in a runtime of its own, so it can be taken down and started again.
    let first = tokio::runtime::Runtime::new().unwrap();
    let (address, trust, _) = {
        let _inside = first.enter();
        relay_on(
            "127.0.0.1:0".parse().unwrap(),
            identity.clone(),
            key.clone(),
        )
    };
    let clients = tokio::runtime::Runtime::new().unwrap();
    let (go, ready) = tokio::sync::oneshot::channel();
    clients.spawn({
        let (file, address, trust, key) =
            (file.clone(), address.clone(), trust.clone(), key.clone());
        async move { publish(&file, "alice", address, trust, Some(key), ready, 1000).await }
    });
    let viewer = std::thread::spawn({
        let (address, trust) = (address.with_path("rooms/r/alice"), trust.clone());
        move || LiveSource::open(&address, trust)
    });
    std::thread::sleep(Duration::from_millis(500));
    go.send(()).unwrap();
    let mut source = viewer.join().unwrap().unwrap();
    let next = |source: &mut LiveSource| {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            assert!(Instant::now() < deadline, "no frame within 30 s");
            if let Ok(Some(frame)) = source.next_frame(Duration::from_secs(1)) {
                return frame;
            }
        }
    };
    let before = (0..10).map(|_| next(&mut source).frame).max().unwrap();

    // Down, then up again on the same port with the same certificate.
    first.shutdown_background();
    let down = Instant::now();
    std::thread::sleep(Duration::from_secs(1));
    let second = tokio::runtime::Runtime::new().unwrap();
    {
        let _inside = second.enter();
        let listen = format!("127.0.0.1:{}", address.port).parse().unwrap();
        relay_on(listen, identity, key);
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    let after = loop {
        assert!(
            Instant::now() < deadline,
            "no frame after the restart within 60 s"
        );
        match source.next_frame(Duration::from_secs(1)) {
            Ok(Some(frame)) if frame.frame > before + 30 => break frame,
            _ => {}
        }
    };
    eprintln!(
        "frame {} arrived {:?} after the relay went down (frame {before} before)",
        after.frame,
        down.elapsed()
    );
    // Playing resumed at a key frame: the GOP's frames follow in order.
    let following = next(&mut source);
    assert_eq!(following.frame, after.frame + 1);
    second.shutdown_background();
    clients.shutdown_background();
}

/// Everyone in a room, side by side: two participants join (each decoded bit for bit like the
/// file), one leaves and the other plays on; the room view draws both in one picture.
#[test]
fn a_room_view_shows_everyone_as_they_join_and_leave() {
    let dir = tempfile::tempdir().unwrap();
    let (file, _) = encode_demo(dir.path(), "room.mp4", 2000, FRAMES as usize, 3);
    let mut stored = FileSource::open(&file).unwrap();
    let want: Vec<Vec<Picture>> = (0..stored.gop_count())
        .flat_map(|g| stored.decode_gop(g).unwrap().frames)
        .collect();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (address, trust, key) = runtime.block_on(relay());
    let room = address.with_path("rooms/r");
    // The viewer comes first: an empty room is a room, not an error.
    let mut viewer = RoomSource::open(&room, trust.clone()).unwrap();
    // 6 frames a lap at 30 fps: alice stays 12 s, bob leaves after 5 s.
    let publishers: Vec<_> = [("alice", 60), ("bob", 25)]
        .into_iter()
        .map(|(name, laps)| {
            let (go, ready) = tokio::sync::oneshot::channel();
            go.send(()).unwrap();
            let (file, address, trust, key) =
                (file.clone(), address.clone(), trust.clone(), key.clone());
            runtime.spawn(async move {
                publish(&file, name, address, trust, Some(key), ready, laps).await
            })
        })
        .collect();

    let watching = std::thread::spawn(move || {
        let deadline = Instant::now() + Duration::from_secs(40);
        let mut names = std::collections::BTreeMap::new();
        let mut frames = std::collections::BTreeMap::<String, usize>::new();
        let mut left = Vec::new();
        let mut after_leaving = 0;
        while Instant::now() < deadline && after_leaving < 10 {
            match viewer.next(Duration::from_millis(100)).unwrap() {
                Some(RoomUpdate::Joined { member, name }) => {
                    names.insert(member, name);
                }
                Some(RoomUpdate::Left { member }) => left.push(names[&member].clone()),
                Some(RoomUpdate::Frame { member, frame }) => {
                    let expected = &want[(frame.frame % FRAMES) as usize];
                    assert!(
                        frame.pictures == *expected,
                        "{} frame {}: planes differ from the file's",
                        names[&member],
                        frame.frame
                    );
                    *frames.entry(names[&member].clone()).or_default() += 1;
                    if !left.is_empty() {
                        after_leaving += 1;
                    }
                }
                Some(RoomUpdate::Note(line)) => eprintln!("room: {line}"),
                None => {}
            }
        }
        (names, frames, left, after_leaving)
    });

    // Drawn while both are there: one picture with two scenes side by side.
    let pictures = dir.path().join("room");
    let source = RoomSource::open(&room, trust).unwrap();
    render(Source::Room(Box::new(source)), 0..40, &pictures);
    let mut sides = 0;
    for entry in std::fs::read_dir(&pictures).unwrap() {
        if apart(&columns(&entry.unwrap().path())) {
            sides += 1;
        }
    }
    assert!(sides > 0, "no picture showed two participants side by side");

    let (names, frames, left, after_leaving) = watching.join().unwrap();
    eprintln!("room: {names:?} frames {frames:?} left {left:?}");
    let mut joined: Vec<_> = names.values().cloned().collect();
    joined.sort();
    assert_eq!(joined, ["alice", "bob"]);
    assert!(frames.values().all(|&n| n >= FRAMES as usize), "{frames:?}");
    assert_eq!(left, ["bob"]);
    assert_eq!(after_leaving, 10, "alice plays on after bob left");
    for p in publishers {
        p.abort();
    }
}

/// Brightness of each column of an RGB PNG.
fn columns(path: &Path) -> Vec<f64> {
    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(path).unwrap()));
    let mut reader = decoder.read_info().unwrap();
    let mut data = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut data).unwrap();
    let (w, h) = (info.width as usize, info.height as usize);
    let mut out = vec![0.0; w];
    for y in 0..h {
        for (x, column) in out.iter_mut().enumerate() {
            let p = &data[3 * (y * w + x)..3 * (y * w + x) + 3];
            *column += p.iter().map(|&c| c as f64).sum::<f64>();
        }
    }
    out
}

/// Two bright scenes, one in each half, with a dark gap between them at the centre (one
/// centred scene is brightest there).
fn apart(columns: &[f64]) -> bool {
    let w = columns.len();
    let peak = |c: &[f64]| c.iter().copied().fold(0.0, f64::max);
    let (left, right) = (peak(&columns[..w / 2]), peak(&columns[w / 2..]));
    let gap = columns[w * 9 / 20..w * 11 / 20]
        .iter()
        .copied()
        .fold(f64::MAX, f64::min);
    left > 0.0 && right > 0.0 && gap < 0.25 * left.min(right)
}

/// What a viewer of a two-rendition ladder saw.
struct LadderRun {
    /// The renditions' files.
    low: PathBuf,
    high: PathBuf,
    /// Their bit rates.
    rates: (u64, u64),
    /// Every frame decoded, in order.
    frames: Vec<splatcast_player::live::LiveDecoded>,
    /// The viewer's notes (rendition switches).
    notes: Vec<String>,
}

/// Publishes the demo at Low and at `high` as a ladder for `laps` laps of 6 frames and watches
/// it live to its end, through a bottleneck of `link(low rate, high rate)` bit/s when given.
fn watch_ladder(
    dir: &Path,
    high: Quality,
    laps: u64,
    link: impl FnOnce(u64, u64) -> Option<u64>,
) -> LadderRun {
    let encode =
        |name: &str, quality| encode_demo_at(dir, name, 2000, FRAMES as usize, 3, quality).0;
    let (low, high) = (encode("low.mp4", Quality::Low), encode("high.mp4", high));
    let rate = |f: &Path| 8 * std::fs::metadata(f).unwrap().len() * 30 / FRAMES;
    let rates = (rate(&low), rate(&high));
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (address, trust, key) = runtime.block_on(relay());
    let mut port = address.port;
    if let Some(bits) = link(rates.0, rates.1) {
        let bottleneck = splatcast_net::impair::Impairment {
            delay: Duration::from_millis(10),
            loss: 0.0,
            seed: 1,
            rate: Some(bits),
        };
        let front = splatcast_net::impair::link(([127, 0, 0, 1], port).into(), bottleneck);
        port = runtime.block_on(front).unwrap().port();
    }
    let (go, ready) = tokio::sync::oneshot::channel();
    let files = [
        ("low".to_string(), low.clone()),
        ("high".to_string(), high.clone()),
    ];
    let publisher =
        runtime.spawn({
            let (address, trust) = (address.clone(), trust.clone());
            async move {
                publish_renditions(&files, "alice", address, trust, Some(key), ready, laps).await
            }
        });
    let viewer = std::thread::spawn(move || {
        let address: Address = format!("moq://127.0.0.1:{port}/rooms/r/alice")
            .parse()
            .unwrap();
        LiveSource::open(&address, trust)
    });
    std::thread::sleep(Duration::from_millis(500));
    go.send(()).unwrap();
    let mut source = viewer.join().unwrap().unwrap();
    let (mut frames, mut notes) = (Vec::new(), Vec::new());
    let deadline = Instant::now() + Duration::from_secs(40);
    while Instant::now() < deadline {
        match source.next_frame(Duration::from_millis(200)) {
            Ok(Some(frame)) => frames.push(frame),
            Ok(None) => {}
            Err(splatcast_player::SourceError::Ended) => break,
            Err(e) => eprintln!("live: {e}"),
        }
        notes.extend(source.take_notes());
    }
    runtime.block_on(publisher).unwrap();
    eprintln!("rates {rates:?} bit/s: {notes:?}");
    LadderRun {
        low,
        high,
        rates,
        frames,
        notes,
    }
}

/// A quality ladder: the viewer starts on the lowest rendition, steps up once it receives it
/// on time for the hold, at a GOP boundary, and every frame is bit for bit the frame of the
/// rendition it came from.
#[test]
fn a_ladder_viewer_steps_up_at_a_gop_boundary() {
    let dir = tempfile::tempdir().unwrap();
    // 45 laps of 6 frames at 30 fps: 9 s.
    let run = watch_ladder(dir.path(), Quality::High, 45, |_, _| None);
    let planes = |file: &Path| -> Vec<Vec<Picture>> {
        let mut stored = FileSource::open(file).unwrap();
        (0..stored.gop_count())
            .flat_map(|g| stored.decode_gop(g).unwrap().frames)
            .collect()
    };
    let (want_low, want_high) = (planes(&run.low), planes(&run.high));
    assert_ne!(want_low, want_high);
    let shown: Vec<(u64, &str)> = run
        .frames
        .iter()
        .map(|frame| {
            let k = (frame.frame % FRAMES) as usize;
            let which = if frame.pictures == want_low[k] {
                "low"
            } else if frame.pictures == want_high[k] {
                "high"
            } else {
                panic!("frame {}: neither rendition's planes", frame.frame);
            };
            (frame.frame, which)
        })
        .collect();
    let switch = shown
        .iter()
        .position(|&(_, w)| w == "high")
        .expect("the viewer stepped up to the high rendition");
    assert!(
        switch > 0 && shown[..switch].iter().all(|&(_, w)| w == "low"),
        "starts low"
    );
    assert!(
        shown[switch..].iter().all(|&(_, w)| w == "high"),
        "stays high"
    );
    assert_eq!(shown[switch].0 % 3, 0, "switches at a GOP's key frame");
    assert!(
        shown.windows(2).all(|w| w[1].0 == w[0].0 + 1),
        "no frame lost or repeated across the switch"
    );
    assert!(
        run.notes.iter().any(|n| n.contains("'high'")),
        "{:?}",
        run.notes
    );
}

/// A quality ladder behind a bottleneck between the two renditions' rates: the viewer probes
/// the high rendition after its hold, falls behind, and steps back down to the low one.
#[test]
fn a_ladder_viewer_steps_down_behind_a_bottleneck() {
    let dir = tempfile::tempdir().unwrap();
    // The viewer's link carries the low rendition with 40 % to spare, not the high one.
    let run = watch_ladder(dir.path(), Quality::Max, 60, |low, high| {
        assert!(high > 9 * low / 5, "{low} vs {high} bit/s");
        Some(7 * low / 5)
    });
    let notes = &run.notes;
    assert!(run.rates.1 > run.rates.0);
    // The probe of the high rendition either took over and was undone, or was given up
    // before its first key frame arrived; either way the viewer ends on the low one.
    assert!(
        notes.iter().any(|n| n.contains("'high'")),
        "never probed: {notes:?}"
    );
    let last = notes.last().map(String::as_str).unwrap_or_default();
    assert!(
        last == "switched to rendition 'low'" || last == "gave up switching to rendition 'high'",
        "ends on the rendition the link carries: {notes:?}"
    );
    assert!(!run.frames.is_empty());
}
