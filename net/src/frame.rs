//! Kafka frames: a big-endian `i32` size followed by that many bytes.
//!
//! Guarantees: a frame whose declared size is negative or above the caller's limit is refused
//! before anything is allocated for it; a connection that closes mid-frame is reported as an error
//! (never as a short frame).

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Why a frame could not be read.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("frame of {size} bytes exceeds the limit of {max} bytes")]
    TooLarge { size: i64, max: usize },
    #[error("negative frame size {0}")]
    Negative(i32),
    #[error("connection closed in the middle of a frame")]
    Truncated,
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Reads one frame. `Ok(None)` means the peer closed the connection cleanly between frames.
pub async fn read_frame<R: AsyncRead + Unpin>(r: &mut R, max_bytes: usize) -> Result<Option<Bytes>, FrameError> {
    let mut size_buf = [0u8; 4];
    let mut got = 0;
    while got < 4 {
        let n = r.read(&mut size_buf[got..]).await?;
        if n == 0 {
            return if got == 0 { Ok(None) } else { Err(FrameError::Truncated) };
        }
        got += n;
    }
    let size = i32::from_be_bytes(size_buf);
    if size < 0 {
        return Err(FrameError::Negative(size));
    }
    if size as usize > max_bytes {
        return Err(FrameError::TooLarge { size: size as i64, max: max_bytes });
    }
    // Grow the buffer as bytes arrive rather than trusting the declared size: a peer that
    // announces a large frame and sends nothing costs at most one chunk.
    let size = size as usize;
    let mut buf = BytesMut::with_capacity(size.min(READ_CHUNK_BYTES));
    while buf.len() < size {
        let want = (size - buf.len()).min(READ_CHUNK_BYTES);
        buf.reserve(want);
        let n = (&mut *r).take(want as u64).read_buf(&mut buf).await?;
        if n == 0 {
            return Err(FrameError::Truncated);
        }
    }
    Ok(Some(buf.freeze()))
}

/// Largest single allocation step while reading a frame.
const READ_CHUNK_BYTES: usize = 1 << 20;

/// Writes one frame (size prefix + body) and flushes it.
pub async fn write_frame<W: AsyncWrite + Unpin>(w: &mut W, body: &[u8]) -> std::io::Result<()> {
    let size = i32::try_from(body.len()).map_err(|_| std::io::Error::other("frame too large"))?;
    w.write_all(&size.to_be_bytes()).await?;
    w.write_all(body).await?;
    w.flush().await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
    }

    #[test]
    fn round_trip_and_limits() {
        rt().block_on(async {
            let mut wire = Vec::new();
            write_frame(&mut wire, b"hello").await.unwrap();
            let mut r = &wire[..];
            assert_eq!(read_frame(&mut r, 100).await.unwrap().unwrap(), Bytes::from_static(b"hello"));
            assert!(read_frame(&mut r, 100).await.unwrap().is_none());

            let mut r = &wire[..];
            assert!(matches!(read_frame(&mut r, 4).await, Err(FrameError::TooLarge { size: 5, max: 4 })));

            let mut r = &wire[..6];
            assert!(matches!(read_frame(&mut r, 100).await, Err(FrameError::Truncated)));

            let huge = (i32::MAX).to_be_bytes();
            let mut r = &huge[..];
            assert!(matches!(read_frame(&mut r, 100 << 20).await, Err(FrameError::TooLarge { .. })));

            let neg = (-5i32).to_be_bytes();
            let mut r = &neg[..];
            assert!(matches!(read_frame(&mut r, 100).await, Err(FrameError::Negative(-5))));
        });
    }
}
