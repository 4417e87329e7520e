//! Valid request frames made from the schema table, with random contents: what the tests use to
//! show the table matches the codec (every sample must decode and re-encode to the same bytes)
//! and what the fuzz tests mutate. Each sample also lists where its length and count prefixes
//! are, so a test can corrupt every one of them.

use rand::{Rng, RngCore};

use super::{Field, Message, Scalar, Ty};

/// How a length or count prefix is encoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Prefix {
    /// `i16` string length.
    Int16,
    /// `i32` bytes length or array count.
    Int32,
    /// Compact (uvarint, value + 1) length or count, or a tagged-field count or size.
    UnsignedVarint,
}

/// Where a prefix sits in a sample frame.
#[derive(Clone, Debug)]
pub struct PrefixAt {
    pub offset: usize,
    /// Bytes it takes (a varint may take several).
    pub len: usize,
    pub kind: Prefix,
    /// The field it belongs to (for messages).
    pub field: &'static str,
}

/// A sample request frame (header and body, no size prefix).
#[derive(Clone, Debug)]
pub struct Sample {
    pub frame: Vec<u8>,
    /// Bytes of the header; the body follows.
    pub header_len: usize,
    pub prefixes: Vec<PrefixAt>,
}

/// Shapes of the values a sample may contain.
#[derive(Clone, Copy, Debug)]
pub struct Shape {
    /// Arrays get at least one element, and nullable fields are never null, so every nested
    /// field appears at least once.
    pub full: bool,
}

/// A random valid request of `msg` at `version`, request header included.
pub fn sample(msg: &'static Message, version: i16, shape: Shape, rng: &mut impl RngCore) -> Sample {
    generate(msg, version, shape, rng, true)
}

/// A random valid body of `msg` (a request or a response) at `version`, without a header.
pub fn sample_body(msg: &'static Message, version: i16, shape: Shape, rng: &mut impl RngCore) -> Sample {
    generate(msg, version, shape, rng, false)
}

fn generate(msg: &'static Message, version: i16, shape: Shape, rng: &mut impl RngCore, header: bool) -> Sample {
    let mut g = Gen { out: Vec::new(), prefixes: Vec::new(), version, flexible: msg.is_flexible(version), shape, rng };
    if !header {
        g.fields(msg.fields, "(message)");
        return Sample { frame: g.out, header_len: 0, prefixes: g.prefixes };
    }
    g.out.extend_from_slice(&msg.api_key.to_be_bytes());
    g.out.extend_from_slice(&version.to_be_bytes());
    let corr: i32 = g.rng.random();
    g.out.extend_from_slice(&corr.to_be_bytes());
    // client_id: a nullable i16 string in every header version.
    g.out.extend_from_slice(&6i16.to_be_bytes());
    g.out.extend_from_slice(b"sample");
    if g.flexible {
        g.out.push(0);
    }
    let header_len = g.out.len();
    g.fields(msg.fields, "(message)");
    Sample { frame: g.out, header_len, prefixes: g.prefixes }
}

struct Gen<'r, R: RngCore> {
    out: Vec<u8>,
    prefixes: Vec<PrefixAt>,
    version: i16,
    flexible: bool,
    shape: Shape,
    rng: &'r mut R,
}

impl<R: RngCore> Gen<'_, R> {
    fn uvarint(&mut self, mut v: u32) {
        while v >= 0x80 {
            self.out.push((v as u8) | 0x80);
            v >>= 7;
        }
        self.out.push(v as u8);
    }

    /// Writes a length or count prefix and remembers where it is.
    fn prefix(&mut self, value: i64, kind: Prefix, field: &'static str) {
        let offset = self.out.len();
        match kind {
            Prefix::Int16 => self.out.extend_from_slice(&(value as i16).to_be_bytes()),
            Prefix::Int32 => self.out.extend_from_slice(&(value as i32).to_be_bytes()),
            Prefix::UnsignedVarint => self.uvarint((value + 1) as u32),
        }
        self.prefixes.push(PrefixAt { offset, len: self.out.len() - offset, kind, field });
    }

    fn is_null(&mut self, nullable: bool) -> bool {
        nullable && !self.shape.full && self.rng.random_ratio(1, 5)
    }

    fn fields(&mut self, fields: &'static [Field], owner: &'static str) {
        let version = self.version;
        for field in fields.iter().filter(|f| f.tag.is_none() && f.in_version(version)) {
            self.value(field.ty, field.nullable, field.name);
        }
        if !self.flexible {
            return;
        }
        let tagged: Vec<&Field> =
            fields.iter().filter(|f| f.tag.is_some() && f.in_version(self.version)).collect();
        let chosen: Vec<&Field> =
            tagged.into_iter().filter(|_| self.shape.full || self.rng.random_bool(0.5)).collect();
        let at = self.out.len();
        self.uvarint(chosen.len() as u32);
        self.prefixes.push(PrefixAt { offset: at, len: self.out.len() - at, kind: Prefix::UnsignedVarint, field: owner });
        for field in chosen {
            // Encode the value on its own to learn its size. A tagged field holding its default
            // is not written by encoders, so samples hold values that differ from any default:
            // never null, never false, never -1.
            let mut inner = Gen {
                out: Vec::new(),
                prefixes: Vec::new(),
                version: self.version,
                flexible: true,
                shape: Shape { full: true },
                rng: &mut *self.rng,
            };
            inner.value(field.ty, false, field.name);
            let (bytes, inner_prefixes) = (inner.out, inner.prefixes);
            self.uvarint(field.tag.unwrap_or(0));
            let at = self.out.len();
            self.uvarint(bytes.len() as u32);
            self.prefixes.push(PrefixAt { offset: at, len: self.out.len() - at, kind: Prefix::UnsignedVarint, field: field.name });
            let base = self.out.len();
            self.prefixes.extend(inner_prefixes.into_iter().map(|p| PrefixAt { offset: p.offset + base, ..p }));
            self.out.extend_from_slice(&bytes);
        }
    }

    fn value(&mut self, ty: Ty, nullable: bool, name: &'static str) {
        match ty {
            Ty::Scalar(s) => self.scalar(s, nullable, name),
            Ty::Struct(fields) => {
                if nullable {
                    self.out.push(1);
                }
                self.fields(fields, name)
            }
            Ty::StructArray(fields) => {
                if let Some(n) = self.count(nullable, name) {
                    for _ in 0..n {
                        self.fields(fields, name);
                    }
                }
            }
            Ty::ScalarArray(s) => {
                if let Some(n) = self.count(nullable, name) {
                    for _ in 0..n {
                        self.scalar(s, false, name);
                    }
                }
            }
        }
    }

    fn count(&mut self, nullable: bool, name: &'static str) -> Option<usize> {
        let kind = if self.flexible { Prefix::UnsignedVarint } else { Prefix::Int32 };
        if self.is_null(nullable) {
            self.prefix(-1, kind, name);
            return None;
        }
        let n = if self.shape.full { self.rng.random_range(1..=2) } else { self.rng.random_range(0..=3) };
        self.prefix(n as i64, kind, name);
        Some(n)
    }

    fn scalar(&mut self, s: Scalar, nullable: bool, name: &'static str) {
        match s {
            // Values that differ from every field default (false, 0, -1), see `fields`.
            Scalar::Bool => self.out.push(1),
            Scalar::Int8 => self.out.push(self.rng.random_range(1..=100)),
            Scalar::Int16 => self.out.extend_from_slice(&self.rng.random_range(1..=i16::MAX).to_be_bytes()),
            Scalar::UInt16 => self.out.extend_from_slice(&self.rng.random_range(1..=u16::MAX).to_be_bytes()),
            Scalar::Int32 => self.out.extend_from_slice(&self.rng.random_range(1..=i32::MAX).to_be_bytes()),
            Scalar::Int64 => self.out.extend_from_slice(&self.rng.random_range(1..=i64::MAX).to_be_bytes()),
            Scalar::Float64 => self.out.extend_from_slice(&(self.rng.random_range(1..1000) as f64).to_be_bytes()),
            Scalar::Uuid => {
                let mut id = [0u8; 16];
                self.rng.fill_bytes(&mut id);
                id[0] |= 1; // never the nil id
                self.out.extend_from_slice(&id);
            }
            Scalar::String | Scalar::Bytes => {
                let kind = match (self.flexible, s) {
                    (true, _) => Prefix::UnsignedVarint,
                    (false, Scalar::String) => Prefix::Int16,
                    (false, _) => Prefix::Int32,
                };
                if self.is_null(nullable) {
                    self.prefix(-1, kind, name);
                    return;
                }
                let len = self.rng.random_range(1..=8usize);
                self.prefix(len as i64, kind, name);
                for _ in 0..len {
                    let c = self.rng.random_range(b'a'..=b'z');
                    self.out.push(c);
                }
            }
        }
    }
}
