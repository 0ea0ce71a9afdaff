//! A UDP forwarder that delays, drops and rate-limits datagrams: the network between peers in
//! tests and benches. (`tc netem` would be the usual tool; this machine's kernel has no `sch_netem`, and a
//! userspace link also runs anywhere without privileges.) Order is kept within each direction;
//! loss is a seeded Bernoulli draw per datagram.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// What the link does to each datagram, in each direction.
#[derive(Clone, Copy, Debug)]
pub struct Impairment {
    /// Added one-way delay (a round trip adds it twice).
    pub delay: Duration,
    /// Probability that a datagram is dropped.
    pub loss: f64,
    /// Seed of the loss draws.
    pub seed: u64,
    /// A bottleneck: bits per second each way (datagrams queue behind each other; a datagram
    /// that would wait more than [`QUEUE`] is dropped, as a router's buffer overflows).
    pub rate: Option<u64>,
}

/// Longest wait in a rate-limited link's queue.
pub const QUEUE: Duration = Duration::from_millis(200);

/// One direction's bottleneck queue: when the next datagram can start.
struct Bottleneck {
    rate: Option<u64>,
    free: Instant,
}

impl Bottleneck {
    fn new(rate: Option<u64>) -> Self {
        Self {
            rate,
            free: Instant::now(),
        }
    }

    /// When a datagram of `bytes` arriving now leaves the queue; `None` when it is dropped.
    fn depart(&mut self, bytes: usize) -> Option<Instant> {
        let now = Instant::now();
        let Some(rate) = self.rate.filter(|&r| r > 0) else {
            return Some(now);
        };
        let start = self.free.max(now);
        if start - now > QUEUE {
            return None;
        }
        self.free = start + Duration::from_secs_f64(8.0 * bytes as f64 / rate as f64);
        Some(self.free)
    }
}

/// Forwards datagrams sent to the returned address on to `target`, impaired both ways; each
/// client address gets its own upstream socket, as through a NAT. Runs until the runtime ends.
pub async fn link(target: SocketAddr, impairment: Impairment) -> io::Result<SocketAddr> {
    let front = Arc::new(UdpSocket::bind(("127.0.0.1", 0)).await?);
    let addr = front.local_addr()?;
    tokio::spawn(async move {
        let mut clients: HashMap<SocketAddr, mpsc::UnboundedSender<(Instant, Vec<u8>)>> =
            HashMap::new();
        let mut draws = Draws(impairment.seed | 1);
        let mut queue = Bottleneck::new(impairment.rate);
        let mut buf = vec![0u8; 65_536];
        while let Ok((n, from)) = front.recv_from(&mut buf).await {
            let upstream = match clients.entry(from) {
                Entry::Occupied(e) => e.into_mut(),
                Entry::Vacant(v) => {
                    match open_upstream(target, from, front.clone(), impairment).await {
                        Ok(upstream) => v.insert(upstream),
                        Err(_) => continue,
                    }
                }
            };
            if draws.keep(impairment.loss)
                && let Some(out) = queue.depart(n)
            {
                let _ = upstream.send((out + impairment.delay, buf[..n].to_vec()));
            }
        }
    });
    Ok(addr)
}

/// The upstream socket of one client: a delayed queue towards `target`, and its replies
/// delayed back to the client through `front`.
async fn open_upstream(
    target: SocketAddr,
    client: SocketAddr,
    front: Arc<UdpSocket>,
    impairment: Impairment,
) -> io::Result<mpsc::UnboundedSender<(Instant, Vec<u8>)>> {
    let upstream = Arc::new(UdpSocket::bind(("127.0.0.1", 0)).await?);
    upstream.connect(target).await?;
    let (to_target, mut queue) = mpsc::unbounded_channel::<(Instant, Vec<u8>)>();
    let sender = upstream.clone();
    tokio::spawn(async move {
        while let Some((at, data)) = queue.recv().await {
            tokio::time::sleep_until(at).await;
            let _ = sender.send(&data).await;
        }
    });
    let (to_client, mut back) = mpsc::unbounded_channel::<(Instant, Vec<u8>)>();
    tokio::spawn(async move {
        while let Some((at, data)) = back.recv().await {
            tokio::time::sleep_until(at).await;
            let _ = front.send_to(&data, client).await;
        }
    });
    tokio::spawn(async move {
        let mut draws = Draws(impairment.seed.rotate_left(17) ^ client.port() as u64 | 1);
        let mut queue = Bottleneck::new(impairment.rate);
        let mut buf = vec![0u8; 65_536];
        while let Ok(n) = upstream.recv(&mut buf).await {
            if draws.keep(impairment.loss)
                && let Some(out) = queue.depart(n)
                && to_client
                    .send((out + impairment.delay, buf[..n].to_vec()))
                    .is_err()
            {
                return;
            }
        }
    });
    Ok(to_target)
}

/// xorshift64*: reproducible loss draws.
struct Draws(u64);

impl Draws {
    fn keep(&mut self, loss: f64) -> bool {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let x = self.0.wrapping_mul(0x2545_f491_4f6c_dd1d);
        (x >> 11) as f64 / (1u64 << 53) as f64 >= loss
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn delays_and_drops_as_configured() {
        let echo = UdpSocket::bind(("127.0.0.1", 0)).await.unwrap();
        let target = echo.local_addr().unwrap();
        tokio::spawn(async move {
            let mut buf = [0u8; 64];
            while let Ok((n, from)) = echo.recv_from(&mut buf).await {
                let _ = echo.send_to(&buf[..n], from).await;
            }
        });
        let delay = Duration::from_millis(30);
        let addr = link(
            target,
            Impairment {
                delay,
                loss: 0.2,
                seed: 7,
                rate: None,
            },
        )
        .await
        .unwrap();
        let client = UdpSocket::bind(("127.0.0.1", 0)).await.unwrap();
        client.connect(addr).await.unwrap();
        let start = Instant::now();
        client.send(b"first").await.unwrap();
        let mut buf = [0u8; 64];
        // The first may be lost: send until one comes back.
        let n = loop {
            match tokio::time::timeout(Duration::from_millis(300), client.recv(&mut buf)).await {
                Ok(n) => break n.unwrap(),
                Err(_) => {
                    client.send(b"again").await.unwrap();
                }
            }
        };
        assert!(n > 0);
        assert!(
            start.elapsed() >= 2 * delay,
            "a round trip takes twice the delay"
        );
        // Loss near 20 % each way: about 64 % of round trips survive.
        let mut back = 0;
        for _ in 0..400 {
            client.send(b"x").await.unwrap();
        }
        while tokio::time::timeout(Duration::from_millis(200), client.recv(&mut buf))
            .await
            .is_ok()
        {
            back += 1;
        }
        assert!((200..320).contains(&back), "{back} of 400 came back");
    }

    #[test]
    fn a_bottleneck_spaces_datagrams_and_drops_past_its_queue() {
        let mut q = Bottleneck::new(Some(8_000_000)); // 1 byte per µs
        let now = Instant::now();
        let first = q.depart(1000).unwrap();
        let second = q.depart(1000).unwrap();
        assert!(
            second - first >= Duration::from_micros(999),
            "{:?}",
            second - first
        );
        assert!(first >= now);
        // 200 ms of queue is 200 kB at this rate: the rest is dropped.
        let kept = (0..400).filter(|_| q.depart(1000).is_some()).count();
        assert!((195..=205).contains(&kept), "{kept} kept");
        assert!(Bottleneck::new(None).depart(1 << 20).is_some());
    }
}
