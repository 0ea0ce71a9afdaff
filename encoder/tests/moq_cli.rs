//! `splatcast relay`, `token` and `publish` as a user runs them, over real QUIC on loopback: a
//! file published in a loop arrives GOP for GOP, bit for bit, at a subscriber of the relay; a
//! publisher without a token is refused with one line; a multi-view video is learnt and
//! published live.

use std::io::{BufRead, BufReader, Cursor};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use splatcast_net::{
    Address, StreamCatalog, Trust, connect, install_crypto, moq_net, subscribe, subscribe_frames,
    subscribe_rendition,
};
use splatcast_protocol::av1::{PlaneDecoder, Rav1dDecoder};
use splatcast_protocol::stream::StreamReader;

mod common;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_splatcast"))
}

/// Runs `cmd` to its end; it must succeed (else its stderr is the failure).
fn succeeds(cmd: &mut Command) -> std::process::Output {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Kills the child when the test ends, however it ends.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Nine frames of the wave in `dir/in`.
fn wave_frames(dir: &Path) -> PathBuf {
    let frames = dir.join("in");
    std::fs::create_dir(&frames).unwrap();
    let data =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/seq_playcanvas_wave");
    for i in 1..=9 {
        let name = format!("wave_{i:04}.sog");
        std::fs::copy(data.join(&name), frames.join(&name)).unwrap();
    }
    frames
}

fn wave_file(dir: &Path) -> PathBuf {
    let frames = wave_frames(dir);
    let mp4 = dir.join("wave.mp4");
    succeeds(
        bin()
            .args(["encode", "--gop", "3", "--quality", "low", "-o"])
            .arg(&mp4)
            .arg(frames.join("wave_*.sog")),
    );
    mp4
}

/// Starts a relay on a free port; returns it, its port and certificate fingerprint.
fn relay(key: &Path) -> (Running, u16, String) {
    let mut child = bin()
        .args(["relay", "--listen", "127.0.0.1:0", "--auth-key"])
        .arg(key)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    // "relay listening on 127.0.0.1:PORT (UDP), certificate SHA-256 HEX"
    let port = line
        .split_whitespace()
        .nth(3)
        .and_then(|a| a.rsplit(':').next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("relay said: {line}"));
    let fingerprint = line.split_whitespace().last().unwrap().to_string();
    (Running(child), port, fingerprint)
}

fn publish(mp4: &Path, to: &str, fingerprint: &str, looped: bool) -> Command {
    let mut cmd = bin();
    cmd.arg("publish")
        .arg(mp4)
        .args(["--to", to, "--fingerprint", fingerprint]);
    if looped {
        cmd.arg("--loop");
    }
    cmd
}

/// A viewer of room `demo` on the relay at `port`: its session and participant alice's
/// broadcast, once announced (within `wait`).
async fn alice(
    port: u16,
    fingerprint: &str,
    wait: Duration,
) -> (moq_net::Session, moq_net::broadcast::Consumer) {
    let (origin, driver) = moq_net::origin::Producer::new(moq_net::origin::Config::default());
    tokio::spawn(moq_net::time::run(driver));
    let address: Address = format!("moq://127.0.0.1:{port}/rooms/demo")
        .parse()
        .unwrap();
    let trust = Trust::Pinned(vec![fingerprint.parse().unwrap()]);
    let session = connect(
        &address,
        &trust,
        moq_net::Client::new().with_subscriber(origin.clone()),
    )
    .await
    .unwrap();
    let broadcast = tokio::time::timeout(wait, origin.consume().routed_broadcast("alice"))
        .await
        .expect("the participant appears in the room")
        .unwrap();
    (session, broadcast)
}

/// `splatcast token --generate`: a new signing key in `dir`.
fn signing_key(dir: &Path) -> PathBuf {
    let key = dir.join("root.jwk");
    succeeds(bin().args(["token", "--generate", "--key"]).arg(&key));
    key
}

fn token(key: &Path, args: &[&str]) -> String {
    let out = succeeds(bin().args(["token", "--key"]).arg(key).args(args));
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// A relay on a free port with a signing key in `dir`, and a token for alice to publish in
/// room `demo`: the relay, its port, its certificate fingerprint and the token.
fn room_for_alice(dir: &Path) -> (Running, u16, String, String) {
    let key = signing_key(dir);
    let (relay, port, fingerprint) = relay(&key);
    let jwt = token(&key, &["--room", "demo", "--publish", "alice"]);
    (relay, port, fingerprint, jwt)
}

/// A viewer of participant alice in room `demo` that takes live frames one by one (the player's
/// live path) until `count` have come or none comes for `patience`: each frame's index, when
/// it arrived, and the frame decoded on its own.
async fn live_frames(
    port: u16,
    fingerprint: &str,
    count: usize,
    patience: Duration,
) -> Vec<(u64, std::time::Instant, splatcast_protocol::GaussianFrame)> {
    let (_session, broadcast) = alice(port, fingerprint, Duration::from_secs(120)).await;
    let mut sub = subscribe_frames(broadcast, Duration::from_secs(5))
        .await
        .unwrap();
    let mut decoders: Vec<Box<dyn PlaneDecoder>> = sub
        .tracks
        .video
        .iter()
        .map(|_| Box::new(Rav1dDecoder::new(1)) as Box<dyn PlaneDecoder>)
        .collect();
    let mut arrived = Vec::new();
    while arrived.len() < count {
        let Ok(Some(frame)) = tokio::time::timeout(patience, sub.next()).await else {
            break;
        };
        let frame = frame.unwrap();
        let at = std::time::Instant::now();
        let pictures = frame.decode(&mut decoders).unwrap();
        let planes: Vec<_> = pictures.into_iter().map(|p| vec![p]).collect();
        // One frame of the GOP, unpacked on its own.
        let mut side = (*frame.side).clone();
        side.frame_count = 1;
        side.rematched = vec![0];
        let decoded = splatcast_protocol::gop::unpack(&side, &planes)
            .unwrap()
            .remove(0);
        arrived.push((frame.frame, at, decoded));
    }
    arrived
}

#[test]
fn published_file_reaches_a_subscriber_through_the_relay() {
    let dir = tempfile::tempdir().unwrap();
    let mp4 = wave_file(dir.path());
    let key = signing_key(dir.path());
    let (_relay, port, fingerprint) = relay(&key);

    // No token: refused, one line naming the address.
    let to = format!("moq://127.0.0.1:{port}/rooms/demo/alice");
    let out = publish(&mp4, &to, &fingerprint, false).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("rooms/demo/alice"), "{err}");

    let jwt = token(&key, &["--room", "demo", "--publish", "alice"]);
    let _publisher = Running(
        publish(&mp4, &format!("{to}?jwt={jwt}"), &fingerprint, true)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );

    install_crypto();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let received = rt.block_on(async {
        let (_session, broadcast) = alice(port, &fingerprint, Duration::from_secs(20)).await;
        let mut sub = subscribe(broadcast, None).await.unwrap();
        let mut gops = Vec::new();
        while gops.len() < 4 {
            let gop = tokio::time::timeout(Duration::from_secs(20), sub.next())
                .await
                .expect("GOPs keep coming")
                .expect("the broadcast goes on")
                .unwrap();
            gops.push(gop);
        }
        (sub.tracks.clone(), gops)
    });
    let (tracks, gops) = received;
    let mut reader = StreamReader::open(Cursor::new(std::fs::read(&mp4).unwrap())).unwrap();
    let count = reader.gop_count() as u64;
    let mut decoder = Rav1dDecoder::new(1);
    for pair in gops.windows(2) {
        assert_eq!(pair[1].group, pair[0].group + 1, "consecutive groups");
    }
    for gop in &gops {
        let want = reader.gop_fragment((gop.group % count) as usize).unwrap();
        let got = tracks.decode(&gop.fragment, &mut decoder).unwrap();
        let expect = tracks.decode(&want, &mut decoder).unwrap();
        assert_eq!(got.2, expect.2, "group {}", gop.group);
    }
}

/// `splatcast auth` answers moq-relay's `--auth-url` questions about tokens minted by
/// `splatcast token`: what the token grants, relative to the dialed path; refusals as 403.
#[test]
fn auth_server_grants_what_a_token_says() {
    let dir = tempfile::tempdir().unwrap();
    let key = signing_key(dir.path());
    let mut child = bin()
        .args([
            "auth",
            "--listen",
            "127.0.0.1:0",
            "--private",
            "hidden",
            "--auth-key",
        ])
        .arg(&key)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let _server = Running(child);
    // "auth server on http://127.0.0.1:PORT/ (…)"
    let address = line
        .split_whitespace()
        .nth(3)
        .and_then(|u| u.strip_prefix("http://"))
        .and_then(|u| u.strip_suffix('/'))
        .unwrap_or_else(|| panic!("auth said: {line}"))
        .to_string();
    let ask = |body: &str| -> (String, String) {
        use std::io::{Read, Write};
        let mut tcp = std::net::TcpStream::connect(&address).unwrap();
        write!(
            tcp,
            "POST / HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let mut response = String::new();
        tcp.read_to_string(&mut response).unwrap();
        let (head, body) = response.split_once("\r\n\r\n").unwrap();
        (head.lines().next().unwrap().to_string(), body.to_string())
    };
    let jwt = token(&key, &["--room", "demo", "--publish", "alice"]);
    let (status, body) = ask(&format!(
        r#"{{"id":"ab","event":"connect","path":"/rooms/demo/alice","query":"jwt={jwt}"}}"#
    ));
    assert_eq!(status, "HTTP/1.1 200 OK", "{body}");
    let grant: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(grant["publish"], serde_json::json!(["**"]), "{body}");
    assert!(grant["expires"].as_u64().is_some(), "{body}");
    let (status, body) = ask(r#"{"id":"cd","event":"connect","path":"/rooms/hidden"}"#);
    assert_eq!(status, "HTTP/1.1 403 Forbidden", "{body}");
    assert!(body.contains("private"), "{body}");
}

/// `publish FILE.mp4 --ladder low,high`: the file's frames are transcoded into two renditions
/// of one broadcast; a subscriber finds both in the catalog and decodes the high one's frames.
#[test]
fn a_file_published_as_a_ladder_carries_every_rendition() {
    let dir = tempfile::tempdir().unwrap();
    let mp4 = wave_file(dir.path());
    let (_relay, port, fingerprint, jwt) = room_for_alice(dir.path());
    let to = format!("moq://127.0.0.1:{port}/rooms/demo/alice?jwt={jwt}");
    let _publisher = Running(
        publish(&mp4, &to, &fingerprint, false)
            .args(["--ladder", "low,high", "--gop", "3"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    install_crypto();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let (_session, broadcast) = alice(port, &fingerprint, Duration::from_secs(60)).await;
        let catalog = StreamCatalog::read(&broadcast).await.unwrap();
        let names: Vec<&str> = catalog.ladder.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["low", "high"]);
        assert!(catalog.ladder[1].bits_per_second > catalog.ladder[0].bits_per_second);
        let mut high = subscribe_rendition(&broadcast, catalog, 1, Duration::from_secs(2), None)
            .await
            .unwrap();
        let frame = tokio::time::timeout(Duration::from_secs(60), high.next())
            .await
            .expect("a frame of the high rendition")
            .expect("the broadcast goes on")
            .unwrap();
        let mut decoders: Vec<Box<dyn PlaneDecoder>> = (0..frame.samples.len())
            .map(|_| Box::new(Rav1dDecoder::new(1)) as Box<dyn PlaneDecoder>)
            .collect();
        assert_eq!(frame.index, 0, "starts at a key frame");
        let pictures = frame.decode(&mut decoders).unwrap();
        assert_eq!(pictures.len(), frame.samples.len());
    });
}

#[test]
fn frames_encoded_live_leave_one_by_one_not_a_gop_at_a_time() {
    let dir = tempfile::tempdir().unwrap();
    let frames = wave_frames(dir.path());
    let (_relay, port, fingerprint, jwt) = room_for_alice(dir.path());
    install_crypto();
    let rt = tokio::runtime::Runtime::new().unwrap();
    // The viewer waits for the participant, so it sees the stream from its first frame.
    let print = fingerprint.clone();
    let viewer =
        rt.spawn(async move { live_frames(port, &print, 9, Duration::from_secs(30)).await });
    // Nine frames taken at 4 per second in one GOP of up to 9: sent GOP by GOP, all would
    // arrive together after the last was taken.
    let to = format!("moq://127.0.0.1:{port}/rooms/demo/alice?jwt={jwt}");
    let publisher = succeeds(
        bin()
            .arg("publish")
            .arg(frames.join("wave_*.sog"))
            .args(["--to", &to, "--fingerprint", &fingerprint])
            .args(["--fps", "4", "--gop", "9"]),
    );
    let stdout = String::from_utf8_lossy(&publisher.stdout);
    assert!(stdout.contains("sent 1 GOPs, 9 frames"), "{stdout}");
    let arrived = rt.block_on(viewer).unwrap();
    let order: Vec<u64> = arrived.iter().map(|a| a.0).collect();
    assert_eq!(order, (0..9).collect::<Vec<_>>());
    // Frame 0 left once rav1e's lookahead had 4 more frames (1 s in), frame 4 once it had
    // frame 8 (2 s in): a second apart.
    let gap = arrived[4].1 - arrived[0].1;
    assert!(
        gap > Duration::from_millis(600),
        "frames 0 and 4 arrived {gap:?} apart"
    );
    // Each frame is the input frame as coded: its centre within a hair of the input's.
    let data =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/seq_playcanvas_wave");
    let centre = |f: &splatcast_protocol::GaussianFrame| {
        f.positions.iter().copied().sum::<glam::Vec3>() / f.len() as f32
    };
    for (k, _, decoded) in &arrived {
        let input = splatcast_protocol::formats::load(&data.join(format!("wave_{:04}.sog", k + 1)))
            .unwrap();
        assert_eq!(decoded.len(), input.len());
        let (lo, hi) = input.bounds().unwrap();
        let off = (centre(decoded) - centre(&input)).length() / (hi - lo).length();
        assert!(off < 1e-3, "frame {k}: centre off by {off} of the extent");
    }
}

/// `publish <multi-view video>`: the capture is learnt online and each frame reaches a viewer
/// of the room as soon as it is learnt and coded; the publisher says how long frames took
/// from being taken to being sent.
#[test]
fn a_captured_performance_is_learnt_and_published_live() {
    let dir = tempfile::tempdir().unwrap();
    let video = dir.path().join("video");
    common::write_video(&video);
    let (_relay, port, fingerprint, jwt) = room_for_alice(dir.path());
    install_crypto();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let print = fingerprint.clone();
    let viewer = rt.spawn(async move {
        live_frames(port, &print, common::FRAMES, Duration::from_secs(60)).await
    });
    let to = format!("moq://127.0.0.1:{port}/rooms/demo/alice?jwt={jwt}");
    let publisher = succeeds(
        bin()
            .arg("publish")
            .arg(&video)
            .args(["--to", &to, "--fingerprint", &fingerprint])
            .args(["--iterations", "40", "--max-gaussians", "100"])
            .args([
                "--residual-iterations",
                "5",
                "--sh-degree",
                "0",
                "--gop",
                "3",
            ]),
    );
    let stdout = String::from_utf8_lossy(&publisher.stdout);
    assert!(
        stdout.contains(&format!("sent 2 GOPs, {} frames", common::FRAMES)),
        "{stdout}"
    );
    assert!(stdout.contains("taken → sent: median"), "{stdout}");
    let arrived = rt.block_on(viewer).unwrap();
    let order: Vec<u64> = arrived.iter().map(|a| a.0).collect();
    assert_eq!(order, (0..common::FRAMES as u64).collect::<Vec<_>>());
    assert!(
        arrived
            .iter()
            .all(|(_, _, f)| !f.is_empty() && f.len() <= 100),
        "every frame holds the budget's Gaussians at most"
    );
}
