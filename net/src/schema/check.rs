//! The walk of a request frame against its [`Message`] schema. It allocates nothing but the
//! refusal, reads every byte at most once, and returns at the first field that cannot fit.

use gregor_core::be_reader::BeReader;

use super::{request_schema, response_schema, Field, Message, Scalar, Ty};

/// Why a frame was refused: the API, the field (a path such as `topics[2].partitions`), and what
/// was wrong with it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    pub api: &'static str,
    pub version: i16,
    pub field: String,
    pub reason: String,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} v{}: field {}: {}", self.api, self.version, self.field, self.reason)
    }
}

/// Checks a whole request frame (header and body, without the size prefix). An API without a
/// schema is refused: the broker must not decode what it cannot check.
pub fn check(frame: &[u8]) -> Result<(), Refusal> {
    let mut r = BeReader::new(frame);
    let refuse = |field: &str, reason: String| Refusal { api: "?", version: -1, field: field.into(), reason };
    let api_key = r.i16().ok_or_else(|| refuse("api_key", "frame too short".into()))?;
    let version = r.i16().ok_or_else(|| refuse("api_version", "frame too short".into()))?;
    let msg = request_schema(api_key)
        .ok_or_else(|| refuse("api_key", format!("no request schema for API key {api_key}")))?;
    if !msg.covers(version) {
        return Err(Refusal {
            api: msg.name,
            version,
            field: "api_version".into(),
            reason: format!("no schema for version {version}"),
        });
    }
    let mut w = Walker { r, msg, version, flexible: msg.is_flexible(version), path: Vec::new(), errors: None };
    w.header()?;
    w.fields(msg.fields)?;
    Ok(())
}

/// Checks a response body (what follows the response header) of `api_key` at `version`.
pub fn check_response(api_key: i16, version: i16, body: &[u8]) -> Result<(), Refusal> {
    check_body(response_message(api_key, version)?, version, body).map(|_| ())
}

/// The response schema of `api_key`, if it has one covering `version`.
fn response_message(api_key: i16, version: i16) -> Result<&'static Message, Refusal> {
    let msg = response_schema(api_key).ok_or_else(|| Refusal {
        api: "?",
        version,
        field: "api_key".into(),
        reason: format!("no response schema for API key {api_key}"),
    })?;
    if !msg.covers(version) {
        return Err(Refusal { api: msg.name, version, field: "api_version".into(), reason: "no schema for this version".into() });
    }
    Ok(msg)
}

/// Checks a request body alone (what follows the header); returns the bytes it takes.
pub fn check_body(msg: &'static Message, version: i16, body: &[u8]) -> Result<usize, Refusal> {
    let mut w = Walker { r: BeReader::new(body), msg, version, flexible: msg.is_flexible(version), path: Vec::new(), errors: None };
    w.fields(msg.fields)?;
    Ok(body.len() - w.r.remaining())
}

/// Calls `on` with every `error_code` of a response body of `api_key` at `version`, at every
/// level (the top-level code, each topic's, each partition's), in wire order: what Kafka's
/// `errorCounts()` counts for its `ErrorsPerSec` metric. A body that does not fit its schema
/// stops the walk with the refusal (the codes before it were reported).
pub fn response_error_codes(api_key: i16, version: i16, body: &[u8], on: &mut dyn FnMut(i16)) -> Result<(), Refusal> {
    let msg = response_message(api_key, version)?;
    let mut w = Walker { r: BeReader::new(body), msg, version, flexible: msg.is_flexible(version), path: Vec::new(), errors: Some(on) };
    w.fields(msg.fields)
}

struct Walker<'a> {
    r: BeReader<'a>,
    msg: &'static Message,
    version: i16,
    flexible: bool,
    /// Where the walk is, for the refusal: field names and array indexes.
    path: Vec<Step>,
    /// Told every `error_code` value met (see [`response_error_codes`]).
    errors: Option<&'a mut dyn FnMut(i16)>,
}

#[derive(Clone, Copy)]
enum Step {
    Field(&'static str),
    Index(usize),
}

impl<'a> Walker<'a> {
    fn refuse(&self, reason: impl Into<String>) -> Refusal {
        let mut field = String::new();
        for step in &self.path {
            match step {
                Step::Field(name) => {
                    if !field.is_empty() {
                        field.push('.');
                    }
                    field.push_str(name);
                }
                Step::Index(i) => field.push_str(&format!("[{i}]")),
            }
        }
        if field.is_empty() {
            field.push_str("(message)");
        }
        Refusal { api: self.msg.name, version: self.version, field, reason: reason.into() }
    }

    fn need(&mut self, n: usize) -> Result<(), Refusal> {
        match self.r.take(n) {
            Some(_) => Ok(()),
            None => Err(self.refuse(format!("needs {n} bytes, {} left", self.r.remaining()))),
        }
    }

    fn uvarint(&mut self) -> Result<u32, Refusal> {
        self.r.unsigned_varint().ok_or_else(|| self.refuse("malformed or truncated unsigned varint"))
    }

    /// The request header after api key and version: correlation id, client id (a nullable
    /// non-compact string even in flexible headers) and, in flexible versions, tagged fields.
    fn header(&mut self) -> Result<(), Refusal> {
        self.path.push(Step::Field("correlation_id"));
        self.need(4)?;
        self.path.pop();
        self.path.push(Step::Field("client_id"));
        let len = self.r.i16().ok_or_else(|| self.refuse("truncated"))?;
        if len < -1 {
            return Err(self.refuse(format!("negative length {len}")));
        }
        if len > 0 {
            self.need(len as usize)?;
        }
        self.path.pop();
        if self.flexible {
            self.path.push(Step::Field("header tagged fields"));
            self.tagged_fields(&[])?;
            self.path.pop();
        }
        Ok(())
    }

    fn fields(&mut self, fields: &'static [Field]) -> Result<(), Refusal> {
        let version = self.version;
        for field in fields.iter().filter(|f| f.tag.is_none() && f.in_version(version)) {
            self.path.push(Step::Field(field.name));
            if self.errors.is_some() && field.name == "error_code" && matches!(field.ty, Ty::Scalar(Scalar::Int16)) {
                let code = self.r.i16().ok_or_else(|| self.refuse("truncated"))?;
                if let Some(on) = self.errors.as_mut() {
                    on(code);
                }
                self.path.pop();
                continue;
            }
            self.value(field.ty, field.nullable)?;
            self.path.pop();
        }
        if self.flexible {
            self.tagged_fields(fields)?;
        }
        Ok(())
    }

    fn tagged_fields(&mut self, fields: &'static [Field]) -> Result<(), Refusal> {
        let count = self.uvarint()? as usize;
        // Each tagged field takes at least two bytes (its tag and its size).
        if count > self.r.remaining() / 2 {
            return Err(self.refuse(format!("{count} tagged fields cannot fit in {} bytes", self.r.remaining())));
        }
        for _ in 0..count {
            let tag = self.uvarint()?;
            let size = self.uvarint()? as usize;
            if size > self.r.remaining() {
                return Err(self.refuse(format!("tagged field {tag} of {size} bytes, {} left", self.r.remaining())));
            }
            match fields.iter().find(|f| f.tag == Some(tag)) {
                None => self.need(size)?,
                Some(field) if !field.in_version(self.version) => {
                    return Err(self.refuse(format!("tag {tag} ({}) is not valid in this version", field.name)));
                }
                Some(field) => {
                    // A known tagged field is decoded in place: it must fill exactly its size.
                    self.path.push(Step::Field(field.name));
                    let before = self.r.remaining();
                    self.value(field.ty, field.nullable)?;
                    let used = before - self.r.remaining();
                    if used != size {
                        return Err(self.refuse(format!("tagged field takes {used} bytes but its size says {size}")));
                    }
                    self.path.pop();
                }
            }
        }
        Ok(())
    }

    fn value(&mut self, ty: Ty, nullable: bool) -> Result<(), Refusal> {
        match ty {
            Ty::Scalar(s) => self.scalar(s, nullable),
            Ty::Struct(fields) => {
                // A nullable struct starts with a presence byte: 1 present, anything else null.
                if nullable {
                    let present = self.r.u8().ok_or_else(|| self.refuse("truncated"))?;
                    if present != 1 {
                        return Ok(());
                    }
                }
                self.fields(fields)
            }
            Ty::StructArray(fields) => {
                let min = fields_min_bytes(fields, self.version, self.flexible);
                let Some(n) = self.count(nullable, min)? else { return Ok(()) };
                for i in 0..n {
                    self.path.push(Step::Index(i));
                    self.fields(fields)?;
                    self.path.pop();
                }
                Ok(())
            }
            Ty::ScalarArray(s) => {
                let Some(n) = self.count(nullable, scalar_min_bytes(s, self.flexible))? else { return Ok(()) };
                for i in 0..n {
                    self.path.push(Step::Index(i));
                    self.scalar(s, false)?;
                    self.path.pop();
                }
                Ok(())
            }
        }
    }

    /// An array's element count; `None` for a null array. Refused unless `n` elements of at
    /// least `elem_min_bytes` (never counted as less than one) fit in what is left.
    fn count(&mut self, nullable: bool, elem_min_bytes: usize) -> Result<Option<usize>, Refusal> {
        let n: i64 = if self.flexible {
            i64::from(self.uvarint()?) - 1
        } else {
            i64::from(self.r.i32().ok_or_else(|| self.refuse("truncated array count"))?)
        };
        if n == -1 {
            return if nullable { Ok(None) } else { Err(self.refuse("null array in a non-nullable field")) };
        }
        if n < -1 {
            return Err(self.refuse(format!("negative array count {n}")));
        }
        let left = self.r.remaining() as u64;
        if (n as u64).saturating_mul(elem_min_bytes.max(1) as u64) > left {
            return Err(self.refuse(format!("array of {n} elements cannot fit in {left} bytes")));
        }
        Ok(Some(n as usize))
    }

    fn scalar(&mut self, s: Scalar, nullable: bool) -> Result<(), Refusal> {
        match s {
            Scalar::String | Scalar::Bytes => {
                let len: i64 = match (self.flexible, s) {
                    (true, _) => i64::from(self.uvarint()?) - 1,
                    (false, Scalar::String) => i64::from(self.r.i16().ok_or_else(|| self.refuse("truncated length"))?),
                    (false, _) => i64::from(self.r.i32().ok_or_else(|| self.refuse("truncated length"))?),
                };
                if len == -1 {
                    return if nullable { Ok(()) } else { Err(self.refuse("null in a non-nullable field")) };
                }
                if len < -1 {
                    return Err(self.refuse(format!("negative length {len}")));
                }
                let left = self.r.remaining() as i64;
                if len > left {
                    return Err(self.refuse(format!("length {len} exceeds the {left} bytes left")));
                }
                self.need(len as usize)
            }
            fixed => self.need(fixed_bytes(fixed)),
        }
    }
}

fn fixed_bytes(s: Scalar) -> usize {
    match s {
        Scalar::Bool | Scalar::Int8 => 1,
        Scalar::Int16 | Scalar::UInt16 => 2,
        Scalar::Int32 => 4,
        Scalar::Int64 | Scalar::Float64 => 8,
        Scalar::Uuid => 16,
        // Only their length prefix is certain.
        Scalar::String | Scalar::Bytes => 0,
    }
}

fn scalar_min_bytes(s: Scalar, flexible: bool) -> usize {
    match s {
        Scalar::String | Scalar::Bytes if flexible => 1,
        Scalar::String => 2,
        Scalar::Bytes => 4,
        fixed => fixed_bytes(fixed),
    }
}

/// The fewest bytes a struct's fields can take in `version`.
fn fields_min_bytes(fields: &[Field], version: i16, flexible: bool) -> usize {
    let mut total = usize::from(flexible); // the tagged-field count
    for field in fields.iter().filter(|f| f.tag.is_none() && f.in_version(version)) {
        total += match field.ty {
            Ty::Scalar(s) => scalar_min_bytes(s, flexible),
            Ty::Struct(inner) => fields_min_bytes(inner, version, flexible),
            Ty::StructArray(_) | Ty::ScalarArray(_) => {
                if flexible {
                    1
                } else {
                    4
                }
            }
        };
    }
    total
}
