//! A bounds-checked reader of big-endian fields, for decoding files and records that may be
//! damaged: every read returns `None` past the end instead of panicking.

/// Reads fixed-size big-endian fields from a byte slice, front to back.
#[derive(Debug, Clone)]
pub struct BeReader<'a> {
    buf: &'a [u8],
}

impl<'a> BeReader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        BeReader { buf }
    }

    /// Bytes not read yet.
    pub fn remaining(&self) -> usize {
        self.buf.len()
    }

    /// The next `n` bytes, or `None` if fewer remain (nothing is consumed then).
    pub fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.buf.len() < n {
            return None;
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Some(head)
    }

    fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        self.take(N)?.try_into().ok()
    }

    pub fn u8(&mut self) -> Option<u8> {
        Some(self.take(1)?[0])
    }
    pub fn i16(&mut self) -> Option<i16> {
        self.array().map(i16::from_be_bytes)
    }
    pub fn i32(&mut self) -> Option<i32> {
        self.array().map(i32::from_be_bytes)
    }
    pub fn u32(&mut self) -> Option<u32> {
        self.array().map(u32::from_be_bytes)
    }
    pub fn i64(&mut self) -> Option<i64> {
        self.array().map(i64::from_be_bytes)
    }
    pub fn u64(&mut self) -> Option<u64> {
        self.array().map(u64::from_be_bytes)
    }

    /// Kafka's `UNSIGNED_VARINT`: 7 bits a byte, low bits first, at most five bytes. `None` if
    /// it runs past the end, takes more than five bytes, or does not fit 32 bits.
    pub fn unsigned_varint(&mut self) -> Option<u32> {
        let mut value: u32 = 0;
        for i in 0..5 {
            let b = self.u8()?;
            if i == 4 && b > 0x0f {
                return None;
            }
            value |= u32::from(b & 0x7f) << (i * 7);
            if b < 0x80 {
                return Some(value);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::BeReader;

    #[test]
    fn reads_and_stops_at_the_end() {
        let b = [0u8, 1, 0, 0, 0, 2, 0xff];
        let mut r = BeReader::new(&b);
        assert_eq!(r.i16(), Some(1));
        assert_eq!(r.i32(), Some(2));
        assert_eq!(r.i16(), None);
        assert_eq!(r.remaining(), 1);
        assert_eq!(r.u8(), Some(0xff));
        assert_eq!(r.u8(), None);
    }

    #[test]
    fn unsigned_varints() {
        assert_eq!(BeReader::new(&[0x00]).unsigned_varint(), Some(0));
        assert_eq!(BeReader::new(&[0x96, 0x01]).unsigned_varint(), Some(150));
        assert_eq!(BeReader::new(&[0xff, 0xff, 0xff, 0xff, 0x0f]).unsigned_varint(), Some(u32::MAX));
        // Too long, too large, or cut off.
        assert_eq!(BeReader::new(&[0xff, 0xff, 0xff, 0xff, 0x8f, 0x00]).unsigned_varint(), None);
        assert_eq!(BeReader::new(&[0xff, 0xff, 0xff, 0xff, 0x1f]).unsigned_varint(), None);
        assert_eq!(BeReader::new(&[0x80]).unsigned_varint(), None);
    }
}
