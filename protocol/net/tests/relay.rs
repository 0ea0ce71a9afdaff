//! Real QUIC on loopback with TLS: a publisher, our relay and subscribers over raw QUIC and
//! WebTransport; tokens refused when wrong, missing or expired; late joiners start at the
//! latest GOP.

use std::io::Cursor;
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use splatcast_net::token::{Claims, Key};
use splatcast_net::{
    Address, BroadcastWriter, Identity, Relay, RelayConfig, RelayRooms, Trust, connect,
    install_crypto, moq_net, subscribe,
};
use splatcast_protocol::GaussianFrame;
use splatcast_protocol::av1::{EncoderSettings, Rav1dDecoder};
use splatcast_protocol::formats;
use splatcast_protocol::gop::{Attribute, GopStart};
use splatcast_protocol::layout::Grid;
use splatcast_protocol::stream::{
    Fragmentation, StreamLayout, StreamReader, StreamWriter, WrittenGop,
};
use tokio::time::timeout;

const LIMIT: Duration = Duration::from_secs(20);

/// Two GOPs (3 + 3 frames) of the wave, fragmented per frame, and the whole file.
fn stream() -> (Vec<u8>, Vec<WrittenGop>) {
    let dir =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/seq_playcanvas_wave");
    let frames: Vec<GaussianFrame> = (1..=6)
        .map(|i| formats::load(&dir.join(format!("wave_{i:04}.sog"))).unwrap())
        .collect();
    let layout = StreamLayout {
        fps: 30.0,
        grid: Grid::for_count(frames[0].len()),
        sh_degree: frames[0].sh_degree,
        tracks: Attribute::for_degree(frames[0].sh_degree)
            .into_iter()
            .map(|a| (a, 10))
            .collect(),
    };
    let settings = EncoderSettings {
        speed: 10,
        quantizer: 90,
        fps: 30.0,
        threads: 1,
    };
    let mut writer = StreamWriter::new(
        layout.clone(),
        vec![settings; layout.tracks.len()],
        Fragmentation::Frame,
        1,
    );
    let mut file = Vec::new();
    let mut gops = Vec::new();
    for (k, start) in [(0, GopStart::First), (3, GopStart::Length)] {
        let gop = writer
            .write_gop(&frames[k..k + 3], start, vec![0; 3])
            .unwrap();
        file.extend(gop.init.iter().flatten());
        gop.chunks.iter().for_each(|c| file.extend(&c.bytes));
        gops.push(gop);
    }
    file.extend(writer.finish().unwrap());
    (file, gops)
}

struct Setup {
    address: Address,
    trust: Trust,
    key: Key,
    rooms: RelayRooms,
}

fn token(key: &Key, root: &str, publish: &[&str], subscribe: &[&str], ttl: i64) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    key.sign(&Claims {
        root: root.into(),
        publish: publish.iter().map(|s| s.to_string()).collect(),
        subscribe: subscribe.iter().map(|s| s.to_string()).collect(),
        expires: Some((now + ttl) as u64),
        issued: Some(now as u64),
    })
}

fn relay(private_rooms: &[&str]) -> Setup {
    relay_with(|config| {
        config.private_rooms = private_rooms.iter().map(|s| s.to_string()).collect();
    })
}

fn relay_with(configure: impl FnOnce(&mut RelayConfig)) -> Setup {
    install_crypto();
    let identity = Identity::generate(&["localhost".into()]).unwrap();
    let trust = Trust::Pinned(vec![identity.fingerprint()]);
    let key = Key::generate().unwrap();
    let mut config = RelayConfig::new(identity, key.clone());
    configure(&mut config);
    let relay = Relay::bind("127.0.0.1:0".parse().unwrap(), config).unwrap();
    let port = relay.local_addr().unwrap().port();
    let rooms = relay.rooms();
    tokio::spawn(relay.run());
    Setup {
        address: format!("moq://127.0.0.1:{port}/").parse().unwrap(),
        trust,
        key,
        rooms,
    }
}

/// A publisher of the stream's catalog at `rooms/<who>` (`room/participant`); the GOPs are
/// written by the caller.
async fn publisher(
    setup: &Setup,
    who: &str,
    jwt: Option<String>,
    init: &[u8],
) -> Result<(moq_net::Session, BroadcastWriter, moq_net::origin::Producer), splatcast_net::NetError>
{
    let (origin, driver) = moq_net::origin::Producer::new(moq_net::origin::Config::default());
    tokio::spawn(moq_net::time::run(driver));
    let movie = splatcast_protocol::container::parse_init(init).unwrap();
    let writer = BroadcastWriter::new(origin.create_broadcast("").unwrap(), movie)?;
    let address = setup
        .address
        .with_path(&format!("rooms/{who}"))
        .with_token(jwt);
    let session = connect(
        &address,
        &setup.trust,
        moq_net::Client::new().with_publisher(&origin),
    )
    .await?;
    Ok((session, writer, origin))
}

/// A viewer of `path`; returns the broadcast at `who` below it.
async fn viewer(
    setup: &Setup,
    address: Address,
    who: &str,
) -> Result<(moq_net::Session, moq_net::broadcast::Consumer), splatcast_net::NetError> {
    let (origin, driver) = moq_net::origin::Producer::new(moq_net::origin::Config::default());
    tokio::spawn(moq_net::time::run(driver));
    let session = connect(
        &address,
        &setup.trust,
        moq_net::Client::new().with_subscriber(origin.clone()),
    )
    .await?;
    let broadcast = timeout(LIMIT, origin.consume().routed_broadcast(who))
        .await
        .expect("broadcast routed in time")?;
    Ok((session, broadcast))
}

fn send(writer: &mut BroadcastWriter, gop: &WrittenGop) {
    for chunk in &gop.chunks {
        writer.write(gop.index, chunk).unwrap();
    }
    writer.finish_group().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_relay_subscribe_over_raw_quic_and_webtransport() {
    let (file, gops) = stream();
    let setup = relay(&[]);
    let init = gops[0].init.clone().unwrap();
    let jwt = token(&setup.key, "rooms/r", &["alice"], &[""], 60);
    let (_publisher, mut writer, _origin) = publisher(&setup, "r/alice", Some(jwt), &init)
        .await
        .unwrap();

    // One viewer of the participant over raw QUIC, one of the whole room over WebTransport.
    let raw = setup.address.with_path("rooms/r/alice");
    let mut wt = setup.address.with_path("rooms/r");
    wt.transport = splatcast_net::Transport::WebTransport;
    let (_s1, b1) = viewer(&setup, raw, "").await.unwrap();
    let (_s2, b2) = viewer(&setup, wt, "alice").await.unwrap();
    let s1 = tokio::spawn(subscribe(b1, None));
    let s2 = tokio::spawn(subscribe(b2, None));
    tokio::time::sleep(Duration::from_millis(200)).await;
    send(&mut writer, &gops[0]);
    // Live pacing: the next GOP follows once this one is out (a GOP that completes first would
    // make an older one still arriving be given up, as a late joiner's is).
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut sub1 = timeout(LIMIT, s1)
        .await
        .expect("subscribed in time")
        .unwrap()
        .unwrap();
    let mut sub2 = timeout(LIMIT, s2)
        .await
        .expect("subscribed in time")
        .unwrap()
        .unwrap();
    assert_eq!(
        sub1.catalog.movie,
        StreamReader::open(Cursor::new(&file))
            .unwrap()
            .movie()
            .clone()
    );

    send(&mut writer, &gops[1]);
    let mut reader = StreamReader::open(Cursor::new(&file)).unwrap();
    let mut decoder = Rav1dDecoder::new(1);
    for sub in [&mut sub1, &mut sub2] {
        for g in 0..2 {
            let got = timeout(LIMIT, sub.next())
                .await
                .expect("GOP in time")
                .unwrap()
                .unwrap();
            assert_eq!(got.group, g);
            let want = reader.gop_fragment(g as usize).unwrap();
            let tracks = sub.tracks.clone();
            // Bit for bit after decode.
            let a = tracks.decode(&got.fragment, &mut decoder).unwrap();
            let b = tracks.decode(&want, &mut decoder).unwrap();
            assert_eq!((a.0, a.2), (b.0, b.2));
        }
    }

    // A late joiner gets the latest GOP at once. A joining subscription also takes a GOP
    // superseded less than 0.5 s of *media* time before the newest frame (moq-net measures
    // age in presentation time), and these GOPs last 0.1 s: GOP 0 may come first, then GOP 1.
    let (_s3, b3) = viewer(&setup, setup.address.with_path("rooms/r/alice"), "")
        .await
        .unwrap();
    let mut late = subscribe(b3, None).await.unwrap();
    let mut groups = Vec::new();
    while groups.last() != Some(&1) {
        let got = timeout(LIMIT, late.next())
            .await
            .expect("the latest GOP in time")
            .unwrap()
            .unwrap();
        groups.push(got.group);
    }
    assert!(
        groups == [1] || groups == [0, 1],
        "late joiner got GOPs {groups:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_are_checked_before_any_media() {
    let (_, gops) = stream();
    let init = gops[0].init.clone().unwrap();
    let setup = relay(&["hidden"]);
    let other = Key::generate().unwrap();
    // Missing, wrong key, expired, and a token for someone else.
    for jwt in [
        None,
        Some(token(&other, "rooms/r", &["alice"], &[], 60)),
        Some(token(&setup.key, "rooms/r", &["alice"], &[], -10)),
        Some(token(&setup.key, "rooms/r", &["bob"], &[], 60)),
    ] {
        let result = publisher(&setup, "r/alice", jwt.clone(), &init).await;
        match result {
            Err(_) => {}
            Ok((session, _writer, _origin)) => {
                // A token for another participant connects but may publish nothing here: the
                // relay closes the session or never routes the broadcast.
                let seen = viewer(&setup, setup.address.with_path("rooms/r/alice"), "");
                assert!(
                    timeout(Duration::from_secs(2), seen).await.is_err(),
                    "token {jwt:?} let a broadcast through"
                );
                drop(session);
            }
        }
    }
    // A private room refuses viewers without a token, and admits them with one.
    let hidden = setup.address.with_path("rooms/hidden");
    refused(connect(&hidden, &setup.trust, moq_net::Client::new()).await).await;
    let jwt = token(&setup.key, "rooms/hidden", &[], &[""], 60);
    connect(
        &hidden.with_token(Some(jwt)),
        &setup.trust,
        moq_net::Client::new(),
    )
    .await
    .unwrap();
    // A client that does not trust the relay's certificate never gets a session.
    let stranger = Trust::Pinned(vec![
        Identity::generate(&["localhost".into()])
            .unwrap()
            .fingerprint(),
    ]);
    assert!(
        connect(
            &setup.address.with_path("rooms/r"),
            &stranger,
            moq_net::Client::new()
        )
        .await
        .is_err()
    );
}

/// A refused session fails to connect, or is closed by the relay right after.
async fn refused(session: Result<moq_net::Session, splatcast_net::NetError>) {
    if let Ok(session) = session {
        timeout(Duration::from_secs(5), session.closed())
            .await
            .expect("the relay closes a refused session");
    }
}

/// Hostile peers close their own session, never the relay: garbage instead of MoQ, thousands
/// of announcements, a flood of subscriptions. A viewer that was watching before keeps
/// receiving, and new sessions are served after.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_peers_close_only_their_own_session() {
    let (_, gops) = stream();
    let setup = relay(&[]);
    let init = gops[0].init.clone().unwrap();
    let jwt = token(&setup.key, "rooms/r", &["alice"], &[], 600);
    let (_alice, mut writer, _origin) = publisher(&setup, "r/alice", Some(jwt), &init)
        .await
        .unwrap();
    let (_watching, broadcast) = viewer(&setup, setup.address.with_path("rooms/r/alice"), "")
        .await
        .unwrap();
    let pending = tokio::spawn(subscribe(broadcast, None));
    tokio::time::sleep(Duration::from_millis(200)).await;
    send(&mut writer, &gops[0]);
    let mut watching = timeout(LIMIT, pending).await.unwrap().unwrap().unwrap();
    let first = timeout(LIMIT, watching.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(first.group, 0);

    // 1. Garbage where MoQ's setup should be, on the control stream and on uni streams.
    let port = setup.address.port;
    let endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    let config = setup.trust.quic_client(moq_net::ALPNS).unwrap();
    let conn = endpoint
        .connect_with(config, ([127, 0, 0, 1], port).into(), "localhost")
        .unwrap()
        .await
        .unwrap();
    let mut noise = 0x2545_f491_4f6c_dd1du64;
    let mut garbage = |n: usize| -> Vec<u8> {
        (0..n)
            .map(|_| {
                noise ^= noise << 13;
                noise ^= noise >> 7;
                noise ^= noise << 17;
                noise as u8
            })
            .collect()
    };
    let (mut send_bi, _recv_bi) = conn.open_bi().await.unwrap();
    let _ = send_bi.write_all(&garbage(4096)).await;
    for _ in 0..20 {
        if let Ok(mut uni) = conn.open_uni().await {
            let _ = uni.write_all(&garbage(1024)).await;
            let _ = uni.finish();
        }
    }
    let closed = timeout(Duration::from_secs(10), conn.closed()).await;
    assert!(
        closed.is_ok(),
        "the relay kept a session that spoke garbage"
    );

    // 2. Thousands of announcements from one publisher (allowed under its own prefix).
    let jwt = token(&setup.key, "rooms/r", &["mallory"], &[], 600);
    let (origin, driver) = moq_net::origin::Producer::new(moq_net::origin::Config::default());
    tokio::spawn(moq_net::time::run(driver));
    let announced: Vec<_> = (0..3000)
        .filter_map(|i| origin.create_broadcast(format!("b{i}")).ok())
        .collect();
    assert_eq!(announced.len(), 3000);
    let _mallory = connect(
        &setup
            .address
            .with_path("rooms/r/mallory")
            .with_token(Some(jwt)),
        &setup.trust,
        moq_net::Client::new().with_publisher(&origin),
    )
    .await
    .unwrap();

    // 3. A flood of subscriptions to tracks that do not exist.
    let (_flooding, target) = viewer(&setup, setup.address.with_path("rooms/r/alice"), "")
        .await
        .unwrap();
    let flood: Vec<_> = (0..3000)
        .filter_map(|i| target.track(&format!("nothing-{i}")).ok())
        .map(|t| t.subscribe(moq_net::track::Subscription::default()))
        .collect();
    tokio::time::sleep(Duration::from_secs(2)).await;
    drop(flood);

    // The viewer from before still receives, and a new viewer is served.
    send(&mut writer, &gops[1]);
    let next = timeout(LIMIT, watching.next())
        .await
        .expect("the earlier viewer keeps receiving")
        .unwrap()
        .unwrap();
    assert_eq!(next.group, 1);
    let (_late, broadcast) = viewer(&setup, setup.address.with_path("rooms/r/alice"), "")
        .await
        .unwrap();
    let mut late = timeout(LIMIT, subscribe(broadcast, None))
        .await
        .expect("a new viewer is served")
        .unwrap();
    let got = timeout(LIMIT, late.next()).await.unwrap().unwrap().unwrap();
    assert!(got.group <= 1);
}

/// Each room caches within its own byte bound, whatever another room sends; a relay opens at
/// most so many rooms; a room closes, its cache freed, when its last session leaves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rooms_keep_their_memory_to_themselves() {
    let (_, gops) = stream();
    let gop_bytes: u64 = gops[0].chunks.iter().map(|c| c.bytes.len() as u64).sum();
    let room_bytes = 4 * gop_bytes;
    let setup = relay_with(|config| {
        config.room_bytes = room_bytes;
        config.max_rooms = 2;
    });
    let init = gops[0].init.clone().unwrap();
    let jwt = |who: &str| Some(token(&setup.key, "rooms", &[who], &[""], 600));
    let (_alice, mut busy, _o1) = publisher(&setup, "r/alice", jwt("r/alice"), &init)
        .await
        .unwrap();
    let (bob, mut quiet, _o2) = publisher(&setup, "s/bob", jwt("s/bob"), &init)
        .await
        .unwrap();
    // A viewer in each room, so the relay keeps both rooms' broadcasts pulled.
    let (_v1, _b1) = viewer(&setup, setup.address.with_path("rooms/r"), "alice")
        .await
        .unwrap();
    let (v2, _b2) = viewer(&setup, setup.address.with_path("rooms/s"), "bob")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    send(&mut quiet, &gops[0]);

    // Room r sends forty GOPs, ten times its bound.
    for g in 0..40u64 {
        let gop = &gops[g as usize % 2];
        for chunk in &gop.chunks {
            busy.write(g, chunk).unwrap();
        }
        busy.finish_group().unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let r = setup.rooms.cached_bytes("r").unwrap();
    let s = setup.rooms.cached_bytes("s").unwrap();
    // The pool's bound is a target its writes converge to, above which the live edge (each
    // track's latest group) is kept: allow one GOP over it.
    assert!(
        r <= room_bytes + 2 * gop_bytes,
        "room r caches {r} B, bound {room_bytes} B (a GOP is {gop_bytes} B)"
    );
    assert!(r >= gop_bytes / 2, "room r caches only {r} B");
    // Room s keeps its GOP, and a late joiner there gets it from the relay.
    assert!(s >= gop_bytes / 2, "room s lost its cache to room r: {s} B");
    let (_v3, late) = viewer(&setup, setup.address.with_path("rooms/s/bob"), "")
        .await
        .unwrap();
    let mut late = timeout(LIMIT, subscribe(late, None))
        .await
        .unwrap()
        .unwrap();
    let got = timeout(LIMIT, late.next()).await.unwrap().unwrap().unwrap();
    assert_eq!(got.group, 0);

    // A third room is refused while two are open.
    let carol = publisher(&setup, "t/carol", jwt("t/carol"), &init).await;
    match carol {
        Err(_) => {}
        Ok((session, _, _)) => {
            timeout(Duration::from_secs(5), session.closed())
                .await
                .expect("a third room is refused");
        }
    }
    // When everyone leaves room s it closes and frees its cache.
    drop((bob, v2, _v3, late));
    let closed = async {
        while setup.rooms.cached_bytes("s").is_some() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    timeout(LIMIT, closed)
        .await
        .expect("room s closes when empty");
}
