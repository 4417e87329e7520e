//! Bounded, streaming decompression of the record data of compressed v2 batches (Kafka's codec
//! ids: 1 gzip, 2 snappy, 3 lz4, 4 zstd).
//!
//! Guarantees:
//! * Nothing here allocates in proportion to what a payload *claims* it decompresses to. The
//!   readers are streams; the one codec whose format needs a whole block in memory (snappy) checks
//!   each block's declared size against the caller's limit and against the most a snappy block of
//!   that size can expand to before allocating.
//! * zstd frames may use windows up to 2^[`ZSTD_WINDOW_LOG_MAX`] bytes, the limit Kafka's own
//!   broker (zstd-jni) decodes with; a frame asking for more is an error, not an allocation.
//! * Malformed input is an `io::Error`; a snappy block over the limit is an error of kind
//!   [`io::ErrorKind::FileTooLarge`]. Nothing panics on any input.
//!
//! Formats are the ones Kafka's clients write: gzip (RFC 1952, concatenated members accepted as
//! `GZIPInputStream` does), snappy in xerial-snappy framing (`\x82SNAPPY\0` header, then
//! length-prefixed raw blocks) or, without that header, one raw snappy block (as snappy-java falls
//! back to), the LZ4 frame format, and zstd frames.

use std::io::{self, Read};

/// Codec id of gzip in the batch attributes.
pub const CODEC_GZIP: i16 = 1;
/// Codec id of snappy.
pub const CODEC_SNAPPY: i16 = 2;
/// Codec id of lz4.
pub const CODEC_LZ4: i16 = 3;
/// Codec id of zstd.
pub const CODEC_ZSTD: i16 = 4;

/// Largest zstd window (log2 bytes) accepted: zstd's default decoding limit, which Kafka uses.
pub const ZSTD_WINDOW_LOG_MAX: u32 = 27;

/// The xerial-snappy stream header's magic prefix.
const XERIAL_MAGIC: &[u8; 8] = b"\x82SNAPPY\x00";
/// Magic plus version and compatible-version (two big-endian i32).
const XERIAL_HEADER_LEN: usize = 16;
/// A snappy copy element emits at most 64 bytes for 3 input bytes, so a block can expand about
/// 21-fold; a declared length beyond this bound cannot be genuine and is refused before any
/// buffer is sized for it.
const SNAPPY_EXPANSION_MAX: usize = 32;
const SNAPPY_SLACK_BYTES: usize = 64;

/// A reader yielding the decompressed bytes of `data` under codec `codec`.
/// `decompressed_bytes_max` bounds what the snappy reader will allocate for its blocks; the
/// caller still counts the bytes it reads (the other codecs stream).
pub fn decompressor<'a>(codec: i16, data: &'a [u8], decompressed_bytes_max: u64) -> io::Result<Box<dyn Read + 'a>> {
    match codec {
        CODEC_GZIP => Ok(Box::new(flate2::bufread::MultiGzDecoder::new(data))),
        CODEC_SNAPPY => Ok(Box::new(SnappyReader::new(data, decompressed_bytes_max))),
        CODEC_LZ4 => Ok(Box::new(lz4::Decoder::new(data)?)),
        CODEC_ZSTD => {
            let mut d = zstd::stream::read::Decoder::with_buffer(data)?;
            d.window_log_max(ZSTD_WINDOW_LOG_MAX)?;
            Ok(Box::new(d))
        }
        other => Err(io::Error::new(io::ErrorKind::InvalidData, format!("unknown compression codec {other}"))),
    }
}

/// Most bytes of plain data in one snappy block of the xerial framing this side writes (the
/// block size of Kafka's Java client, snappy-java's default).
const XERIAL_BLOCK_BYTES: usize = 32 * 1024;

/// Compresses `plain` with `codec` (0 returns it as is) in the format Kafka's Java client
/// writes, which every client and [`decompressor`] read: a gzip member, xerial-framed snappy,
/// an LZ4 frame, a zstd frame. Used where the broker itself must re-encode record data
/// (compaction rewriting a batch without some of its records).
pub fn compress(codec: i16, plain: &[u8]) -> io::Result<Vec<u8>> {
    use std::io::Write;
    match codec {
        0 => Ok(plain.to_vec()),
        CODEC_GZIP => {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            e.write_all(plain)?;
            e.finish()
        }
        CODEC_SNAPPY => {
            let mut out = Vec::with_capacity(XERIAL_HEADER_LEN + plain.len() / 2);
            out.extend_from_slice(XERIAL_MAGIC);
            out.extend_from_slice(&1i32.to_be_bytes());
            out.extend_from_slice(&1i32.to_be_bytes());
            let mut encoder = snap::raw::Encoder::new();
            for block in plain.chunks(XERIAL_BLOCK_BYTES) {
                let compressed = encoder.compress_vec(block).map_err(io::Error::other)?;
                let len = u32::try_from(compressed.len()).map_err(io::Error::other)?;
                out.extend_from_slice(&len.to_be_bytes());
                out.extend_from_slice(&compressed);
            }
            Ok(out)
        }
        CODEC_LZ4 => {
            let mut e = lz4::EncoderBuilder::new().build(Vec::new())?;
            e.write_all(plain)?;
            let (out, r) = e.finish();
            r.map(|()| out)
        }
        CODEC_ZSTD => zstd::encode_all(plain, 3),
        other => Err(io::Error::new(io::ErrorKind::InvalidInput, format!("unknown compression codec {other}"))),
    }
}

/// Snappy as Kafka's clients write it: xerial framing, or a single raw block.
struct SnappyReader<'a> {
    /// Compressed bytes not yet decoded (after the header, for framed streams).
    input: &'a [u8],
    /// Whether `input` is a sequence of length-prefixed blocks (else one raw block).
    framed: bool,
    /// The current decoded block and how much of it was handed out.
    block: Vec<u8>,
    block_pos: usize,
    /// Bytes decoded so far, and the limit on them.
    produced: u64,
    limit: u64,
    decoder: snap::raw::Decoder,
}

impl<'a> SnappyReader<'a> {
    fn new(data: &'a [u8], limit: u64) -> SnappyReader<'a> {
        let framed = data.len() >= XERIAL_HEADER_LEN && data.starts_with(XERIAL_MAGIC);
        SnappyReader {
            input: if framed { &data[XERIAL_HEADER_LEN..] } else { data },
            framed,
            block: Vec::new(),
            block_pos: 0,
            produced: 0,
            limit,
            decoder: snap::raw::Decoder::new(),
        }
    }

    /// Decodes the next block into `self.block`; `Ok(false)` at the end of the stream.
    fn next_block(&mut self) -> io::Result<bool> {
        let compressed: &[u8] = if self.framed {
            if self.input.is_empty() {
                return Ok(false);
            }
            if self.input.len() < 4 {
                return Err(invalid("snappy: truncated block length"));
            }
            let len = u32::from_be_bytes([self.input[0], self.input[1], self.input[2], self.input[3]]) as usize;
            let rest = &self.input[4..];
            if len > rest.len() {
                return Err(invalid("snappy: block longer than the data"));
            }
            let (block, after) = rest.split_at(len);
            self.input = after;
            block
        } else {
            // One raw block: the whole input, once. An empty input is an empty stream.
            let block = self.input;
            self.input = &[];
            if block.is_empty() {
                return Ok(false);
            }
            block
        };
        let len = snap::raw::decompress_len(compressed).map_err(|e| invalid(&format!("snappy: {e}")))?;
        if len > compressed.len().saturating_mul(SNAPPY_EXPANSION_MAX).saturating_add(SNAPPY_SLACK_BYTES) {
            return Err(invalid("snappy: block declares a length it cannot expand to"));
        }
        if self.produced.saturating_add(len as u64) > self.limit {
            return Err(io::Error::new(io::ErrorKind::FileTooLarge, "snappy: decompressed size over the limit"));
        }
        self.block.clear();
        self.block.resize(len, 0);
        let n = self.decoder.decompress(compressed, &mut self.block).map_err(|e| invalid(&format!("snappy: {e}")))?;
        self.block.truncate(n);
        self.block_pos = 0;
        self.produced += n as u64;
        Ok(true)
    }
}

impl Read for SnappyReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.block_pos >= self.block.len() {
            if !self.next_block()? {
                return Ok(0);
            }
        }
        let n = buf.len().min(self.block.len() - self.block_pos);
        buf[..n].copy_from_slice(&self.block[self.block_pos..self.block_pos + n]);
        self.block_pos += n;
        Ok(n)
    }
}

fn invalid(msg: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn read_all(codec: i16, data: &[u8], max: u64) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        decompressor(codec, data, max)?.read_to_end(&mut out)?;
        Ok(out)
    }

    #[test]
    fn every_codec_round_trips() {
        let plain: Vec<u8> = (0..50_000u32).flat_map(|i| (i % 251).to_le_bytes()).collect();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(&plain).unwrap();
        let gz = gz.finish().unwrap();
        assert_eq!(read_all(CODEC_GZIP, &gz, u64::MAX).unwrap(), plain);

        let raw_snappy = snap::raw::Encoder::new().compress_vec(&plain).unwrap();
        assert_eq!(read_all(CODEC_SNAPPY, &raw_snappy, u64::MAX).unwrap(), plain);
        let mut xerial = XERIAL_MAGIC.to_vec();
        xerial.extend_from_slice(&1i32.to_be_bytes());
        xerial.extend_from_slice(&1i32.to_be_bytes());
        for chunk in plain.chunks(32 * 1024) {
            let block = snap::raw::Encoder::new().compress_vec(chunk).unwrap();
            xerial.extend_from_slice(&(block.len() as u32).to_be_bytes());
            xerial.extend_from_slice(&block);
        }
        assert_eq!(read_all(CODEC_SNAPPY, &xerial, u64::MAX).unwrap(), plain);

        let mut lz = lz4::EncoderBuilder::new().build(Vec::new()).unwrap();
        lz.write_all(&plain).unwrap();
        let (lz, r) = lz.finish();
        r.unwrap();
        assert_eq!(read_all(CODEC_LZ4, &lz, u64::MAX).unwrap(), plain);

        let z = zstd::encode_all(&plain[..], 3).unwrap();
        assert_eq!(read_all(CODEC_ZSTD, &z, u64::MAX).unwrap(), plain);
    }

    #[test]
    fn garbage_is_an_error_for_every_codec() {
        let garbage = b"this is not compressed data at all, not even a little".to_vec();
        for codec in [CODEC_GZIP, CODEC_LZ4, CODEC_ZSTD] {
            assert!(read_all(codec, &garbage, u64::MAX).is_err(), "codec {codec}");
        }
        // Raw snappy: the first byte is a length varint, the rest must decode to exactly it.
        assert!(read_all(CODEC_SNAPPY, &garbage, u64::MAX).is_err());
        assert!(read_all(9, &garbage, u64::MAX).is_err());
    }

    #[test]
    fn snappy_refuses_blocks_over_the_limit_before_allocating() {
        let plain = vec![7u8; 100_000];
        let raw = snap::raw::Encoder::new().compress_vec(&plain).unwrap();
        let e = read_all(CODEC_SNAPPY, &raw, 50_000).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::FileTooLarge);
        // A 6-byte block claiming 2^31 bytes is refused without sizing a buffer for it.
        let lie = [0x80, 0x80, 0x80, 0x80, 0x08, 0x00];
        let e = read_all(CODEC_SNAPPY, &lie, u64::MAX).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
    }
}
