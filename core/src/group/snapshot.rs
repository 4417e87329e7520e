//! The persisted form of a group's metadata: what the coordinator hands to the server in
//! `Effect::Persist`, and what `Coordinator::load` restores after a coordinator failover.
//!
//! Encoding (version 0), all integers big-endian:
//! `u16 version | string protocol_type | i32 generation | nstring protocol_name | nstring leader |
//!  u8 state | u32 member_count | member*`, where a member is
//! `string member_id | nstring group_instance_id | string client_id | string client_host |
//!  i32 rebalance_timeout_ms | i32 session_timeout_ms | bytes subscription | bytes assignment`,
//! `string`/`bytes` = `u32 length | data` and `nstring` uses length `u32::MAX` for null.
//!
//! Guarantees: `decode(encode(s)) == s` for every snapshot; `decode` never panics and never
//! allocates more than the input's length on any input (every length is checked against the
//! bytes that remain before anything is allocated), and rejects trailing bytes.

use bytes::Bytes;

use super::types::GroupState;

/// Current encoding version.
pub const SNAPSHOT_VERSION: u16 = 0;
const NULL_LEN: u32 = u32::MAX;
/// Smallest encoded member: four empty strings/bytes length prefixes, a null instance id, two i32s.
const MEMBER_BYTES_MIN: usize = 4 * 4 + 4 + 4 + 4 + 4;

/// One member as persisted. Only the chosen protocol's metadata is kept (as Kafka does): after a
/// load the member supports exactly the group's protocol until it rejoins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberSnapshot {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub rebalance_timeout_ms: i32,
    pub session_timeout_ms: i32,
    /// The member's metadata for the group's protocol (for consumers: its subscription).
    pub subscription: Bytes,
    pub assignment: Bytes,
}

/// A group's persisted metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupSnapshot {
    pub protocol_type: String,
    pub generation: i32,
    pub protocol_name: Option<String>,
    pub leader: Option<String>,
    /// Stable or Empty when produced by `Effect::Persist`; `load` derives the state from the
    /// member list (members ⇒ Stable, none ⇒ Empty) whatever this says.
    pub state: GroupState,
    pub members: Vec<MemberSnapshot>,
}

/// Why a stored snapshot could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SnapshotDecodeError {
    #[error("group snapshot is truncated")]
    Truncated,
    #[error("group snapshot version {0} is not supported")]
    UnsupportedVersion(u16),
    #[error("group snapshot holds a string that is not UTF-8")]
    BadUtf8,
    #[error("group snapshot holds unknown state {0}")]
    BadState(u8),
    #[error("group snapshot has {0} trailing bytes")]
    TrailingBytes(usize),
}

fn state_to_u8(s: GroupState) -> u8 {
    match s {
        GroupState::Empty => 0,
        GroupState::PreparingRebalance => 1,
        GroupState::CompletingRebalance => 2,
        GroupState::Stable => 3,
        GroupState::Dead => 4,
    }
}

fn state_from_u8(b: u8) -> Result<GroupState, SnapshotDecodeError> {
    Ok(match b {
        0 => GroupState::Empty,
        1 => GroupState::PreparingRebalance,
        2 => GroupState::CompletingRebalance,
        3 => GroupState::Stable,
        4 => GroupState::Dead,
        other => return Err(SnapshotDecodeError::BadState(other)),
    })
}

// Lengths are u32 on the wire; a field longer than u32::MAX - 1 cannot come from a Kafka request
// (frames are far smaller), so it is truncated rather than making encode fallible.
fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    let len = b.len().min((NULL_LEN - 1) as usize);
    out.extend_from_slice(&(len as u32).to_be_bytes());
    out.extend_from_slice(&b[..len]);
}

fn put_nstring(out: &mut Vec<u8>, s: Option<&str>) {
    match s {
        Some(s) => put_bytes(out, s.as_bytes()),
        None => out.extend_from_slice(&NULL_LEN.to_be_bytes()),
    }
}

struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], SnapshotDecodeError> {
        if self.buf.len() < n {
            return Err(SnapshotDecodeError::Truncated);
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }
    fn u8(&mut self) -> Result<u8, SnapshotDecodeError> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16, SnapshotDecodeError> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }
    fn u32(&mut self) -> Result<u32, SnapshotDecodeError> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn i32(&mut self) -> Result<i32, SnapshotDecodeError> {
        Ok(self.u32()? as i32)
    }
    fn nbytes(&mut self) -> Result<Option<&'a [u8]>, SnapshotDecodeError> {
        let len = self.u32()?;
        if len == NULL_LEN {
            return Ok(None);
        }
        // `take` checks the length against what remains before anything is copied.
        Ok(Some(self.take(len as usize)?))
    }
    fn bytes(&mut self) -> Result<Bytes, SnapshotDecodeError> {
        let b = self.nbytes()?.ok_or(SnapshotDecodeError::Truncated)?;
        Ok(Bytes::copy_from_slice(b))
    }
    fn nstring(&mut self) -> Result<Option<String>, SnapshotDecodeError> {
        match self.nbytes()? {
            None => Ok(None),
            Some(b) => std::str::from_utf8(b).map(|s| Some(s.to_string())).map_err(|_| SnapshotDecodeError::BadUtf8),
        }
    }
    fn string(&mut self) -> Result<String, SnapshotDecodeError> {
        self.nstring()?.ok_or(SnapshotDecodeError::Truncated)
    }
}

impl GroupSnapshot {
    /// Encodes the snapshot (see the module docs for the layout).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64);
        out.extend_from_slice(&SNAPSHOT_VERSION.to_be_bytes());
        put_bytes(&mut out, self.protocol_type.as_bytes());
        out.extend_from_slice(&self.generation.to_be_bytes());
        put_nstring(&mut out, self.protocol_name.as_deref());
        put_nstring(&mut out, self.leader.as_deref());
        out.push(state_to_u8(self.state));
        let count = self.members.len().min(u32::MAX as usize);
        out.extend_from_slice(&(count as u32).to_be_bytes());
        for m in self.members.iter().take(count) {
            put_bytes(&mut out, m.member_id.as_bytes());
            put_nstring(&mut out, m.group_instance_id.as_deref());
            put_bytes(&mut out, m.client_id.as_bytes());
            put_bytes(&mut out, m.client_host.as_bytes());
            out.extend_from_slice(&m.rebalance_timeout_ms.to_be_bytes());
            out.extend_from_slice(&m.session_timeout_ms.to_be_bytes());
            put_bytes(&mut out, &m.subscription);
            put_bytes(&mut out, &m.assignment);
        }
        out
    }

    /// Decodes a snapshot written by [`GroupSnapshot::encode`]. Never panics.
    pub fn decode(buf: &[u8]) -> Result<GroupSnapshot, SnapshotDecodeError> {
        let mut r = Reader { buf };
        let version = r.u16()?;
        if version != SNAPSHOT_VERSION {
            return Err(SnapshotDecodeError::UnsupportedVersion(version));
        }
        let protocol_type = r.string()?;
        let generation = r.i32()?;
        let protocol_name = r.nstring()?;
        let leader = r.nstring()?;
        let state = state_from_u8(r.u8()?)?;
        let count = r.u32()? as usize;
        // A claimed count larger than the remaining bytes could hold is garbage: fail before
        // reserving memory for it.
        if count > r.buf.len() / MEMBER_BYTES_MIN {
            return Err(SnapshotDecodeError::Truncated);
        }
        let mut members = Vec::with_capacity(count);
        for _ in 0..count {
            members.push(MemberSnapshot {
                member_id: r.string()?,
                group_instance_id: r.nstring()?,
                client_id: r.string()?,
                client_host: r.string()?,
                rebalance_timeout_ms: r.i32()?,
                session_timeout_ms: r.i32()?,
                subscription: r.bytes()?,
                assignment: r.bytes()?,
            });
        }
        if !r.buf.is_empty() {
            return Err(SnapshotDecodeError::TrailingBytes(r.buf.len()));
        }
        Ok(GroupSnapshot { protocol_type, generation, protocol_name, leader, state, members })
    }
}
