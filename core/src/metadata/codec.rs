//! The byte encoding of metadata records: big-endian fixed-width fields, strings as a u16
//! length and UTF-8 bytes, lists as a u32 count and elements, optional values behind a
//! presence byte.
//!
//! The writer and the reader sit side by side so every field is written and read the same
//! way. Decoding never panics and never allocates more than the input can hold: a count or
//! length that cannot fit in what is left is refused before anything is reserved.

use crate::be_reader::BeReader;

/// Appends fields to a buffer.
#[derive(Default)]
pub struct Writer {
    pub buf: Vec<u8>,
}

impl Writer {
    pub fn u8(&mut self, v: u8) {
        self.buf.push(v);
    }
    pub fn bool(&mut self, v: bool) {
        self.buf.push(u8::from(v));
    }
    pub fn i16(&mut self, v: i16) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }
    pub fn i32(&mut self, v: i32) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }
    pub fn i64(&mut self, v: i64) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }
    pub fn u128(&mut self, v: u128) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }
    /// Strings longer than `u16::MAX` bytes cannot be encoded; callers validate lengths first
    /// (topic names, config keys and values are bounded far below that).
    pub fn str(&mut self, s: &str) {
        let len = u16::try_from(s.len()).expect("metadata strings are validated to fit u16");
        self.buf.extend_from_slice(&len.to_be_bytes());
        self.buf.extend_from_slice(s.as_bytes());
    }
    pub fn opt_str(&mut self, s: Option<&str>) {
        match s {
            Some(s) => {
                self.u8(1);
                self.str(s);
            }
            None => self.u8(0),
        }
    }
    pub fn i32s(&mut self, v: &[i32]) {
        self.buf.extend_from_slice(&(v.len() as u32).to_be_bytes());
        for x in v {
            self.i32(*x);
        }
    }
    pub fn opt_i32s(&mut self, v: Option<&[i32]>) {
        match v {
            Some(v) => {
                self.u8(1);
                self.i32s(v);
            }
            None => self.u8(0),
        }
    }
}

/// Reads fields written by [`Writer`]; `None` means the input is malformed.
pub struct Reader<'a> {
    r: BeReader<'a>,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { r: BeReader::new(buf) }
    }
    pub fn remaining(&self) -> usize {
        self.r.remaining()
    }
    pub fn u8(&mut self) -> Option<u8> {
        self.r.u8()
    }
    pub fn bool(&mut self) -> Option<bool> {
        match self.r.u8()? {
            0 => Some(false),
            1 => Some(true),
            _ => None,
        }
    }
    pub fn i16(&mut self) -> Option<i16> {
        self.r.i16()
    }
    pub fn i32(&mut self) -> Option<i32> {
        self.r.i32()
    }
    pub fn i64(&mut self) -> Option<i64> {
        self.r.i64()
    }
    pub fn u128(&mut self) -> Option<u128> {
        Some(u128::from_be_bytes(self.r.take(16)?.try_into().ok()?))
    }
    pub fn str(&mut self) -> Option<String> {
        let len = usize::from(u16::from_be_bytes(self.r.take(2)?.try_into().ok()?));
        let bytes = self.r.take(len)?;
        String::from_utf8(bytes.to_vec()).ok()
    }
    pub fn opt_str(&mut self) -> Option<Option<String>> {
        if self.bool()? {
            Some(Some(self.str()?))
        } else {
            Some(None)
        }
    }
    pub fn i32s(&mut self) -> Option<Vec<i32>> {
        let n = self.r.u32()? as usize;
        if n > self.r.remaining() / 4 {
            return None;
        }
        (0..n).map(|_| self.r.i32()).collect()
    }
    pub fn opt_i32s(&mut self) -> Option<Option<Vec<i32>>> {
        if self.bool()? {
            Some(Some(self.i32s()?))
        } else {
            Some(None)
        }
    }
    /// The next `n` bytes.
    pub fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        self.r.take(n)
    }
    /// A list count whose elements take at least `min_element_bytes` each.
    pub fn count(&mut self, min_element_bytes: usize) -> Option<usize> {
        let n = self.r.u32()? as usize;
        (n <= self.r.remaining() / min_element_bytes.max(1)).then_some(n)
    }
}
