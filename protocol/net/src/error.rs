//! One error type for the transport, keeping each layer's source.

use std::path::PathBuf;

/// Why a network operation failed.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// A URL we cannot use.
    #[error("address '{address}': {problem}")]
    Address {
        /// The address as given.
        address: String,
        /// What is wrong with it.
        problem: String,
    },
    /// A certificate or key file.
    #[error("{path}: {problem}")]
    Credentials {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        problem: String,
    },
    /// Reading or writing a local file or socket.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// TLS configuration.
    #[error("TLS: {0}")]
    Tls(#[from] rustls::Error),
    /// Making the certificate.
    #[error("certificate generation: {0}")]
    Certificate(#[from] rcgen::Error),
    /// Starting a QUIC connection.
    #[error("QUIC connect: {0}")]
    Connect(#[from] quinn::ConnectError),
    /// The QUIC connection failed.
    #[error("QUIC connection: {0}")]
    Connection(#[from] quinn::ConnectionError),
    /// WebTransport (HTTP/3) session set-up, as a client.
    #[error("WebTransport: {0}")]
    WebTransportClient(#[from] web_transport_quinn::ClientError),
    /// WebTransport (HTTP/3) session set-up, as a server.
    #[error("WebTransport: {0}")]
    WebTransportServer(#[from] web_transport_quinn::ServerError),
    /// The MoQ session or a track failed.
    #[error("MoQ: {0}")]
    Moq(#[from] moq_net::Error),
    /// The catalog could not be made or read.
    #[error("catalog: {0}")]
    Catalog(#[from] hang::Error),
    /// The Splatcast stream inside is broken.
    #[error(transparent)]
    Stream(#[from] splatcast_protocol::stream::StreamError),
    /// A container chunk is broken.
    #[error(transparent)]
    Container(#[from] splatcast_protocol::container::ContainerError),
    /// A token could not be made or checked.
    #[error(transparent)]
    Token(#[from] crate::token::TokenError),
    /// The peer refused us, or we refused the peer.
    #[error("refused: {0}")]
    Refused(String),
    /// No way to trust the server was given (or two that exclude each other).
    #[error("{0}")]
    Trust(String),
    /// The broadcast does not carry a Splatcast stream.
    #[error("not a Splatcast broadcast: {0}")]
    NotSplatcast(String),
}
