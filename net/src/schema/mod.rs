//! Gregor's own description of the Kafka request formats, and the bounds check every request
//! passes before anything decodes it.
//!
//! # Why this exists
//! The request bodies are decoded by the `kafka-protocol` crate, whose array decoders reserve
//! room for the element count a frame *claims* before reading a single element. A 25-byte
//! Metadata request claiming 2^31−1 topics asks for ~150 GB, and a failed allocation aborts the
//! process: no `catch_unwind` contains it. The crate cannot be patched here, so Gregor owns the
//! question "is this frame well formed?" itself, and asks it first.
//!
//! # How
//! [`requests`] is a table of every served request (and [`responses`] of their answers, which
//! the client checks the same way before it decodes what another node sent): for each API, its fields in wire order with
//! the versions each exists in, its type, whether it may be null, and its tag if it is a tagged
//! field; and from which version the message uses the flexible (compact, tagged) encoding.
//! [`check`] walks a frame against that table without allocating, and refuses it unless
//! - every string, bytes and array length fits in what is left of the frame (an array of `n`
//!   elements needs at least `n` times its element's smallest encoding, never less than one byte
//!   per element: Kafka's own rule, "tried to allocate a collection of size n, but there are only
//!   m bytes remaining");
//! - every varint ends within five bytes and fits 32 bits;
//! - every tagged-field count and size fits, and a known tagged field fills exactly its size;
//! - null appears only where the field is nullable.
//!
//! A frame that passes has every element it claims actually present, so the decoder's
//! reservations are bounded by the frame's own size (itself bounded by
//! `socket.request.max.bytes`) times the size of a decoded element.
//!
//! # Why a table and not our own codec
//! The decoded types, their encoders and the response side stay the crate's (thousands of lines
//! of generated code we need not own); only the *validation* must be ours. A table is small,
//! reviewable against Kafka's message definitions, and its correctness is tested mechanically:
//! frames generated from the table must decode with the crate and re-encode to the same bytes,
//! at every version of every API (see the tests), so a field the table missed or misplaced
//! fails the build's tests rather than a hostile frame. Every API version the broker advertises
//! must have a schema here (a test checks `ApiVersions` against [`request_schema`]); adding an
//! API (the cluster's, transactions') means adding its rows.

mod check;
pub mod requests;
pub mod responses;
pub mod sample;
#[cfg(test)]
mod tests;

pub use check::{check, check_body, check_response, response_error_codes, Refusal};

/// A type with no parts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scalar {
    Bool,
    Int8,
    Int16,
    UInt16,
    Int32,
    Int64,
    Float64,
    Uuid,
    /// `STRING` (i16 length) or, in flexible versions, `COMPACT_STRING` (uvarint length + 1).
    String,
    /// `BYTES` (i32 length) or, in flexible versions, `COMPACT_BYTES`.
    Bytes,
}

/// One field's type on the wire.
#[derive(Clone, Copy, Debug)]
pub enum Ty {
    Scalar(Scalar),
    /// A nested struct (in flexible versions it ends with its own tagged fields).
    Struct(&'static [Field]),
    /// `ARRAY` (i32 count) or, in flexible versions, `COMPACT_ARRAY` (uvarint count + 1) of structs.
    StructArray(&'static [Field]),
    /// An array of scalars.
    ScalarArray(Scalar),
}

/// One field of a message or nested struct.
#[derive(Clone, Copy, Debug)]
pub struct Field {
    pub name: &'static str,
    /// Versions the field exists in, inclusive; `i16::MAX` for "and every later one".
    pub versions: (i16, i16),
    pub ty: Ty,
    /// Null (length or count -1, or compact 0) is accepted.
    pub nullable: bool,
    /// A tagged field (flexible versions only) with this tag.
    pub tag: Option<u32>,
}

impl Field {
    pub const fn nullable(mut self) -> Self {
        self.nullable = true;
        self
    }
    pub const fn tagged(mut self, tag: u32) -> Self {
        self.tag = Some(tag);
        self
    }
    pub fn in_version(&self, version: i16) -> bool {
        self.versions.0 <= version && version <= self.versions.1
    }
}

/// A field present from `from` on.
pub const fn f(name: &'static str, from: i16, ty: Ty) -> Field {
    Field { name, versions: (from, i16::MAX), ty, nullable: false, tag: None }
}

/// A field present in versions `from..=to`.
pub const fn fr(name: &'static str, from: i16, to: i16, ty: Ty) -> Field {
    Field { name, versions: (from, to), ty, nullable: false, tag: None }
}

pub const fn array(fields: &'static [Field]) -> Ty {
    Ty::StructArray(fields)
}

pub const fn array_of(elem: Ty) -> Ty {
    match elem {
        Ty::Scalar(s) => Ty::ScalarArray(s),
        _ => panic!("array_of takes a scalar"),
    }
}

pub const fn strukt(fields: &'static [Field]) -> Ty {
    Ty::Struct(fields)
}

pub const BOOL: Ty = Ty::Scalar(Scalar::Bool);
pub const I8: Ty = Ty::Scalar(Scalar::Int8);
pub const I16: Ty = Ty::Scalar(Scalar::Int16);
pub const U16: Ty = Ty::Scalar(Scalar::UInt16);
pub const I32: Ty = Ty::Scalar(Scalar::Int32);
pub const I64: Ty = Ty::Scalar(Scalar::Int64);
pub const F64: Ty = Ty::Scalar(Scalar::Float64);
pub const UUID: Ty = Ty::Scalar(Scalar::Uuid);
pub const STRING: Ty = Ty::Scalar(Scalar::String);
pub const BYTES: Ty = Ty::Scalar(Scalar::Bytes);

/// One request message.
#[derive(Debug)]
pub struct Message {
    pub api_key: i16,
    pub name: &'static str,
    /// Versions this schema describes, inclusive.
    pub versions: (i16, i16),
    /// First flexible version (compact lengths, tagged fields), if any.
    pub flexible_from: Option<i16>,
    pub fields: &'static [Field],
}

impl Message {
    pub fn is_flexible(&self, version: i16) -> bool {
        self.flexible_from.is_some_and(|v| version >= v)
    }
    pub fn covers(&self, version: i16) -> bool {
        self.versions.0 <= version && version <= self.versions.1
    }
}

/// The schema of `api_key`'s request, if Gregor has one.
pub fn request_schema(api_key: i16) -> Option<&'static Message> {
    requests::ALL.iter().copied().find(|m| m.api_key == api_key)
}

/// The schema of `api_key`'s response, if Gregor has one.
pub fn response_schema(api_key: i16) -> Option<&'static Message> {
    responses::ALL.iter().copied().find(|m| m.api_key == api_key)
}
