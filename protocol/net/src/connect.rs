//! Client sessions: QUIC + TLS to an address, then the MoQ handshake.

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
