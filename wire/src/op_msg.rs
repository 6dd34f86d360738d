//! OP_MSG (opcode 2013): the message every modern command and reply travels in.
//!
//! Layout: `flagBits` (u32), then sections until the end (or the 4-byte CRC-32C checksum when
//! `checksumPresent` is set). A kind 0 section is the body document — exactly one per message.
//! A kind 1 section is a document sequence: a size, an identifier (`documents` for `insert`,
//! `updates`, `deletes`, `ops`, `nsInfo`…) and documents until the size is used up. Drivers send
//! bulk writes as sequences, so the policy engine sees writes in both places; this module keeps
//! both intact and in their original order so an unchanged message re-encodes byte for byte.

use bytes::{BufMut, Bytes};

use crate::document::RawDoc;
use crate::error::WireError;
use crate::header::HEADER_LEN;
use crate::limits::Limits;
use crate::reader::Reader;

/// OP_MSG flag bits.
///
/// The specification splits them: bits 0–15 are *required* (a parser must refuse unknown ones),
/// bits 16–31 are *optional* (a parser must ignore unknown ones). Unknown optional bits are kept
/// so a message round-trips; [`MsgFlags::known`] drops them for anything forwarded onwards.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct MsgFlags(u32);

impl MsgFlags {
    /// The message ends with a CRC-32C checksum.
    pub const CHECKSUM_PRESENT: u32 = 1 << 0;
    /// The sender will send another message without waiting for a reply.
    pub const MORE_TO_COME: u32 = 1 << 1;
    /// The client accepts multiple replies (exhaust cursors / streaming hello).
    pub const EXHAUST_ALLOWED: u32 = 1 << 16;

    const REQUIRED_MASK: u32 = 0x0000_ffff;
    const KNOWN: u32 = Self::CHECKSUM_PRESENT | Self::MORE_TO_COME | Self::EXHAUST_ALLOWED;

    /// Flags from their wire value, refusing unknown required bits.
    pub fn from_bits(bits: u32) -> Result<Self, WireError> {
        let unknown_required = bits & Self::REQUIRED_MASK & !Self::KNOWN;
        if unknown_required != 0 {
            return Err(WireError::UnknownFlags {
                op: "OP_MSG",
                bits: unknown_required,
            });
        }
        Ok(MsgFlags(bits))
    }

    /// The wire value.
    pub const fn bits(self) -> u32 {
        self.0
    }

    /// Only the bits tenantgate understands.
    pub const fn known(self) -> Self {
        MsgFlags(self.0 & Self::KNOWN)
    }

    /// `checksumPresent`.
    pub const fn checksum_present(self) -> bool {
        self.0 & Self::CHECKSUM_PRESENT != 0
    }

    /// `moreToCome`.
    pub const fn more_to_come(self) -> bool {
        self.0 & Self::MORE_TO_COME != 0
    }

    /// `exhaustAllowed`.
    pub const fn exhaust_allowed(self) -> bool {
        self.0 & Self::EXHAUST_ALLOWED != 0
    }

    /// These flags with `bit` set or cleared.
    pub const fn with(self, bit: u32, on: bool) -> Self {
        if on {
            MsgFlags(self.0 | bit)
        } else {
            MsgFlags(self.0 & !bit)
        }
    }
}

/// A kind 1 section: documents under an identifier, standing in for a body array field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocumentSequence {
    /// The body field the documents belong to (`documents`, `updates`, `deletes`…).
    pub identifier: String,
    /// The documents, each sharing the frame's buffer.
    pub documents: Vec<RawDoc>,
}

impl DocumentSequence {
    fn encoded_len(&self) -> usize {
        4 + self.identifier.len() + 1 + self.documents.iter().map(RawDoc::len).sum::<usize>()
    }
}

/// One OP_MSG section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Section {
    /// Kind 0: the body document.
    Body(RawDoc),
    /// Kind 1: a document sequence.
    Sequence(DocumentSequence),
}

/// A borrowed view of one section, in wire order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SectionRef<'a> {
    /// Kind 0: the body document.
    Body(&'a RawDoc),
    /// Kind 1: a document sequence.
    Sequence(&'a DocumentSequence),
}

/// An OP_MSG: exactly one body, any number of document sequences, and where the body stood
/// among them on the wire (so an unchanged message re-encodes byte for byte).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpMsg {
    flags: MsgFlags,
    body: RawDoc,
    sequences: Vec<DocumentSequence>,
    /// How many sequences preceded the body on the wire (drivers put the body first: 0).
    body_position: usize,
}

impl OpMsg {
    /// A message with only a body and no flags.
    pub fn new(body: RawDoc) -> Self {
        OpMsg {
            flags: MsgFlags::default(),
            body,
            sequences: Vec::new(),
            body_position: 0,
        }
    }

    /// A message from explicit sections in wire order, which must contain exactly one body.
    pub fn from_sections(flags: MsgFlags, sections: Vec<Section>) -> Result<Self, WireError> {
        let flags = MsgFlags::from_bits(flags.bits())?;
        let mut body = None;
        let mut bodies = 0;
        let mut body_position = 0;
        let mut sequences = Vec::new();
        for section in sections {
            match section {
                Section::Body(doc) => {
                    bodies += 1;
                    body_position = sequences.len();
                    body = Some(doc);
                }
                Section::Sequence(seq) => sequences.push(seq),
            }
        }
        match body {
            Some(body) if bodies == 1 => Ok(OpMsg {
                flags,
                body,
                sequences,
                body_position,
            }),
            _ => Err(WireError::BodySectionCount(bodies)),
        }
    }

    /// A message with a body followed by document sequences, as the proxy forwards a rewritten
    /// command: [`OpMsg::from_sections`] without the intermediate section list.
    pub fn from_parts(
        flags: MsgFlags,
        body: RawDoc,
        sequences: Vec<DocumentSequence>,
    ) -> Result<Self, WireError> {
        Ok(OpMsg {
            flags: MsgFlags::from_bits(flags.bits())?,
            body,
            sequences,
            body_position: 0,
        })
    }

    /// Adds a document sequence after the existing sections.
    pub fn with_sequence(mut self, identifier: impl Into<String>, documents: Vec<RawDoc>) -> Self {
        self.sequences.push(DocumentSequence {
            identifier: identifier.into(),
            documents,
        });
        self
    }

    /// The flag bits.
    pub fn flags(&self) -> MsgFlags {
        self.flags
    }

    /// Replaces the flag bits (unknown required bits are refused).
    pub fn set_flags(&mut self, flags: MsgFlags) -> Result<(), WireError> {
        self.flags = MsgFlags::from_bits(flags.bits())?;
        Ok(())
    }

    /// The body document.
    pub fn body(&self) -> &RawDoc {
        &self.body
    }

    /// Replaces the body document, keeping the sections' order.
    pub fn set_body(&mut self, body: RawDoc) {
        self.body = body;
    }

    /// The command name: the body's first key.
    pub fn command_name(&self) -> Option<&str> {
        self.body.first_key()
    }

    /// The target database: the body's `$db` string.
    pub fn database(&self) -> Option<&str> {
        self.body.get_str("$db")
    }

    /// All sections in wire order.
    pub fn sections(&self) -> impl Iterator<Item = SectionRef<'_>> {
        let (before, after) = self
            .sequences
            .split_at(self.body_position.min(self.sequences.len()));
        before
            .iter()
            .map(SectionRef::Sequence)
            .chain(std::iter::once(SectionRef::Body(&self.body)))
            .chain(after.iter().map(SectionRef::Sequence))
    }

    /// The document sequences in wire order.
    pub fn sequences(&self) -> &[DocumentSequence] {
        &self.sequences
    }

    /// Mutable access to the document sequences, for rewrites.
    pub fn sequences_mut(&mut self) -> &mut Vec<DocumentSequence> {
        &mut self.sequences
    }

    /// Removes every document sequence, returning them (the body stays).
    pub fn take_sequences(&mut self) -> Vec<DocumentSequence> {
        self.body_position = 0;
        std::mem::take(&mut self.sequences)
    }

    /// The first sequence with this identifier.
    pub fn sequence(&self, identifier: &str) -> Option<&DocumentSequence> {
        self.sequences.iter().find(|s| s.identifier == identifier)
    }

    /// Bytes after the header: flags, sections and (if flagged) the checksum.
    pub(crate) fn encoded_len(&self) -> usize {
        let sections: usize = 1
            + self.body.len()
            + self
                .sequences
                .iter()
                .map(|s| 1 + s.encoded_len())
                .sum::<usize>();
        4 + sections + if self.flags.checksum_present() { 4 } else { 0 }
    }

    /// Writes flags and sections; the caller appends the checksum over header and payload.
    pub(crate) fn write_payload(&self, dst: &mut impl BufMut) {
        dst.put_u32_le(self.flags.bits());
        for section in self.sections() {
            match section {
                SectionRef::Body(doc) => {
                    dst.put_u8(0);
                    dst.put_slice(doc.as_bytes());
                }
                SectionRef::Sequence(seq) => {
                    dst.put_u8(1);
                    // encoded_len is bounded by the message size, checked by the encoder.
                    dst.put_i32_le(seq.encoded_len() as i32);
                    dst.put_slice(seq.identifier.as_bytes());
                    dst.put_u8(0);
                    for doc in &seq.documents {
                        dst.put_slice(doc.as_bytes());
                    }
                }
            }
        }
    }

    /// Decodes a whole OP_MSG frame (header included), verifying the checksum when present.
    pub(crate) fn decode(frame: &Bytes, limits: &Limits) -> Result<Self, WireError> {
        let mut payload = frame.slice(HEADER_LEN.min(frame.len())..);
        let mut head = Reader::new(payload.clone());
        let flags = MsgFlags::from_bits(head.u32("OP_MSG flagBits")?)?;
        if flags.checksum_present() {
            if payload.len() < 8 {
                return Err(WireError::Truncated {
                    what: "OP_MSG checksum",
                });
            }
            let split = frame.len() - 4;
            let tail = &frame[split..];
            let declared = u32::from_le_bytes([tail[0], tail[1], tail[2], tail[3]]);
            let computed = crc32c::crc32c(&frame[..split]);
            if declared != computed {
                return Err(WireError::ChecksumMismatch { declared, computed });
            }
            payload.truncate(payload.len() - 4);
        }
        let mut r = Reader::new(payload);
        r.u32("OP_MSG flagBits")?;
        let mut sections = Vec::with_capacity(2);
        while r.remaining() > 0 {
            match r.u8("OP_MSG section kind")? {
                0 => sections.push(Section::Body(r.document("OP_MSG body", limits)?)),
                1 => sections.push(Section::Sequence(decode_sequence(&mut r, limits)?)),
                kind => return Err(WireError::UnknownSectionKind(kind)),
            }
        }
        OpMsg::from_sections(flags, sections)
    }
}

fn decode_sequence(r: &mut Reader, limits: &Limits) -> Result<DocumentSequence, WireError> {
    let start = r.position();
    let size = r.i32("OP_MSG document sequence size")?;
    let size = usize::try_from(size).map_err(|_| WireError::Truncated {
        what: "OP_MSG document sequence",
    })?;
    // The size counts itself; it must cover at least the 4 size bytes and an empty identifier.
    if size < 5 || size - 4 > r.remaining() {
        return Err(WireError::Truncated {
            what: "OP_MSG document sequence",
        });
    }
    let mut seq = Reader::new(r.bytes(size - 4, "OP_MSG document sequence")?);
    let identifier = seq.cstring("OP_MSG document sequence identifier")?;
    let mut documents = Vec::new();
    while seq.remaining() > 0 {
        documents.push(seq.document("OP_MSG document sequence", limits)?);
    }
    debug_assert_eq!(r.position(), start + size);
    Ok(DocumentSequence {
        identifier,
        documents,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn required_flag_bits_are_refused_optional_ones_kept() {
        assert!(MsgFlags::from_bits(1 << 2).is_err());
        assert!(MsgFlags::from_bits(1 << 15).is_err());
        let optional = MsgFlags::from_bits(1 << 20 | MsgFlags::EXHAUST_ALLOWED)
            .expect("optional bits are ignored");
        assert!(optional.exhaust_allowed());
        assert_eq!(optional.known().bits(), MsgFlags::EXHAUST_ALLOWED);
    }

    #[test]
    fn exactly_one_body_is_required() {
        assert_eq!(
            OpMsg::from_sections(MsgFlags::default(), vec![]),
            Err(WireError::BodySectionCount(0))
        );
        let body = RawDoc::from_buf(bson::rawdoc! { "ping": 1 }).expect("valid");
        let two = vec![Section::Body(body.clone()), Section::Body(body.clone())];
        assert_eq!(
            OpMsg::from_sections(MsgFlags::default(), two),
            Err(WireError::BodySectionCount(2))
        );
    }

    #[test]
    fn keeps_the_body_position_among_sequences() {
        let body = RawDoc::from_buf(bson::rawdoc! { "insert": "c" }).expect("valid");
        let seq = |id: &str| {
            Section::Sequence(DocumentSequence {
                identifier: id.into(),
                documents: vec![],
            })
        };
        let msg = OpMsg::from_sections(
            MsgFlags::default(),
            vec![seq("a"), Section::Body(body), seq("b")],
        )
        .expect("one body");
        let order: Vec<String> = msg
            .sections()
            .map(|s| match s {
                SectionRef::Body(_) => "body".to_owned(),
                SectionRef::Sequence(q) => q.identifier.clone(),
            })
            .collect();
        assert_eq!(order, ["a", "body", "b"]);
    }
}
