//! Request and response framing on top of `kafka-protocol`.
//!
//! The broker side decodes a request header, then the body for the requested API and version,
//! and encodes a response header + body. The decoder never panics on malformed input: anything
//! that does not parse becomes a [`DecodeError`] and the caller closes that one connection.
//!
//! Before the `kafka-protocol` decoder sees a frame, [`crate::schema::check`] walks it against
//! Gregor's own table of the request formats: the crate's decoder reserves memory for the counts
//! a frame claims, and a failed allocation aborts the process, so a frame whose lengths do not
//! fit in its own bytes must never reach it.

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, RequestKind, ResponseHeader, ResponseKind};
use kafka_protocol::protocol::{Decodable, Encodable};

/// A request as read from the wire.
#[derive(Debug)]
pub struct DecodedRequest {
    pub header: RequestHeader,
    pub api_key: ApiKey,
    pub body: RequestKind,
}

/// What went wrong decoding a request.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("frame too short for a request header")]
    TooShort,
    /// An API key this codec does not know. Answered by closing the connection (as Kafka does).
    #[error("unknown API key {0}")]
    UnknownApiKey(i16),
    /// A known API at a version outside what the broker supports: answerable with
    /// UNSUPPORTED_VERSION, because the header could be read.
    #[error("unsupported version {version} of {api_key:?}")]
    UnsupportedVersion { api_key: ApiKey, version: i16, correlation_id: i32 },
    /// The bounds check refused the frame before decoding: a length that cannot fit, a
    /// malformed varint, a null where none is allowed.
    #[error("refused request: {0}")]
    Refused(crate::schema::Refusal),
    #[error("malformed request: {0}")]
    Malformed(String),
}

/// Reads the fixed first fields (api key, version, correlation id) without decoding further.
pub fn peek_header(frame: &[u8]) -> Result<(i16, i16, i32), DecodeError> {
    if frame.len() < 8 {
        return Err(DecodeError::TooShort);
    }
    let key = i16::from_be_bytes([frame[0], frame[1]]);
    let version = i16::from_be_bytes([frame[2], frame[3]]);
    let corr = i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]);
    Ok((key, version, corr))
}

/// Decodes a request frame. `supported(api_key, version)` decides which versions are accepted.
pub fn decode_request(
    frame: Bytes,
    supported: impl Fn(ApiKey, i16) -> bool,
) -> Result<DecodedRequest, DecodeError> {
    let (key, version, correlation_id) = peek_header(&frame)?;
    let api_key = ApiKey::try_from(key).map_err(|_| DecodeError::UnknownApiKey(key))?;
    if !supported(api_key, version) {
        return Err(DecodeError::UnsupportedVersion { api_key, version, correlation_id });
    }
    crate::schema::check(&frame).map_err(DecodeError::Refused)?;
    let header_version = api_key.request_header_version(version);
    let mut buf = frame;
    // The generated decoders check lengths, but a panic on hostile input must never take the
    // broker down: contain it to this request.
    let decoded = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
        let header = RequestHeader::decode(&mut buf, header_version).map_err(|e| e.to_string())?;
        let body = RequestKind::decode(api_key, &mut buf, version).map_err(|e| e.to_string())?;
        Ok::<_, String>((header, body))
    }));
    match decoded {
        Ok(Ok((header, body))) => Ok(DecodedRequest { header, api_key, body }),
        Ok(Err(e)) => Err(DecodeError::Malformed(e)),
        Err(_) => Err(DecodeError::Malformed("decoder panicked".into())),
    }
}

/// Encodes a response (header + body) for `api_key` at `version` as a complete frame, size
/// prefix included.
pub fn encode_response(
    api_key: ApiKey,
    version: i16,
    correlation_id: i32,
    body: &ResponseKind,
) -> Result<BytesMut, String> {
    // Room for the frame's size prefix, filled in below, so the frame goes out in one write.
    let mut buf = BytesMut::with_capacity(4096);
    buf.extend_from_slice(&[0u8; 4]);
    let mut header = ResponseHeader::default();
    header.correlation_id = correlation_id;
    header
        .encode(&mut buf, api_key.response_header_version(version))
        .map_err(|e| e.to_string())?;
    body.encode(&mut buf, version).map_err(|e| e.to_string())?;
    let size = i32::try_from(buf.len() - 4).map_err(|_| "response too large".to_string())?;
    buf[..4].copy_from_slice(&size.to_be_bytes());
    Ok(buf)
}

/// The body of a frame [`encode_response`] made: what follows the size prefix and the header
/// (a correlation id and, from header version 1, an empty tagged-field section).
pub fn encoded_response_body(api_key: ApiKey, version: i16, frame: &[u8]) -> &[u8] {
    let header = if api_key.response_header_version(version) >= 1 { 5 } else { 4 };
    frame.get(4 + header..).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        // The request decoder never panics and never accepts garbage silently as another API.
        #[test]
        fn arbitrary_frames_never_panic(data in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = decode_request(Bytes::from(data), |_, _| true);
        }

        // Valid header prefix with random bodies: every API key, every version.
        #[test]
        fn random_bodies_never_panic(key in 0i16..80, version in 0i16..18, body in proptest::collection::vec(any::<u8>(), 0..120)) {
            let mut frame = Vec::new();
            frame.extend_from_slice(&key.to_be_bytes());
            frame.extend_from_slice(&version.to_be_bytes());
            frame.extend_from_slice(&7i32.to_be_bytes());
            frame.extend_from_slice(&body);
            let _ = decode_request(Bytes::from(frame), |k, v| k.valid_versions().min <= v && v <= k.valid_versions().max);
        }
    }
}
