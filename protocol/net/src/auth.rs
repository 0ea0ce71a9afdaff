//! `splatcast auth`: the server moq-relay asks (`--auth-url http://HOST:PORT/`) whether a
//! session may publish or watch, checking our tokens by the same rule as `splatcast relay`, so
//! one token works with either relay. moq-relay 0.17 checks no JWTs itself: for every session
//! it POSTs a JSON event (`connect`, `revalidate`, `end`) carrying the dialed path and its
//! query (`jwt=…`) or MoQ setup token, and reads back a grant: `publish` and `subscribe`
//! patterns relative to the dialed path and an `expires` time; 401/403 refuse.
//!
//! The HTTP exchange is sans-IO ([`AuthRules::respond`]: request bytes in, response bytes out)
//! so it is fuzzed without sockets; [`AuthServer`] runs it on TCP.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use base64::Engine;
use moq_net::Pattern;
use serde::Deserialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::NetError;
use crate::relay::admit;
use crate::server::{Admission, Grant};
use crate::token::Key;

/// Largest request accepted (moq-relay's events are a few hundred bytes).
const MAX_REQUEST: usize = 64 << 10;

/// How long one connection may take to send its request.
const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Who may do what: the key tokens are checked with and the rooms whose watchers need one.
#[derive(Clone, Debug)]
pub struct AuthRules {
    /// The key tokens are checked with.
    pub key: Key,
    /// Rooms whose broadcasts need a token to watch.
    pub private_rooms: Vec<String>,
}

/// One event from moq-relay (fields it sends that we do not need are ignored).
#[derive(Deserialize)]
struct Event {
    event: String,
    #[serde(default)]
    path: String,
    #[serde(default)]
    query: Option<String>,
    #[serde(default)]
    token: Option<SetupToken>,
}

/// A MoQ SETUP authorization token: kind 0 is a JWT, base64url without padding.
#[derive(Deserialize)]
struct SetupToken {
    kind: u64,
    value: String,
}

/// An HTTP answer.
struct Answer {
    status: u16,
    json: bool,
    body: String,
}

impl Answer {
    fn refuse(status: u16, why: impl Into<String>) -> Self {
        Self {
            status,
            json: false,
            body: why.into(),
        }
    }

    fn to_bytes(&self) -> Vec<u8> {
        let reason = match self.status {
            200 => "OK",
            204 => "No Content",
            400 => "Bad Request",
            403 => "Forbidden",
            405 => "Method Not Allowed",
            411 => "Length Required",
            413 => "Content Too Large",
            _ => "Error",
        };
        let kind = if self.json {
            "application/json"
        } else {
            "text/plain; charset=utf-8"
        };
        let mut out = format!(
            "HTTP/1.1 {} {reason}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\n\
             Connection: close\r\n\r\n",
            self.status,
            self.body.len()
        )
        .into_bytes();
        out.extend_from_slice(self.body.as_bytes());
        out
    }
}

impl AuthRules {
    /// The answer to the HTTP request in `request` (as received so far), or `None` while it is
    /// incomplete. Never panics and allocates at most what it was given.
    pub fn respond(&self, request: &[u8], now: SystemTime) -> Option<Vec<u8>> {
        let answer = match read_request(request) {
            Ok(None) if request.len() < MAX_REQUEST => return None,
            Ok(None) => Answer::refuse(413, "request too large"),
            Ok(Some(body)) => self.decide(body, now),
            Err(answer) => answer,
        };
        Some(answer.to_bytes())
    }

    /// Decides one event.
    fn decide(&self, body: &[u8], now: SystemTime) -> Answer {
        let event: Event = match serde_json::from_slice(body) {
            Ok(e) => e,
            Err(e) => return Answer::refuse(400, format!("not an auth event: {e}")),
        };
        match event.event.as_str() {
            // The session is over: nothing to decide.
            "end" => return Answer::refuse(204, ""),
            "connect" | "revalidate" => {}
            other => return Answer::refuse(400, format!("unknown event '{other}'")),
        }
        let token = match token_of(&event) {
            Ok(t) => t,
            Err(why) => return Answer::refuse(403, why),
        };
        let path = match &event.query {
            Some(q) => format!("{}?{q}", event.path),
            None => event.path.clone(),
        };
        let admission = Admission {
            token,
            ..crate::server::admission(&path)
        };
        match admit(&self.key, &self.private_rooms, &admission, now) {
            Ok(grant) => grant_json(&grant),
            Err(e) => Answer::refuse(403, e.to_string()),
        }
    }
}

/// The JWT of an event: the last non-empty `jwt=` of the query, or the setup token; both
/// present must agree.
fn token_of(event: &Event) -> Result<Option<String>, String> {
    let query = event.query.as_deref().unwrap_or_default();
    let in_query = query
        .split('&')
        .filter_map(|kv| kv.strip_prefix("jwt="))
        .rfind(|t| !t.is_empty())
        .map(str::to_owned);
    let in_setup = match &event.token {
        None => None,
        Some(t) if t.kind != 0 => return Err(format!("setup token of kind {}", t.kind)),
        Some(t) => {
            let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(t.value.trim_end_matches('='))
                .map_err(|e| format!("setup token: {e}"))?;
            Some(String::from_utf8(raw).map_err(|_| "setup token is not text".to_string())?)
        }
    };
    match (in_query, in_setup) {
        (Some(a), Some(b)) if a != b => Err("the query's and the setup's tokens differ".into()),
        (a, b) => Ok(a.or(b)),
    }
}

/// A grant as moq-relay reads it: patterns relative to the dialed path.
fn grant_json(grant: &Grant) -> Answer {
    let patterns = |paths: &[String]| -> Vec<String> {
        paths
            .iter()
            .filter_map(|p| Pattern::subtree(p).ok())
            .map(|p| p.as_str().to_owned())
            .collect()
    };
    let mut v = serde_json::json!({
        "publish": patterns(&grant.publish),
        "subscribe": patterns(&grant.subscribe),
    });
    if let Some(expires) = grant.expires {
        v["expires"] = expires.into();
    }
    Answer {
        status: 200,
        json: true,
        body: v.to_string(),
    }
}

/// The body of a complete `POST` in `buf`; `Ok(None)` while more bytes are needed.
fn read_request(buf: &[u8]) -> Result<Option<&[u8]>, Answer> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut request = httparse::Request::new(&mut headers);
    let head = match request.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(Answer::refuse(400, format!("bad request: {e}"))),
    };
    if request.method != Some("POST") {
        return Err(Answer::refuse(405, "only POST"));
    }
    let length = request
        .headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("content-length"))
        .ok_or_else(|| Answer::refuse(411, "Content-Length needed"))?;
    let length: usize = std::str::from_utf8(length.value)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| Answer::refuse(400, "bad Content-Length"))?;
    if length > MAX_REQUEST {
        return Err(Answer::refuse(413, "request too large"));
    }
    Ok(buf.get(head..head.saturating_add(length)))
}

/// moq-relay's auth server on TCP.
pub struct AuthServer {
    listener: tokio::net::TcpListener,
    rules: Arc<AuthRules>,
}

impl AuthServer {
    /// Binds `listen` (TCP). Must run inside a tokio runtime.
    pub async fn bind(listen: SocketAddr, rules: AuthRules) -> Result<Self, NetError> {
        Ok(Self {
            listener: tokio::net::TcpListener::bind(listen).await?,
            rules: Arc::new(rules),
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> Result<SocketAddr, NetError> {
        Ok(self.listener.local_addr()?)
    }

    /// Answers requests until the listener fails; one request per connection.
    pub async fn run(self) -> Result<(), NetError> {
        loop {
            let (tcp, remote) = self.listener.accept().await?;
            let rules = self.rules.clone();
            tokio::spawn(async move {
                if let Err(e) = answer(tcp, &rules).await {
                    tracing::info!(%remote, "auth request failed: {e}");
                }
            });
        }
    }
}

/// Reads one request (bounded in size and time), writes the answer, closes.
async fn answer(mut tcp: tokio::net::TcpStream, rules: &AuthRules) -> std::io::Result<()> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let response = tokio::time::timeout(READ_TIMEOUT, async {
        loop {
            let n = tcp.read(&mut chunk).await?;
            if n == 0 {
                return Ok(None);
            }
            buf.extend_from_slice(&chunk[..n]);
            if let Some(r) = rules.respond(&buf, SystemTime::now()) {
                return Ok::<_, std::io::Error>(Some(r));
            }
        }
    })
    .await
    .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "request too slow"))??;
    if let Some(response) = response {
        tcp.write_all(&response).await?;
        tcp.shutdown().await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::token::Claims;

    fn post(body: &str) -> Vec<u8> {
        format!(
            "POST / HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .into_bytes()
    }

    fn status_and_body(response: &[u8]) -> (u16, String) {
        let text = String::from_utf8(response.to_vec()).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        (head[9..12].parse().unwrap(), body.to_string())
    }

    #[test]
    fn grants_follow_the_relays_rule_and_moq_relays_format() {
        let key = Key::generate().unwrap();
        let rules = AuthRules {
            key: key.clone(),
            private_rooms: vec!["hidden".into()],
        };
        let now = SystemTime::now();
        let secs = now
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let token = key.sign(&Claims {
            root: "rooms/r".into(),
            publish: vec!["alice".into()],
            subscribe: vec![String::new()],
            expires: Some(secs + 60),
            issued: Some(secs),
        });
        let ask = |body: String| status_and_body(&rules.respond(&post(&body), now).unwrap());

        // A token dialed at the participant's path: publish and watch below it, until it expires.
        let (status, body) = ask(format!(
            r#"{{"id":"00ff","event":"connect","path":"/rooms/r/alice","query":"x=1&jwt={token}","role":"publisher"}}"#
        ));
        assert_eq!(status, 200, "{body}");
        let grant: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(grant["publish"], serde_json::json!(["**"]));
        assert_eq!(grant["subscribe"], serde_json::json!(["**"]));
        assert_eq!(grant["expires"], secs + 60);
        // The same token as a MoQ setup token, dialed at the room: only alice's subtree.
        let setup = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&token);
        let (status, body) = ask(format!(
            r#"{{"id":"1","event":"revalidate","path":"/rooms/r","token":{{"kind":0,"value":"{setup}"}}}}"#
        ));
        assert_eq!(status, 200, "{body}");
        let grant: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(grant["publish"], serde_json::json!(["alice/**"]));
        // Watching a public room needs nothing; a private one, or publishing, a token.
        let (status, body) = ask(r#"{"id":"2","event":"connect","path":"/rooms/open"}"#.into());
        assert_eq!(status, 200, "{body}");
        assert!(body.contains(r#""publish":[]"#), "{body}");
        for refused in [
            r#"{"id":"3","event":"connect","path":"/rooms/hidden/bob"}"#.to_string(),
            format!(r#"{{"id":"4","event":"connect","path":"/rooms/x","query":"jwt={token}"}}"#),
            r#"{"id":"5","event":"connect","path":"/rooms/r","query":"jwt=abc.def.ghi"}"#.into(),
            format!(
                r#"{{"id":"6","event":"connect","path":"/rooms/r","query":"jwt={token}","token":{{"kind":0,"value":"eA"}}}}"#
            ),
        ] {
            let (status, body) = ask(refused.clone());
            assert_eq!(status, 403, "{refused}: {body}");
            assert!(!body.is_empty());
        }
        // The end of a session needs no decision; nonsense is a 400.
        assert_eq!(
            ask(r#"{"id":"7","event":"end","reason":"dropped"}"#.into()).0,
            204
        );
        assert_eq!(ask("{".into()).0, 400);
    }

    #[test]
    fn requests_are_read_whole_and_bounded() {
        let rules = AuthRules {
            key: Key::generate().unwrap(),
            private_rooms: Vec::new(),
        };
        let now = SystemTime::now();
        let full = post(r#"{"id":"1","event":"connect","path":"/rooms/a"}"#);
        // Incomplete until the last body byte.
        for cut in [10, full.len() / 2, full.len() - 1] {
            assert!(rules.respond(&full[..cut], now).is_none(), "cut at {cut}");
        }
        assert_eq!(status_and_body(&rules.respond(&full, now).unwrap()).0, 200);
        let get = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";
        assert_eq!(status_and_body(&rules.respond(get, now).unwrap()).0, 405);
        let huge = b"POST / HTTP/1.1\r\nContent-Length: 99999999\r\n\r\n";
        assert_eq!(status_and_body(&rules.respond(huge, now).unwrap()).0, 413);
        let endless = vec![b'a'; MAX_REQUEST];
        assert!(rules.respond(&endless, now).is_some());
    }
}
