//! Where to connect: `moq://host:port/path` (MoQ over raw QUIC) or `https://host:port/path`
//! (MoQ over WebTransport), with an optional `?jwt=` token.

use std::fmt;
use std::str::FromStr;

use crate::NetError;

/// The QUIC flavour of a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    /// MoQ directly on QUIC (ALPN moq-lite-NN); the path travels in the MoQ setup.
    Raw,
    /// MoQ inside a WebTransport session over HTTP/3; the path is the CONNECT URL's.
    WebTransport,
}

/// A parsed MoQ address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Address {
    /// Raw QUIC or WebTransport.
    pub transport: Transport,
    /// Host name or IP literal (no brackets).
    pub host: String,
    /// UDP port (443 when the URL names none).
    pub port: u16,
    /// Broadcast path without leading or trailing slashes, e.g. `rooms/demo/alice`.
    pub path: String,
    /// The `jwt` query parameter.
    pub token: Option<String>,
}

impl Address {
    /// This address with another path.
    pub fn with_path(&self, path: &str) -> Self {
        Self {
            path: normalize(path),
            ..self.clone()
        }
    }

    /// This address with a token.
    pub fn with_token(&self, token: Option<String>) -> Self {
        Self {
            token,
            ..self.clone()
        }
    }

    /// What the MoQ setup (raw QUIC) or the CONNECT request (WebTransport) carries: `/path`
    /// plus `?jwt=…`.
    pub fn target(&self) -> String {
        match &self.token {
            Some(t) => format!("/{}?jwt={t}", self.path),
            None => format!("/{}", self.path),
        }
    }

    /// The room, when the path is `rooms/<room>[/<participant>]`.
    pub fn room(&self) -> Option<&str> {
        room_of(&self.path)
    }
}

/// The room of a normalised path `rooms/<room>[/…]`.
pub(crate) fn room_of(path: &str) -> Option<&str> {
    let mut parts = path.split('/');
    (parts.next() == Some("rooms"))
        .then(|| parts.next())
        .flatten()
}

/// `a//b/` → `a/b`: the form paths are compared in.
pub(crate) fn normalize(path: &str) -> String {
    path.split('/')
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join("/")
}

impl FromStr for Address {
    type Err = NetError;

    fn from_str(s: &str) -> Result<Self, NetError> {
        let bad = |problem: &str| NetError::Address {
            address: s.into(),
            problem: problem.into(),
        };
        let url = url::Url::parse(s).map_err(|e| bad(&e.to_string()))?;
        let transport = match url.scheme() {
            "moq" => Transport::Raw,
            "https" => Transport::WebTransport,
            other => {
                return Err(bad(&format!(
                    "scheme '{other}' is not moq:// (raw QUIC) or https:// (WebTransport)"
                )));
            }
        };
        let host = url
            .host_str()
            .ok_or_else(|| bad("no host"))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let token = url
            .query_pairs()
            .find(|(k, _)| k == "jwt")
            .map(|(_, v)| v.into_owned());
        Ok(Self {
            transport,
            host,
            port: url.port().unwrap_or(443),
            path: normalize(url.path()),
            token,
        })
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = match self.transport {
            Transport::Raw => "moq",
            Transport::WebTransport => "https",
        };
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        // The token stays out of messages and logs.
        let token = if self.token.is_some() { "?jwt=…" } else { "" };
        write!(f, "{scheme}://{host}:{}/{}{token}", self.port, self.path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_both_schemes() {
        let a: Address = "moq://127.0.0.1:4443/rooms/r1/alice?jwt=abc"
            .parse()
            .unwrap();
        assert_eq!(a.transport, Transport::Raw);
        assert_eq!((a.host.as_str(), a.port), ("127.0.0.1", 4443));
        assert_eq!(a.path, "rooms/r1/alice");
        assert_eq!(a.token.as_deref(), Some("abc"));
        assert_eq!(a.room(), Some("r1"));
        assert_eq!(a.target(), "/rooms/r1/alice?jwt=abc");
        assert_eq!(a.to_string(), "moq://127.0.0.1:4443/rooms/r1/alice?jwt=…");

        let b: Address = "https://[::1]/rooms/r2/".parse().unwrap();
        assert_eq!(b.transport, Transport::WebTransport);
        assert_eq!((b.host.as_str(), b.port), ("::1", 443));
        assert_eq!(b.path, "rooms/r2");
        assert_eq!(b.to_string(), "https://[::1]:443/rooms/r2");
        assert!("http://x/y".parse::<Address>().is_err());
        assert!("moq:///y".parse::<Address>().is_err());
    }
}
