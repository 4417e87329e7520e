//! A small async Kafka client: one connection to one broker, one request in flight at a time.
//!
//! It negotiates versions with ApiVersions on connect and then sends each request at the highest
//! version both sides support. It is what `gregor`'s CLI tools use to talk to a broker (they are
//! ordinary Kafka clients, never readers of the data directory), and what the simulator's
//! workloads will use.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, ApiVersionsRequest, ApiVersionsResponse, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, Request, StrBytes};
use tokio::net::TcpStream;

use crate::frame::{read_frame, write_frame, FrameError};

/// Largest response the client accepts (a fetch response is bounded by the request's max_bytes).
pub const RESPONSE_BYTES_MAX: usize = 256 << 20;

/// Why a request failed at the transport or codec level (Kafka error codes are response data).
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot connect to {addr}: {source}")]
    Connect { addr: String, source: std::io::Error },
    #[error("connection error: {0}")]
    Frame(#[from] FrameError),
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    #[error("broker closed the connection")]
    Closed,
    #[error("broker does not support {0:?}")]
    Unsupported(ApiKey),
    #[error("protocol error: {0}")]
    Protocol(String),
    #[error("request timed out after {0:?}")]
    Timeout(Duration),
}

/// One connection to a broker.
pub struct Client {
    stream: TcpStream,
    addr: String,
    client_id: StrBytes,
    next_correlation_id: i32,
    /// Broker's supported version range per API key.
    versions: BTreeMap<i16, (i16, i16)>,
    timeout: Duration,
}

impl Client {
    /// Connects and negotiates API versions.
    pub async fn connect(addr: &str, client_id: &str) -> Result<Client, ClientError> {
        let stream = crate::tcp::connect(addr)
            .await
            .map_err(|source| ClientError::Connect { addr: addr.to_string(), source })?;
        let mut client = Client {
            stream,
            addr: addr.to_string(),
            client_id: StrBytes::from_string(client_id.to_string()),
            next_correlation_id: 0,
            versions: BTreeMap::new(),
            timeout: Duration::from_secs(30),
        };
        let mut req = ApiVersionsRequest::default();
        req.client_software_name = StrBytes::from_static_str("gregor");
        req.client_software_version = StrBytes::from_static_str(env!("CARGO_PKG_VERSION"));
        let resp: ApiVersionsResponse = client.send_at(&req, 3).await?;
        if resp.error_code != 0 {
            return Err(ClientError::Protocol(format!("ApiVersions failed with error {}", resp.error_code)));
        }
        for k in resp.api_keys {
            client.versions.insert(k.api_key, (k.min_version, k.max_version));
        }
        Ok(client)
    }

    /// The address this client is connected to.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// Sets the per-request timeout (default 30 s).
    pub fn set_timeout(&mut self, timeout: Duration) {
        self.timeout = timeout;
    }

    /// The version that `send` would use for `R`, if the broker supports it at all.
    pub fn version_for<R: Request>(&self) -> Option<i16> {
        let (min, max) = *self.versions.get(&R::KEY)?;
        let ours = R::VERSIONS;
        let v = max.min(ours.max);
        (v >= min.max(ours.min)).then_some(v)
    }

    /// Sends a request at the highest version both sides support.
    pub async fn send<R: Request>(&mut self, req: &R) -> Result<R::Response, ClientError> {
        let key = ApiKey::try_from(R::KEY).map_err(|_| ClientError::Protocol("unknown api key".into()))?;
        let version = self.version_for::<R>().ok_or(ClientError::Unsupported(key))?;
        self.send_at(req, version).await
    }

    /// Sends a request that the broker does not answer (Produce with acks=0).
    pub async fn send_no_response<R: Request>(&mut self, req: &R, version: i16) -> Result<(), ClientError> {
        let buf = self.encode_request(req, version)?;
        write_frame(&mut self.stream, &buf).await?;
        Ok(())
    }

    fn encode_request<R: Request>(&mut self, req: &R, version: i16) -> Result<BytesMut, ClientError> {
        let key = ApiKey::try_from(R::KEY).map_err(|_| ClientError::Protocol("unknown api key".into()))?;
        let correlation_id = self.next_correlation_id;
        self.next_correlation_id = self.next_correlation_id.wrapping_add(1);
        let mut header = RequestHeader::default();
        header.request_api_key = R::KEY;
        header.request_api_version = version;
        header.correlation_id = correlation_id;
        header.client_id = Some(self.client_id.clone());
        let mut buf = BytesMut::new();
        header
            .encode(&mut buf, key.request_header_version(version))
            .map_err(|e| ClientError::Protocol(e.to_string()))?;
        req.encode(&mut buf, version).map_err(|e| ClientError::Protocol(e.to_string()))?;
        Ok(buf)
    }

    /// Sends a request at an explicit version.
    pub async fn send_at<R: Request>(&mut self, req: &R, version: i16) -> Result<R::Response, ClientError> {
        let key = ApiKey::try_from(R::KEY).map_err(|_| ClientError::Protocol("unknown api key".into()))?;
        let correlation_id = self.next_correlation_id;
        let buf = self.encode_request(req, version)?;
        let timeout = self.timeout;
        let fut = async {
            write_frame(&mut self.stream, &buf).await?;
            read_frame(&mut self.stream, RESPONSE_BYTES_MAX).await?.ok_or(ClientError::Closed)
        };
        let mut frame: Bytes = tokio::time::timeout(timeout, fut).await.map_err(|_| ClientError::Timeout(timeout))??;
        let resp_header = ResponseHeader::decode(&mut frame, key.response_header_version(version))
            .map_err(|e| ClientError::Protocol(e.to_string()))?;
        if resp_header.correlation_id != correlation_id {
            return Err(ClientError::Protocol(format!(
                "correlation id mismatch: sent {correlation_id}, got {}",
                resp_header.correlation_id
            )));
        }
        // The codec reserves memory for the counts a frame claims: a broker's answer is checked
        // against the response table first, as requests are on the broker.
        crate::schema::check_response(R::KEY, version, &frame).map_err(|r| ClientError::Protocol(r.to_string()))?;
        R::Response::decode(&mut frame, version).map_err(|e| ClientError::Protocol(e.to_string()))
    }
}
