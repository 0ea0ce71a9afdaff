//! TLS for every connection: server identities (real certificates, or a generated one whose
//! SHA-256 fingerprint clients pin), client trust, and the QUIC endpoint configurations.

use std::fmt;
use std::net::SocketAddr;
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};

use crate::NetError;

/// A server's certificate chain and private key.
#[derive(Debug)]
pub struct Identity {
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
}

impl Clone for Identity {
    fn clone(&self) -> Self {
        Self {
            chain: self.chain.clone(),
            key: self.key.clone_key(),
        }
    }
}

impl Identity {
    /// A self-signed certificate for `names` (development: clients pin its fingerprint).
    /// Valid for two weeks, the most WebTransport's certificate hashes allow.
    pub fn generate(names: &[String]) -> Result<Self, NetError> {
        let mut params = rcgen::CertificateParams::new(names.to_vec())?;
        let now = std::time::SystemTime::now();
        params.not_before = (now - Duration::from_secs(3600)).into();
        params.not_after = (now + Duration::from_secs(13 * 24 * 3600)).into();
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
        let cert = params.self_signed(&key)?;
        Ok(Self {
            chain: vec![cert.der().clone()],
            key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        })
    }

    /// A certificate chain and key from PEM files (`--cert`, `--key`).
    pub fn load(cert: &Path, key: &Path) -> Result<Self, NetError> {
        let problem = |path: &Path, problem: String| NetError::Credentials {
            path: path.to_path_buf(),
            problem,
        };
        let pem = std::fs::read(cert).map_err(|e| problem(cert, e.to_string()))?;
        let chain = rustls_pemfile::certs(&mut pem.as_slice())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| problem(cert, format!("not a PEM certificate chain: {e}")))?;
        if chain.is_empty() {
            return Err(problem(cert, "holds no certificate".into()));
        }
        let pem = std::fs::read(key).map_err(|e| problem(key, e.to_string()))?;
        let key_der = rustls_pemfile::private_key(&mut pem.as_slice())
            .map_err(|e| problem(key, format!("not a PEM private key: {e}")))?
            .ok_or_else(|| problem(key, "holds no private key".into()))?;
        Ok(Self {
            chain,
            key: key_der,
        })
    }

    /// SHA-256 of the end-entity certificate: what clients pin with `--fingerprint`.
    pub fn fingerprint(&self) -> Fingerprint {
        Fingerprint::of(&self.chain[0])
    }
}

/// A certificate's SHA-256 digest.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint(pub [u8; 32]);

impl Fingerprint {
    /// The fingerprint of a DER certificate.
    pub fn of(cert: &CertificateDer<'_>) -> Self {
        let digest = ring::digest::digest(&ring::digest::SHA256, cert.as_ref());
        let mut out = [0; 32];
        out.copy_from_slice(digest.as_ref());
        Self(out)
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fingerprint({self})")
    }
}

impl FromStr for Fingerprint {
    type Err = NetError;

    /// 64 hex digits, colons allowed (`openssl x509 -fingerprint -sha256` prints them so).
    fn from_str(s: &str) -> Result<Self, NetError> {
        let hex: String = s.chars().filter(|c| *c != ':').collect();
        let bad = || NetError::Address {
            address: s.into(),
            problem: "a fingerprint is 64 hex digits (SHA-256)".into(),
        };
        if hex.len() != 64 || !hex.is_ascii() {
            return Err(bad());
        }
        let mut out = [0; 32];
        for (i, byte) in out.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).map_err(|_| bad())?;
        }
        Ok(Self(out))
    }
}

/// How a client decides to trust a server.
#[derive(Clone, Debug)]
pub enum Trust {
    /// Only certificates with one of these SHA-256 fingerprints (development certificates).
    Pinned(Vec<Fingerprint>),
    /// Certificates that chain to these roots (a private CA, or a real certificate's issuer).
    Roots(Vec<CertificateDer<'static>>),
}

impl Trust {
    /// The trust a client's command line asks for: pinned SHA-256 fingerprints (as `splatcast
    /// relay` prints them) or a PEM file of roots, exactly one of the two.
    pub fn from_flags(fingerprints: &[String], ca: Option<&Path>) -> Result<Self, NetError> {
        match (ca, fingerprints.is_empty()) {
            (Some(ca), true) => Self::roots_from(ca),
            (None, false) => Ok(Self::Pinned(
                fingerprints
                    .iter()
                    .map(|f| f.parse())
                    .collect::<Result<_, _>>()?,
            )),
            (Some(_), false) => Err(NetError::Trust(
                "give --fingerprint or --ca, not both".into(),
            )),
            (None, true) => Err(NetError::Trust(
                "the server's certificate must be trusted: give --fingerprint (printed by \
                 `splatcast relay`) or --ca roots.pem"
                    .into(),
            )),
        }
    }

    /// Roots from a PEM file.
    pub fn roots_from(path: &Path) -> Result<Self, NetError> {
        let pem = std::fs::read(path)?;
        let roots = rustls_pemfile::certs(&mut pem.as_slice())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| NetError::Credentials {
                path: path.to_path_buf(),
                problem: format!("not a PEM certificate: {e}"),
            })?;
        Ok(Self::Roots(roots))
    }

    /// A rustls client configuration for this trust and these ALPNs.
    fn client_tls(&self, alpns: &[&str]) -> Result<rustls::ClientConfig, NetError> {
        let provider = provider();
        let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13])?;
        let mut tls = match self {
            Trust::Pinned(pins) => builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(Pinned {
                    provider,
                    pins: pins.clone(),
                }))
                .with_no_client_auth(),
            Trust::Roots(roots) => {
                let mut store = rustls::RootCertStore::empty();
                for root in roots {
                    store.add(root.clone())?;
                }
                builder.with_root_certificates(store).with_no_client_auth()
            }
        };
        tls.alpn_protocols = alpns.iter().map(|a| a.as_bytes().to_vec()).collect();
        Ok(tls)
    }

    /// A quinn client configuration for this trust and these ALPNs (for a QUIC connection of
    /// one's own, e.g. a test speaking to a relay below MoQ).
    pub fn quic_client(&self, alpns: &[&str]) -> Result<quinn::ClientConfig, NetError> {
        let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(self.client_tls(alpns)?)
            .map_err(|e| NetError::Refused(format!("TLS configuration unusable for QUIC: {e}")))?;
        let mut config = quinn::ClientConfig::new(Arc::new(crypto));
        config.transport_config(Arc::new(transport()));
        Ok(config)
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Congestion window a connection starts with, bytes.
const INITIAL_WINDOW: u64 = 64 * 1024;

/// QUIC transport settings: every MoQ group is a uni stream and every subscription a bidi one,
/// so allow many at once (slots free as streams end) — but quinn allocates state for every
/// allowed stream when a connection opens (10,000 of each cost a relay ~0.8 MiB per viewer,
/// measured with heaptrack), so not more than a busy room needs. Keep idle links alive.
fn transport() -> quinn::TransportConfig {
    let mut t = quinn::TransportConfig::default();
    t.max_concurrent_uni_streams(1024u32.into());
    t.max_concurrent_bidi_streams(512u32.into());
    t.keep_alive_interval(Some(Duration::from_secs(3)));
    t.max_idle_timeout(Some(
        quinn::IdleTimeout::try_from(Duration::from_secs(10)).expect("10 s fits"),
    ));
    t.congestion_controller_factory(Arc::new(Congestion));
    t
}

/// BBR, not quinn's default CUBIC: media at a steady rate over lossy links. Measured
/// (`moq-bench`, 50 ms RTT per hop, 5 % loss each way): CUBIC halves its window at every random
/// loss and fell below the stream's rate — frames seconds late, stalls of 2 s, lost GOPs; BBR
/// paces at the measured delivery rate — p95 latency 0.17 s, worst stall 0.2 s, no GOP lost.
/// (moq's own QUIC configuration also defaults to BBR.) Two settings on top:
/// - a 64 kB initial window, so a joining viewer's key frames (every track's, tens of kB) go
///   in one round trip rather than three of slow start from quinn's 12 kB;
/// - quinn 0.11's BBR starts with no ProbeRTT timestamp, so the first ack that is not
///   application-limited — a joiner's key frames — counts as "min RTT expired" and drops the
///   window to ¾ of a bandwidth estimate made from handshake-sized samples (a few packets) for
///   200 ms: joins took up to 550 ms instead of 250. Built as if a ProbeRTT had begun a second
///   ago (with no estimate yet its window is the initial one), the first comes on BBR's usual
///   10 s schedule.
struct Congestion;

impl quinn::congestion::ControllerFactory for Congestion {
    fn build(
        self: Arc<Self>,
        now: std::time::Instant,
        current_mtu: u16,
    ) -> Box<dyn quinn::congestion::Controller> {
        let mut config = quinn::congestion::BbrConfig::default();
        config.initial_window(INITIAL_WINDOW);
        let mut bbr = Arc::new(config).build(now, current_mtu);
        if let Some(before) = now.checked_sub(Duration::from_secs(1)) {
            bbr.on_end_acks(before, 0, false, None);
        }
        bbr
    }
}

/// Bytes a server sends to one peer without acknowledgment — quinn's own default, 10 MB.
pub(crate) const SEND_WINDOW: u64 = 10_000_000;

/// A QUIC server endpoint on `addr` speaking MoQ over raw QUIC (moq-lite ALPNs) and over
/// WebTransport (`h3`). `send_window` bounds what one peer's connection holds unacknowledged:
/// quinn keeps every sent byte until it is acknowledged and blocks writes beyond the window, so
/// a viewer on a slow link costs at most this much (moq-net then skips it to the newest group).
pub(crate) fn server_endpoint(
    addr: SocketAddr,
    id: &Identity,
    send_window: u64,
) -> Result<quinn::Endpoint, NetError> {
    let mut tls = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_no_client_auth()
        .with_single_cert(id.chain.clone(), id.key.clone_key())?;
    let mut alpns: Vec<Vec<u8>> = moq_net::ALPNS
        .iter()
        .map(|a| a.as_bytes().to_vec())
        .collect();
    alpns.push(web_transport_quinn::ALPN.as_bytes().to_vec());
    tls.alpn_protocols = alpns;
    let crypto = quinn::crypto::rustls::QuicServerConfig::try_from(tls)
        .map_err(|e| NetError::Refused(format!("TLS configuration unusable for QUIC: {e}")))?;
    let mut config = quinn::ServerConfig::with_crypto(Arc::new(crypto));
    let mut transport = transport();
    transport.send_window(send_window);
    config.transport_config(Arc::new(transport));
    Ok(quinn::Endpoint::server(config, addr)?)
}

/// Accepts exactly the pinned end-entity certificates (signatures still checked).
#[derive(Debug)]
struct Pinned {
    provider: Arc<CryptoProvider>,
    pins: Vec<Fingerprint>,
}

impl ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if self.pins.contains(&Fingerprint::of(end_entity)) {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::ApplicationVerificationFailure,
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_print_and_parse() {
        let id = Identity::generate(&["localhost".into()]).unwrap();
        let fp = id.fingerprint();
        let text = fp.to_string();
        assert_eq!(text.len(), 64);
        assert_eq!(text.parse::<Fingerprint>().unwrap(), fp);
        let colons: Vec<String> = fp.0.iter().map(|b| format!("{b:02X}")).collect();
        assert_eq!(colons.join(":").parse::<Fingerprint>().unwrap(), fp);
        assert!("abc".parse::<Fingerprint>().is_err());
        assert!("zz".repeat(32).parse::<Fingerprint>().is_err());
    }
}
