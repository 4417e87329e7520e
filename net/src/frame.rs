//! Kafka frames: a big-endian `i32` size followed by that many bytes.
//!
//! Guarantees: a frame whose declared size is negative or above the caller's limit is refused
//! before anything is allocated for it; the buffer for a frame never grows beyond its declared
//! size (it grows as bytes arrive, so a peer that announces a large frame and sends nothing costs
//! at most one chunk); a connection that closes mid-frame is reported as an error (never as a
//! short frame).
//!
//! [`FrameReader`] is the incremental form: every read method is cancel-safe (the bytes already
//! received stay in the reader), so a caller can race it against timers and shutdown, and can
//! account for the memory it holds ([`FrameReader::buffer_capacity`]) between steps. The server
//! uses it to charge a frame's declared size to a shared budget after [`FrameReader::read_size`]
//! and before the body is read.

use bytes::Bytes;
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

/// Reads frames one at a time from a byte stream, keeping partial progress between calls.
#[derive(Debug)]
pub struct FrameReader {
    max_bytes: usize,
    size_buf: [u8; 4],
    size_got: usize,
    /// The declared size of the frame in progress, once its prefix is complete.
    size: Option<usize>,
    body: Vec<u8>,
}

impl FrameReader {
    /// A reader refusing frames above `max_bytes`.
    pub fn new(max_bytes: usize) -> Self {
        FrameReader { max_bytes, size_buf: [0; 4], size_got: 0, size: None, body: Vec::new() }
    }

    /// Reads until the size prefix of the next frame is complete and returns the declared size.
    /// `Ok(None)` means the peer closed the connection cleanly between frames. Nothing is
    /// allocated. Cancel-safe; returns at once if the size is already known.
    pub async fn read_size<R: AsyncRead + Unpin>(&mut self, r: &mut R) -> Result<Option<usize>, FrameError> {
        while self.size.is_none() {
            let n = r.read(&mut self.size_buf[self.size_got..]).await?;
            if n == 0 {
                return if self.size_got == 0 { Ok(None) } else { Err(FrameError::Truncated) };
            }
            self.size_got += n;
            if self.size_got == 4 {
                let size = i32::from_be_bytes(self.size_buf);
                if size < 0 {
                    return Err(FrameError::Negative(size));
                }
                if size as usize > self.max_bytes {
                    return Err(FrameError::TooLarge { size: size as i64, max: self.max_bytes });
                }
                self.size = Some(size as usize);
            }
        }
        Ok(self.size)
    }

    /// One step of reading the body of the frame whose size [`read_size`](Self::read_size)
    /// returned: at most one read from `r`. Returns the frame once it is complete (and the
    /// reader is ready for the next one), `Ok(None)` while more bytes are needed. Cancel-safe.
    pub async fn read_body_step<R: AsyncRead + Unpin>(&mut self, r: &mut R) -> Result<Option<Bytes>, FrameError> {
        let Some(size) = self.size else {
            return Err(FrameError::Io(std::io::Error::other("frame body read before its size")));
        };
        if self.body.len() < size {
            if self.body.len() == self.body.capacity() {
                // Double the buffer (amortised copying) but never past the declared size, which is
                // what the caller accounted for.
                let cap = self.body.capacity();
                let target = if cap == 0 { size.min(READ_CHUNK_BYTES) } else { size.min(cap.saturating_mul(2)) };
                self.body.reserve_exact(target - self.body.len());
            }
            // The spare capacity never exceeds what is left of the frame, so this read cannot
            // consume bytes of the next one.
            let n = r.read_buf(&mut self.body).await?;
            if n == 0 {
                return Err(FrameError::Truncated);
            }
        }
        if self.body.len() < size {
            return Ok(None);
        }
        self.size = None;
        self.size_got = 0;
        Ok(Some(Bytes::from(std::mem::take(&mut self.body))))
    }

    /// Reads the rest of the frame in progress.
    pub async fn read_body<R: AsyncRead + Unpin>(&mut self, r: &mut R) -> Result<Bytes, FrameError> {
        loop {
            if let Some(frame) = self.read_body_step(r).await? {
                return Ok(frame);
            }
        }
    }

    /// Bytes currently allocated for the frame in progress (at most its declared size).
    pub fn buffer_capacity(&self) -> usize {
        self.body.capacity()
    }
}

/// Reads one frame. `Ok(None)` means the peer closed the connection cleanly between frames.
pub async fn read_frame<R: AsyncRead + Unpin>(r: &mut R, max_bytes: usize) -> Result<Option<Bytes>, FrameError> {
    let mut reader = FrameReader::new(max_bytes);
    if reader.read_size(r).await?.is_none() {
        return Ok(None);
    }
    reader.read_body(r).await.map(Some)
}

/// First allocation step while reading a frame.
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

    /// Frames back to back, delivered a few bytes at a time: each frame comes out whole, no byte
    /// of the next frame is consumed, and the buffer never exceeds the declared size.
    #[test]
    fn incremental_reads_stay_within_the_declared_size() {
        rt().block_on(async {
            let big: Vec<u8> = (0..(3 * READ_CHUNK_BYTES + 17)).map(|i| i as u8).collect();
            let mut wire = Vec::new();
            write_frame(&mut wire, &big).await.unwrap();
            write_frame(&mut wire, b"next").await.unwrap();
            let (mut client, mut server) = tokio::io::duplex(4096);
            let writer = tokio::spawn(async move {
                for piece in wire.chunks(1000) {
                    client.write_all(piece).await.unwrap();
                }
            });
            let mut reader = FrameReader::new(8 * READ_CHUNK_BYTES);
            assert_eq!(reader.read_size(&mut server).await.unwrap(), Some(big.len()));
            assert_eq!(reader.buffer_capacity(), 0, "nothing is allocated for a size alone");
            let frame = loop {
                let step = reader.read_body_step(&mut server).await.unwrap();
                assert!(reader.buffer_capacity() <= big.len(), "buffer {} past the frame", reader.buffer_capacity());
                if let Some(f) = step {
                    break f;
                }
            };
            assert_eq!(&frame[..], &big[..]);
            assert_eq!(reader.read_size(&mut server).await.unwrap(), Some(4));
            assert_eq!(&reader.read_body(&mut server).await.unwrap()[..], b"next");
            writer.await.unwrap();
            assert!(reader.read_size(&mut server).await.unwrap().is_none());
        });
    }
}
