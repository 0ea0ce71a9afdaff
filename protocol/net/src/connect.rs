//! Client sessions: QUIC + TLS to an address, then the MoQ handshake.

use std::time::Duration;

use crate::{Address, NetError, Transport, Trust, spawn_driver};

/// Connects to `address` and runs the MoQ handshake with `client` (which says what we publish
/// and where the peer's broadcasts land). The session lives while the returned handle does.
pub async fn connect(
    address: &Address,
    trust: &Trust,
    client: moq_net::Client,
) -> Result<moq_net::Session, NetError> {
    let now = || tokio::time::Instant::now().into_std();
    let remote = tokio::net::lookup_host((address.host.as_str(), address.port))
        .await?
        .next()
        .ok_or_else(|| NetError::Address {
            address: address.to_string(),
            problem: "the host does not resolve".into(),
        })?;
    let bind: std::net::SocketAddr = if remote.is_ipv4() {
        ([0, 0, 0, 0], 0).into()
    } else {
        ([0u16; 8], 0).into()
    };
    let endpoint = quinn::Endpoint::client(bind)?;
    let (session, driver) = match address.transport {
        Transport::Raw => {
            let config = trust.quic_client(moq_net::ALPNS)?;
            let conn = endpoint
                .connect_with(config, remote, &address.host)?
                .await?;
            client
                .with_path(address.target())
                .connect(now(), web_transport_quinn::Session::raw(conn))
                .await?
        }
        Transport::WebTransport => {
            let config = trust.quic_client(&[web_transport_quinn::ALPN])?;
            let url = url::Url::parse(&format!(
                "https://{}:{}{}",
                if address.host.contains(':') {
                    format!("[{}]", address.host)
                } else {
                    address.host.clone()
                },
                address.port,
                address.target()
            ))
            .map_err(|e| NetError::Address {
                address: address.to_string(),
                problem: e.to_string(),
            })?;
            let request = web_transport_quinn::proto::ConnectRequest::new(url)
                .with_protocols(moq_net::ALPNS.iter().map(|s| s.to_string()));
            let wt = web_transport_quinn::Client::new(endpoint, config)
                .connect(request)
                .await?;
            client.connect(now(), wt).await?
        }
    };
    spawn_driver(driver);
    Ok(session)
}

/// Connects as a viewer of the broadcast at `address`'s path and waits until it is announced:
/// the session (keep it) and the broadcast.
pub async fn watch(
    address: &Address,
    trust: &Trust,
) -> Result<(moq_net::Session, moq_net::broadcast::Consumer), NetError> {
    let (origin, driver) = moq_net::origin::Producer::new(moq_net::origin::Config::default());
    spawn_driver(driver);
    let session = connect(
        address,
        trust,
        moq_net::Client::new().with_subscriber(origin.clone()),
    )
    .await?;
    // The session is rooted at the broadcast's path: the broadcast is the root.
    let broadcast = origin.consume().routed_broadcast("").await?;
    Ok((session, broadcast))
}

/// Whether a session ended because the peer refused us (a missing, wrong or expired token):
/// trying again would only be refused again.
pub fn refused(err: &moq_net::Error) -> bool {
    match err {
        moq_net::Error::Unauthorized => true,
        // A relay closing the QUIC connection with MoQ's code reaches us as its message.
        moq_net::Error::Transport(message) => message.contains("unauthorized"),
        other => other.session() == Some(&moq_net::SessionError::Unauthorized),
    }
}

/// Runs `attempt` until it succeeds, waiting 250 ms after the first failure and doubling to at
/// most 5 s; gives up with the last error once `give_up` has passed or when refused. For
/// publishers and players whose relay went away (a restart): they come back on their own.
pub async fn with_backoff<T, F, Fut>(give_up: Duration, mut attempt: F) -> Result<T, NetError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, NetError>>,
{
    let started = tokio::time::Instant::now();
    let mut wait = Duration::from_millis(250);
    loop {
        match attempt().await {
            Ok(done) => return Ok(done),
            Err(NetError::Moq(e)) if refused(&e) => return Err(NetError::Moq(e)),
            Err(e) if started.elapsed() >= give_up => return Err(e),
            Err(e) => {
                tracing::info!("retrying in {wait:?}: {e}");
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(5));
            }
        }
    }
}

/// Keeps a publisher's session up: when the relay goes away (a restart), reconnects with
/// backoff for `give_up` and announces `origin`'s broadcasts again — subscribers go on at the
/// next GOP. Returns only with the error that ended it: a refusal, or no relay in time.
pub async fn stay_connected(
    mut session: moq_net::Session,
    address: &Address,
    trust: &Trust,
    origin: &moq_net::origin::Producer,
    give_up: Duration,
) -> NetError {
    loop {
        let err = session.closed().await;
        if refused(&err) {
            return NetError::Moq(err);
        }
        tracing::warn!(%address, "connection lost ({err}); reconnecting");
        let again = with_backoff(give_up, || {
            connect(
                address,
                trust,
                moq_net::Client::new().with_publisher(origin),
            )
        })
        .await;
        session = match again {
            Ok(s) => s,
            Err(e) => return e,
        };
        tracing::warn!(%address, "reconnected");
    }
}
