//! Accepting sessions, the same for the relay and the on-demand server: QUIC + TLS, then raw
//! QUIC or WebTransport by ALPN, then the caller's authorisation of the dialed path and token
//! before any media flows.

use moq_net::{Pattern, Patterns, origin};

use crate::NetError;
use crate::address::normalize;
use crate::rooms::Seat;

/// What a connecting peer asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Admission {
    /// The dialed path, normalised.
    pub path: String,
    /// The `jwt` query parameter.
    pub token: Option<String>,
}

/// What a peer may do, relative to its dialed path (`""`: everything below it).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Grant {
    pub publish: Vec<String>,
    pub subscribe: Vec<String>,
    /// When the grant ends (the token's expiry), seconds since the Unix epoch.
    pub expires: Option<u64>,
}

impl Grant {
    fn patterns(paths: &[String]) -> Result<Patterns, NetError> {
        paths
            .iter()
            .map(|p| Pattern::subtree(p))
            .collect::<Result<Patterns, _>>()
            .map_err(|e| NetError::Refused(format!("bad grant: {e}")))
    }
}

/// An admitted session: what it may do, and the origin it publishes into and watches.
pub(crate) struct Admitted {
    pub grant: Grant,
    pub origin: origin::Producer,
    /// Held for the session's life (its room stays open).
    pub _seat: Option<Seat>,
}

impl Admitted {
    /// A session on `origin`, in no room.
    pub(crate) fn on(origin: &origin::Producer, grant: Grant) -> Self {
        Self {
            grant,
            origin: origin.clone(),
            _seat: None,
        }
    }
}

pub(crate) type Handshake = moq_net::server::Handshake<web_transport_quinn::Session>;

/// Splits `/path?query` into the normalised path and its `jwt`.
pub(crate) fn admission(target: &str) -> Admission {
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let token = query
        .split('&')
        .filter_map(|kv| kv.strip_prefix("jwt="))
        .next_back()
        .map(str::to_string);
    Admission {
        path: normalize(path),
        token,
    }
}

/// Runs the handshake of one incoming connection. `admit` sees the dialed path and token
/// before anything is accepted; a refusal closes the session with no media bytes sent.
async fn accept(
    incoming: quinn::Incoming,
    admit: impl FnOnce(&Admission) -> Result<Admitted, NetError>,
) -> Result<(Handshake, Admission, Admitted), NetError> {
    let conn = incoming.await?;
    let alpn = conn
        .handshake_data()
        .and_then(|d| d.downcast::<quinn::crypto::rustls::HandshakeData>().ok())
        .and_then(|d| d.protocol)
        .map(|p| String::from_utf8_lossy(&p).into_owned())
        .unwrap_or_default();
    let now = tokio::time::Instant::now().into_std();
    if alpn == web_transport_quinn::ALPN {
        let request = web_transport_quinn::Request::accept(conn).await?;
        let target = match request.url.query() {
            Some(q) => format!("{}?{q}", request.url.path()),
            None => request.url.path().to_string(),
        };
        let admission = admission(&target);
        let admitted = match admit(&admission) {
            Ok(admitted) => admitted,
            Err(e) => {
                let status = web_transport_quinn::http::StatusCode::FORBIDDEN;
                request.reject(status).await?;
                return Err(e);
            }
        };
        let mut response = web_transport_quinn::proto::ConnectResponse::OK;
        if let Some(p) = request
            .protocols
            .iter()
            .find(|p| moq_net::ALPNS.contains(&p.as_str()))
        {
            response = response.with_protocol(p.clone());
        }
        let session = request.respond(response).await?;
        let handshake = moq_net::Server::new().accept_request(now, session).await?;
        check_role(handshake, admission, admitted)
    } else if moq_net::ALPNS.contains(&alpn.as_str()) {
        let session = web_transport_quinn::Session::raw(conn);
        let handshake = moq_net::Server::new().accept_request(now, session).await?;
        let admission = admission(handshake.path());
        match admit(&admission) {
            Ok(admitted) => check_role(handshake, admission, admitted),
            Err(e) => {
                handshake.close(moq_net::Error::Unauthorized);
                Err(e)
            }
        }
    } else {
        conn.close(0u32.into(), b"unsupported ALPN");
        Err(NetError::Refused(format!("unsupported ALPN '{alpn}'")))
    }
}

/// A peer that said it only publishes (or only subscribes) is refused at once when its grant
/// does not allow that, instead of a session that silently carries nothing.
fn check_role(
    handshake: Handshake,
    admission: Admission,
    admitted: Admitted,
) -> Result<(Handshake, Admission, Admitted), NetError> {
    let grant = &admitted.grant;
    let refusal = match handshake.role() {
        Some(moq_net::Role::Publisher) if grant.publish.is_empty() => Some("publish"),
        Some(moq_net::Role::Subscriber) if grant.subscribe.is_empty() => Some("subscribe"),
        _ => None,
    };
    match refusal {
        Some(what) => {
            handshake.close(moq_net::Error::Unauthorized);
            Err(NetError::Refused(format!(
                "no permission to {what} at '{}'",
                admission.path
            )))
        }
        None => Ok((handshake, admission, admitted)),
    }
}

/// Completes an authorised handshake: the peer publishes into the subtrees it may publish
/// under and sees the subtrees it may subscribe to, both rooted at its path.
async fn open(
    handshake: Handshake,
    admission: &Admission,
    admitted: &Admitted,
) -> Result<moq_net::Session, NetError> {
    let mut handshake = handshake;
    let root = admission.path.as_str();
    let grant = &admitted.grant;
    if !grant.publish.is_empty() {
        let patterns = Grant::patterns(&grant.publish)?;
        handshake = handshake.with_subscriber(admitted.origin.scope(root, &patterns)?);
    }
    if !grant.subscribe.is_empty() {
        let patterns = Grant::patterns(&grant.subscribe)?;
        handshake = handshake.with_publisher(admitted.origin.consume().scope(root, &patterns)?);
    }
    let (session, driver) = handshake.ok().await?;
    crate::spawn_driver(driver);
    Ok(session)
}

/// Accepts sessions on `endpoint` until it closes, each admitted by `admit`, which says what
/// it may do and where; a failing session ends alone.
pub(crate) async fn serve_sessions(
    endpoint: &quinn::Endpoint,
    admit: impl Fn(&Admission) -> Result<Admitted, NetError> + Clone + Send + 'static,
) {
    while let Some(incoming) = endpoint.accept().await {
        let admit = admit.clone();
        tokio::spawn(async move {
            let remote = incoming.remote_address();
            let result = async {
                let (handshake, admission, admitted) = accept(incoming, admit).await?;
                let session = open(handshake, &admission, &admitted).await?;
                tracing::info!(%remote, path = %admission.path, "session open");
                Err::<(), _>(NetError::Moq(session.closed().await))
            }
            .await;
            if let Err(e) = result {
                tracing::info!(%remote, "session ended: {e}");
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admissions_split_path_and_token() {
        assert_eq!(
            admission("/rooms/r//a/?x=1&jwt=t0k"),
            Admission {
                path: "rooms/r/a".into(),
                token: Some("t0k".into())
            }
        );
        assert_eq!(admission("/").path, "");
        assert_eq!(admission("/a").token, None);
    }
}
