//! Fan-out, our relay and moq-relay side by side in one run: one publisher (`splatcast publish
//! --loop`, a separate process) → a relay (a separate process) → N subscribers (this process,
//! one QUIC connection each), for S seconds per relay. Reported per relay: its CPU time (user +
//! system, from /proc) over the measured window, its peak resident memory, and GOPs delivered
//! complete to every subscriber against GOPs published.
//!
//! `cargo build --release -p splatcast-encoder --bins && target/release/fanout-bench
//! stream.mp4 [--subscribers 100] [--seconds 120] [--moq-relay moq-relay]`

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use splatcast_net::{Address, Trust, install_crypto, subscribe, watch};

struct Args {
    input: PathBuf,
    subscribers: usize,
    seconds: u64,
    moq_relay: String,
}

fn args() -> Result<Args> {
    let mut it = std::env::args().skip(1);
    let mut a = Args {
        input: PathBuf::new(),
        subscribers: 100,
        seconds: 120,
        moq_relay: std::env::var("MOQ_RELAY").unwrap_or_else(|_| "moq-relay".into()),
    };
    while let Some(arg) = it.next() {
        let mut value = || it.next().context("missing value");
        match arg.as_str() {
            "--subscribers" => a.subscribers = value()?.parse()?,
            "--seconds" => a.seconds = value()?.parse()?,
            "--moq-relay" => a.moq_relay = value()?,
            s if !s.starts_with('-') => a.input = PathBuf::from(s),
            s => bail!("unknown argument {s}"),
        }
    }
    ensure!(
        !a.input.as_os_str().is_empty(),
        "usage: fanout-bench stream.mp4 [--subscribers 100] [--seconds 120] [--moq-relay PATH]"
    );
    Ok(a)
}

/// A child process killed when dropped.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// CPU seconds (user + system) and resident kB of a process.
fn usage(pid: u32) -> Result<(f64, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command (which may hold spaces) start after the last ')'.
    let rest = stat.rsplit_once(')').context("odd /proc stat")?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = fields[11].parse::<f64>()? + fields[12].parse::<f64>()?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let rss = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    Ok((ticks / 100.0, rss))
}

fn free_port() -> Result<u16> {
    for _ in 0..100 {
        let udp = std::net::UdpSocket::bind("127.0.0.1:0")?;
        let port = udp.local_addr()?.port();
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return Ok(port);
        }
    }
    bail!("no loopback port free for both UDP and TCP")
}

fn sibling(name: &str) -> Result<PathBuf> {
    let exe = std::env::current_exe()?;
    Ok(exe.with_file_name(name))
}

/// A relay under test: its process, where to publish and watch, and how to trust it.
struct Relay {
    name: &'static str,
    process: Running,
    publish_to: String,
    watch: Address,
    fingerprint: String,
}

/// `splatcast relay` with a fresh signing key; publishing carries a token.
fn ours(dir: &Path) -> Result<Relay> {
    let splatcast = sibling("splatcast")?;
    let key = dir.join("root.jwk");
    let status = Command::new(&splatcast)
        .args(["token", "--generate", "--key"])
        .arg(&key)
        .stderr(Stdio::null())
        .status()?;
    ensure!(status.success(), "splatcast token --generate failed");
    let port = free_port()?;
    let mut child = Command::new(&splatcast)
        .args([
            "relay",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--auth-key",
        ])
        .arg(&key)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("{}", splatcast.display()))?;
    let mut line = String::new();
    BufReader::new(child.stdout.take().context("relay stdout")?).read_line(&mut line)?;
    let fingerprint = line
        .rsplit(' ')
        .next()
        .map(|s| s.trim().to_string())
        .context("relay printed no fingerprint")?;
    let token = Command::new(&splatcast)
        .args(["token", "--key"])
        .arg(&key)
        .args(["--room", "bench", "--publish", "pub"])
        .output()?;
    let jwt = String::from_utf8(token.stdout)?.trim().to_string();
    Ok(Relay {
        name: "splatcast relay",
        process: Running(child),
        publish_to: format!("moq://127.0.0.1:{port}/rooms/bench/pub?jwt={jwt}"),
        watch: format!("moq://127.0.0.1:{port}/rooms/bench/pub").parse()?,
        fingerprint,
    })
}

/// moq-relay with a generated certificate and public rooms.
fn moq_relay(bin: &str) -> Result<Relay> {
    let port = free_port()?;
    let listen = format!("127.0.0.1:{port}");
    let child = Command::new(bin)
        .args(["--listen", &listen, "--listen-tls-generate", "localhost"])
        .args(["--web-http-listen", &listen, "--auth-public", "rooms/**"])
        .args(["--log-level", "error"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("{bin} (cargo install moq-relay@0.17.10)"))?;
    let process = Running(child);
    let deadline = Instant::now() + Duration::from_secs(20);
    let fingerprint = loop {
        if let Ok(body) = http_get(port, "/certificate.sha256") {
            break body.trim().to_string();
        }
        ensure!(Instant::now() < deadline, "moq-relay did not come up");
        std::thread::sleep(Duration::from_millis(100));
    };
    Ok(Relay {
        name: "moq-relay 0.17.10",
        process,
        publish_to: format!("moq://127.0.0.1:{port}/rooms/bench/pub"),
        watch: format!("moq://127.0.0.1:{port}/rooms/bench/pub").parse()?,
        fingerprint,
    })
}

fn http_get(port: u16, path: &str) -> Result<String> {
    let mut tcp = std::net::TcpStream::connect(("127.0.0.1", port))?;
    write!(tcp, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n")?;
    let mut response = String::new();
    tcp.read_to_string(&mut response)?;
    match response.split_once("\r\n\r\n") {
        Some((head, body)) if head.contains(" 200 ") => Ok(body.to_string()),
        _ => bail!("{response}"),
    }
}

/// What one relay did.
struct Figures {
    cpu_s: f64,
    peak_rss_kb: u64,
    published: u64,
    delivered: Vec<u64>,
    joined: usize,
}

fn measure(relay: &Relay, input: &Path, subscribers: usize, seconds: u64) -> Result<Figures> {
    let publisher = Running(
        Command::new(sibling("splatcast")?)
            .arg("publish")
            .arg(input)
            .args(["--loop", "--to", &relay.publish_to])
            .args(["--fingerprint", &relay.fingerprint])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()?,
    );
    std::thread::sleep(Duration::from_secs(2));
    let trust = Trust::Pinned(vec![relay.fingerprint.parse()?]);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let counts: Vec<Arc<AtomicU64>> = (0..subscribers)
        .map(|_| Arc::new(AtomicU64::new(0)))
        .collect();
    let first_group = Arc::new(AtomicU64::new(u64::MAX));
    let last_group = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for count in &counts {
        let (address, trust, count) = (relay.watch.clone(), trust.clone(), count.clone());
        let (stop, first_group, last_group) =
            (stop.clone(), first_group.clone(), last_group.clone());
        tasks.push(rt.spawn(async move {
            let (_session, broadcast) = watch(&address, &trust).await?;
            let mut subscription = subscribe(broadcast, None).await?;
            while let Some(gop) = subscription.next().await {
                let Ok(gop) = gop else { continue };
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                first_group.fetch_min(gop.group, Ordering::Relaxed);
                last_group.fetch_max(gop.group, Ordering::Relaxed);
                count.fetch_add(1, Ordering::Relaxed);
            }
            anyhow::Ok(())
        }));
        // Joins spread over a few seconds, as viewers arrive.
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_secs(3));
    let pid = relay.process.0.id();
    let (cpu0, _) = usage(pid)?;
    let counted: Vec<u64> = counts.iter().map(|c| c.load(Ordering::Relaxed)).collect();
    let start_group = last_group.load(Ordering::Relaxed);
    let mut peak = 0;
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(seconds) {
        std::thread::sleep(Duration::from_secs(1));
        peak = peak.max(usage(pid)?.1);
    }
    let (cpu1, rss) = usage(pid)?;
    let end_group = last_group.load(Ordering::Relaxed);
    stop.store(true, Ordering::Relaxed);
    let delivered = counts
        .iter()
        .zip(&counted)
        .map(|(c, before)| c.load(Ordering::Relaxed) - before)
        .collect();
    let joined = tasks.iter().filter(|t| !t.is_finished()).count();
    rt.shutdown_background();
    drop(publisher);
    Ok(Figures {
        cpu_s: cpu1 - cpu0,
        peak_rss_kb: peak.max(rss),
        published: end_group.saturating_sub(start_group),
        delivered,
        joined,
    })
}

fn main() -> Result<()> {
    let args = args()?;
    install_crypto();
    let dir = tempfile::tempdir()?;
    println!(
        "{} subscribers, {} s measured per relay, publisher: splatcast publish --loop {}",
        args.subscribers,
        args.seconds,
        args.input.display()
    );
    println!(
        "relay | CPU s (share of one core) | peak RSS MiB | GOPs published | delivered per subscriber min / median | lost GOPs (sum) | subscribers live at the end"
    );
    for which in 0..2 {
        let relay = if which == 0 {
            ours(dir.path())?
        } else {
            moq_relay(&args.moq_relay)?
        };
        let f = measure(&relay, &args.input, args.subscribers, args.seconds)?;
        let mut d = f.delivered.clone();
        d.sort_unstable();
        let lost: u64 = d.iter().map(|&n| f.published.saturating_sub(n)).sum();
        println!(
            "{} | {:.1} ({:.0} %) | {:.1} | {} | {} / {} | {lost} | {}",
            relay.name,
            f.cpu_s,
            100.0 * f.cpu_s / args.seconds as f64,
            f.peak_rss_kb as f64 / 1024.0,
            f.published,
            d.first().copied().unwrap_or(0),
            d.get(d.len() / 2).copied().unwrap_or(0),
            f.joined,
        );
    }
    Ok(())
}
