//! The protobuf wire layer: varints, field keys, the [`Message`] trait, and the
//! field kinds the schema macro builds messages from.
//!
//! We do not use prost here because the captures demand three things prost cannot
//! give: explicit presence for every scalar (TikTok writes `token = ""` and
//! `inbox_type = 0`), map entries kept in insertion order, and unknown fields kept
//! *in place* so that decoding and re-encoding a capture gives back its exact bytes.
//! Messages are encoded in ascending field-number order, with unknown fields merged
//! back in by number, which is the order every encoder we have captures from uses.

use serde::Serialize;
use serde::ser::SerializeMap;

use crate::error::DecodeError;

/// The four wire types protobuf still uses (groups, 3 and 4, are rejected).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WireType {
    /// Base-128 varint.
    Varint = 0,
    /// Eight little-endian bytes.
    Fixed64 = 1,
    /// A varint length followed by that many bytes.
    LengthDelimited = 2,
    /// Four little-endian bytes.
    Fixed32 = 5,
}

impl WireType {
    fn from_key(key: u64) -> Result<Self, DecodeError> {
        match key & 7 {
            0 => Ok(Self::Varint),
            1 => Ok(Self::Fixed64),
            2 => Ok(Self::LengthDelimited),
            5 => Ok(Self::Fixed32),
            other => Err(DecodeError::UnsupportedWireType(other as u8)),
        }
    }
}

/// A cursor over an input buffer. Every read is bounds-checked, so malformed input
/// becomes a [`DecodeError`], never a panic.
#[derive(Debug)]
pub struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    /// Reads from `buf`.
    pub fn new(buf: &'a [u8]) -> Self {
        Self { buf }
    }

    /// Whether all input has been read.
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// Reads one varint (at most ten bytes).
    ///
    /// # Errors
    /// [`DecodeError::Truncated`] when the input ends inside the varint,
    /// [`DecodeError::VarintOverflow`] when it is longer than ten bytes.
    pub fn varint(&mut self) -> Result<u64, DecodeError> {
        let mut value: u64 = 0;
        for (i, byte) in self.buf.iter().enumerate().take(10) {
            value |= u64::from(byte & 0x7f) << (7 * i);
            if byte & 0x80 == 0 {
                self.buf = &self.buf[i + 1..];
                return Ok(value);
            }
        }
        if self.buf.len() < 10 {
            Err(DecodeError::Truncated)
        } else {
            Err(DecodeError::VarintOverflow)
        }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.buf.len() < n {
            return Err(DecodeError::Truncated);
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }

    /// Reads a length-delimited value.
    ///
    /// # Errors
    /// [`DecodeError::Truncated`] when the declared length runs past the input.
    pub fn length_delimited(&mut self) -> Result<&'a [u8], DecodeError> {
        let len = self.varint()?;
        let len = usize::try_from(len).map_err(|_| DecodeError::Truncated)?;
        self.take(len)
    }

    fn fixed64(&mut self) -> Result<u64, DecodeError> {
        let bytes = self.take(8)?;
        let mut arr = [0u8; 8];
        arr.copy_from_slice(bytes);
        Ok(u64::from_le_bytes(arr))
    }

    fn fixed32(&mut self) -> Result<u32, DecodeError> {
        let bytes = self.take(4)?;
        let mut arr = [0u8; 4];
        arr.copy_from_slice(bytes);
        Ok(u32::from_le_bytes(arr))
    }

    /// Reads a field key: the field number and the wire type.
    ///
    /// # Errors
    /// Field number zero, numbers above 2^29-1 and group wire types are invalid.
    pub fn key(&mut self) -> Result<(u32, WireType), DecodeError> {
        let key = self.varint()?;
        let wire = WireType::from_key(key)?;
        let number = key >> 3;
        if number == 0 || number > 0x1fff_ffff {
            return Err(DecodeError::InvalidFieldNumber(number));
        }
        Ok((number as u32, wire))
    }

    /// Skips the value of a field whose key has been read.
    ///
    /// # Errors
    /// [`DecodeError::Truncated`] when the value runs past the input.
    pub fn skip(&mut self, wire: WireType) -> Result<(), DecodeError> {
        match wire {
            WireType::Varint => self.varint().map(drop),
            WireType::Fixed64 => self.take(8).map(drop),
            WireType::LengthDelimited => self.length_delimited().map(drop),
            WireType::Fixed32 => self.take(4).map(drop),
        }
    }

    /// How many bytes are left.
    pub fn remaining(&self) -> usize {
        self.buf.len()
    }

    /// Reads the value of a field this message does not know, keeping its bytes.
    fn unknown_value(&mut self, wire: WireType) -> Result<UnknownValue, DecodeError> {
        Ok(match wire {
            WireType::Varint => UnknownValue::Varint(self.varint()?),
            WireType::Fixed64 => UnknownValue::Fixed64(self.fixed64()?),
            WireType::LengthDelimited => UnknownValue::Bytes(self.length_delimited()?.to_vec()),
            WireType::Fixed32 => UnknownValue::Fixed32(self.fixed32()?),
        })
    }
}

/// Appends `value` as a varint.
pub fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// Writes `value` as a varint into `buf`, returning the number of bytes used.
fn write_varint_into(buf: &mut [u8; 10], mut value: u64) -> usize {
    let mut i = 0;
    while value >= 0x80 {
        buf[i] = (value as u8) | 0x80;
        value >>= 7;
        i += 1;
    }
    buf[i] = value as u8;
    i + 1
}

/// The number of bytes `value` takes as a varint.
pub fn varint_len(value: u64) -> usize {
    // 1 + floor(bits / 7), with zero taking one byte.
    let bits = 64 - (value | 1).leading_zeros() as usize;
    bits.div_ceil(7)
}

fn put_key(out: &mut Vec<u8>, number: u32, wire: WireType) {
    put_varint(out, (u64::from(number) << 3) | wire as u64);
}

fn key_len(number: u32) -> usize {
    varint_len(u64::from(number) << 3)
}

/// A field value kept verbatim because the schema does not know the field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UnknownValue {
    /// A varint value.
    Varint(u64),
    /// A 64-bit fixed value.
    Fixed64(u64),
    /// A length-delimited value.
    Bytes(Vec<u8>),
    /// A 32-bit fixed value.
    Fixed32(u32),
}

/// One unknown field, in the order it was read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnknownField {
    /// The field number.
    pub number: u32,
    /// The value as it was on the wire.
    pub value: UnknownValue,
}

impl UnknownField {
    fn encode(&self, out: &mut Vec<u8>) {
        match &self.value {
            UnknownValue::Varint(v) => {
                put_key(out, self.number, WireType::Varint);
                put_varint(out, *v);
            }
            UnknownValue::Fixed64(v) => {
                put_key(out, self.number, WireType::Fixed64);
                out.extend_from_slice(&v.to_le_bytes());
            }
            UnknownValue::Bytes(b) => {
                put_key(out, self.number, WireType::LengthDelimited);
                put_varint(out, b.len() as u64);
                out.extend_from_slice(b);
            }
            UnknownValue::Fixed32(v) => {
                put_key(out, self.number, WireType::Fixed32);
                out.extend_from_slice(&v.to_le_bytes());
            }
        }
    }

    fn len(&self) -> usize {
        key_len(self.number)
            + match &self.value {
                UnknownValue::Varint(v) => varint_len(*v),
                UnknownValue::Fixed64(_) => 8,
                UnknownValue::Bytes(b) => varint_len(b.len() as u64) + b.len(),
                UnknownValue::Fixed32(_) => 4,
            }
    }
}

/// The unknown fields of one message, in the order they were read, and the
/// numbers of repeated scalar fields that arrived packed (so they are written
/// back packed and the bytes stay the same).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UnknownFields(pub Vec<UnknownField>, #[doc(hidden)] pub Vec<u32>);

impl UnknownFields {
    /// Records that repeated field `number` arrived packed.
    #[doc(hidden)]
    pub fn mark_packed(&mut self, number: u32) {
        if !self.1.contains(&number) {
            self.1.push(number);
        }
    }

    /// Whether repeated field `number` arrived packed.
    #[doc(hidden)]
    pub fn is_packed(&self, number: u32) -> bool {
        self.1.contains(&number)
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Writes the unknown fields from `next` on whose number is below `number`,
    /// and returns the index of the first one not written. The generated encoders
    /// call this before each known field so unknown fields land back in place.
    #[doc(hidden)]
    pub fn encode_before(&self, next: usize, number: u32, out: &mut Vec<u8>) -> usize {
        let mut i = next;
        while let Some(field) = self.0.get(i) {
            if field.number >= number {
                break;
            }
            field.encode(out);
            i += 1;
        }
        i
    }

    /// Writes every unknown field from `next` on.
    #[doc(hidden)]
    pub fn encode_rest(&self, next: usize, out: &mut Vec<u8>) {
        for field in self.0.iter().skip(next) {
            field.encode(out);
        }
    }

    /// The encoded size of all unknown fields.
    #[doc(hidden)]
    pub fn encoded_len(&self) -> usize {
        self.0.iter().map(UnknownField::len).sum()
    }
}

impl Serialize for UnknownFields {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for field in &self.0 {
            let key = format!("f{}", field.number);
            match &field.value {
                UnknownValue::Varint(v) | UnknownValue::Fixed64(v) => {
                    map.serialize_entry(&key, v)?
                }
                UnknownValue::Fixed32(v) => map.serialize_entry(&key, v)?,
                UnknownValue::Bytes(b) => map.serialize_entry(&key, &Blob(b.clone()))?,
            }
        }
        map.end()
    }
}

/// Bytes that serialize to JSON as a UTF-8 string when they are printable text,
/// and as `{"base64": ...}` otherwise.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Blob(pub Vec<u8>);

impl std::ops::Deref for Blob {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.0
    }
}

impl From<Vec<u8>> for Blob {
    fn from(v: Vec<u8>) -> Self {
        Self(v)
    }
}

impl Serialize for Blob {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use base64::Engine as _;
        match std::str::from_utf8(&self.0) {
            Ok(text)
                if !text
                    .chars()
                    .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t')) =>
            {
                s.serialize_str(text)
            }
            _ => {
                let mut map = s.serialize_map(Some(1))?;
                map.serialize_entry(
                    "base64",
                    &base64::engine::general_purpose::STANDARD.encode(&self.0),
                )?;
                map.end()
            }
        }
    }
}

/// A protobuf message with explicit presence and unknown-field preservation.
pub trait Message: Default {
    /// Reads one known field. Returns `Ok(false)` when `number` is not a known
    /// field or arrives with an unexpected wire type, so the caller keeps it as an
    /// unknown field.
    #[doc(hidden)]
    fn merge_field(
        &mut self,
        number: u32,
        wire: WireType,
        r: &mut Reader<'_>,
    ) -> Result<bool, DecodeError>;
    /// The unknown fields, for re-encoding.
    fn unknown_fields(&self) -> &UnknownFields;
    #[doc(hidden)]
    fn unknown_fields_mut(&mut self) -> &mut UnknownFields;
    /// Writes the message's fields (without a length prefix).
    fn encode_raw(&self, out: &mut Vec<u8>);
    /// The size of [`Message::encode_raw`]'s output.
    fn encoded_len(&self) -> usize;

    /// Decodes a message from `bytes`.
    ///
    /// # Errors
    /// Any malformed input: truncation, bad wire types, invalid UTF-8 in a string.
    fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut msg = Self::default();
        msg.merge(bytes)?;
        Ok(msg)
    }

    /// Merges the fields in `bytes` into `self`.
    ///
    /// # Errors
    /// As [`Message::decode`].
    fn merge(&mut self, bytes: &[u8]) -> Result<(), DecodeError> {
        let mut r = Reader::new(bytes);
        while !r.is_empty() {
            let (number, wire) = r.key()?;
            if !self.merge_field(number, wire, &mut r)? {
                let value = r.unknown_value(wire)?;
                self.unknown_fields_mut()
                    .0
                    .push(UnknownField { number, value });
            }
        }
        Ok(())
    }

    /// Encodes the message into a new buffer. The buffer is not pre-sized with
    /// [`Message::encoded_len`]: that would walk the message twice, and letting
    /// the buffer grow is cheaper for the messages this protocol sends.
    fn encode_to_vec(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(512);
        self.encode_raw(&mut out);
        out
    }
}

/// How a field's value is read and written.
pub trait Kind {
    /// The Rust type holding one value.
    type Value;
    /// The wire type of one (unpacked) value.
    const WIRE: WireType;
    /// Reads one value whose key has already been read.
    ///
    /// # Errors
    /// Malformed input.
    fn read(r: &mut Reader<'_>) -> Result<Self::Value, DecodeError>;
    /// Merges one value into an existing one (messages merge, scalars replace).
    ///
    /// # Errors
    /// Malformed input.
    fn merge_into(slot: &mut Self::Value, r: &mut Reader<'_>) -> Result<(), DecodeError> {
        *slot = Self::read(r)?;
        Ok(())
    }
    /// Writes one value (without its key).
    fn write(value: &Self::Value, out: &mut Vec<u8>);
    /// The size of [`Kind::write`]'s output.
    fn len(value: &Self::Value) -> usize;
}

macro_rules! varint_kind {
    ($(#[$m:meta])* $name:ident, $t:ty, |$r:ident| $read:expr, |$v:ident| $write:expr) => {
        $(#[$m])*
        #[derive(Debug)]
        pub struct $name;
        impl Kind for $name {
            type Value = $t;
            const WIRE: WireType = WireType::Varint;
            fn read(r: &mut Reader<'_>) -> Result<$t, DecodeError> {
                let $r = r.varint()?;
                Ok($read)
            }
            fn write($v: &$t, out: &mut Vec<u8>) {
                put_varint(out, $write)
            }
            fn len($v: &$t) -> usize {
                varint_len($write)
            }
        }
    };
}

// Truncating casts are protobuf's own rules: an int32 is read from the low 32 bits
// of the varint and written sign-extended to 64 bits.
varint_kind!(/// `int32` (and open enums).
    Int32, i32, |v| v as i32, |v| *v as i64 as u64);
varint_kind!(/// `int64`.
    Int64, i64, |v| v as i64, |v| *v as u64);
varint_kind!(/// `uint32`.
    UInt32, u32, |v| v as u32, |v| u64::from(*v));
varint_kind!(/// `uint64`.
    UInt64, u64, |v| v, |v| *v);
varint_kind!(/// `bool`.
    Bool, bool, |v| v != 0, |v| u64::from(*v));

/// The string type of `string` fields: up to 24 bytes are stored inline, so
/// the many short keys and values of the context headers need no allocation.
pub type PbString = compact_str::CompactString;

/// `string`: must be valid UTF-8.
#[derive(Debug)]
pub struct Str;
impl Kind for Str {
    type Value = PbString;
    const WIRE: WireType = WireType::LengthDelimited;
    fn read(r: &mut Reader<'_>) -> Result<PbString, DecodeError> {
        let bytes = r.length_delimited()?;
        let text = std::str::from_utf8(bytes).map_err(|_| DecodeError::InvalidUtf8)?;
        Ok(PbString::new(text))
    }
    fn write(value: &PbString, out: &mut Vec<u8>) {
        put_varint(out, value.len() as u64);
        out.extend_from_slice(value.as_bytes());
    }
    fn len(value: &PbString) -> usize {
        varint_len(value.len() as u64) + value.len()
    }
}

/// `bytes`.
#[derive(Debug)]
pub struct Bytes;
impl Kind for Bytes {
    type Value = Blob;
    const WIRE: WireType = WireType::LengthDelimited;
    fn read(r: &mut Reader<'_>) -> Result<Blob, DecodeError> {
        Ok(Blob(r.length_delimited()?.to_vec()))
    }
    fn write(value: &Blob, out: &mut Vec<u8>) {
        put_varint(out, value.0.len() as u64);
        out.extend_from_slice(&value.0);
    }
    fn len(value: &Blob) -> usize {
        varint_len(value.0.len() as u64) + value.0.len()
    }
}

/// An embedded message.
#[derive(Debug)]
pub struct Msg<M>(std::marker::PhantomData<M>);
impl<M: Message> Kind for Msg<M> {
    type Value = M;
    const WIRE: WireType = WireType::LengthDelimited;
    fn read(r: &mut Reader<'_>) -> Result<M, DecodeError> {
        M::decode(r.length_delimited()?)
    }
    fn merge_into(slot: &mut M, r: &mut Reader<'_>) -> Result<(), DecodeError> {
        slot.merge(r.length_delimited()?)
    }
    /// One pass: reserve a one-byte length, write the message, then patch the
    /// length in, shifting the body only when it is 128 bytes or longer. This
    /// avoids computing nested lengths again at every level.
    fn write(value: &M, out: &mut Vec<u8>) {
        let start = out.len();
        out.push(0);
        value.encode_raw(out);
        let len = out.len() - start - 1;
        if len < 0x80 {
            out[start] = len as u8;
            return;
        }
        let mut prefix = [0u8; 10];
        let n = write_varint_into(&mut prefix, len as u64);
        out.resize(out.len() + n - 1, 0);
        out.copy_within(start + 1..start + 1 + len, start + n);
        out[start..start + n].copy_from_slice(&prefix[..n]);
    }
    fn len(value: &M) -> usize {
        let n = value.encoded_len();
        varint_len(n as u64) + n
    }
}

/// A singular field with explicit presence: `None` is not written, `Some(0)` is.
pub mod optional {
    use super::{DecodeError, Kind, Reader, WireType, key_len, put_key};

    /// Reads one occurrence; a repeated occurrence merges (messages) or replaces.
    ///
    /// # Errors
    /// Malformed input.
    pub fn merge<K: Kind>(
        slot: &mut Option<K::Value>,
        wire: WireType,
        r: &mut Reader<'_>,
    ) -> Result<bool, DecodeError>
    where
        K::Value: Default,
    {
        if wire != K::WIRE {
            return Ok(false);
        }
        K::merge_into(slot.get_or_insert_with(Default::default), r)?;
        Ok(true)
    }

    /// Singular fields are never packed.
    pub fn packed<K: Kind>(_wire: WireType) -> bool {
        false
    }

    /// Writes the field when present.
    pub fn encode<K: Kind>(number: u32, slot: &Option<K::Value>, _packed: bool, out: &mut Vec<u8>) {
        if let Some(value) = slot {
            put_key(out, number, K::WIRE);
            K::write(value, out);
        }
    }

    /// The encoded size of the field.
    pub fn len<K: Kind>(number: u32, slot: &Option<K::Value>, _packed: bool) -> usize {
        slot.as_ref().map_or(0, |v| key_len(number) + K::len(v))
    }
}

/// A repeated field, written unpacked (as proto2 and the captures do). Packed
/// input is accepted too.
pub mod repeated {
    use super::{DecodeError, Kind, Reader, WireType, key_len, put_key, put_varint, varint_len};

    /// Reads one occurrence (or a packed run of scalars).
    ///
    /// # Errors
    /// Malformed input.
    pub fn merge<K: Kind>(
        slot: &mut Vec<K::Value>,
        wire: WireType,
        r: &mut Reader<'_>,
    ) -> Result<bool, DecodeError> {
        if wire == K::WIRE {
            slot.push(K::read(r)?);
            Ok(true)
        } else if wire == WireType::LengthDelimited && K::WIRE != WireType::LengthDelimited {
            let mut packed = Reader::new(r.length_delimited()?);
            while !packed.is_empty() {
                slot.push(K::read(&mut packed)?);
            }
            Ok(true)
        } else {
            Ok(false)
        }
    }

    /// Whether an occurrence with this wire type is a packed run.
    pub fn packed<K: Kind>(wire: WireType) -> bool {
        wire == WireType::LengthDelimited && K::WIRE != WireType::LengthDelimited
    }

    /// Writes every element, each with its own key, or as one packed run when
    /// the field arrived packed (an empty run too: it was on the wire).
    pub fn encode<K: Kind>(number: u32, slot: &[K::Value], packed: bool, out: &mut Vec<u8>) {
        if packed {
            put_key(out, number, WireType::LengthDelimited);
            put_varint(out, slot.iter().map(K::len).sum::<usize>() as u64);
            for value in slot {
                K::write(value, out);
            }
            return;
        }
        for value in slot {
            put_key(out, number, K::WIRE);
            K::write(value, out);
        }
    }

    /// The encoded size of the field.
    pub fn len<K: Kind>(number: u32, slot: &[K::Value], packed: bool) -> usize {
        if packed {
            let payload: usize = slot.iter().map(K::len).sum();
            return key_len(number) + varint_len(payload as u64) + payload;
        }
        slot.iter().map(|v| key_len(number) + K::len(v)).sum()
    }
}

/// Used by the generated serde attributes to leave absent fields out of JSON.
#[doc(hidden)]
pub trait IsAbsent {
    fn is_absent(&self) -> bool;
}
impl<T> IsAbsent for Option<T> {
    fn is_absent(&self) -> bool {
        self.is_none()
    }
}
impl<T> IsAbsent for Vec<T> {
    fn is_absent(&self) -> bool {
        self.is_empty()
    }
}
impl IsAbsent for UnknownFields {
    fn is_absent(&self) -> bool {
        self.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varint_len_matches_the_encoding_for_boundary_values() {
        for v in [
            0u64,
            1,
            127,
            128,
            16383,
            16384,
            u64::from(u32::MAX),
            u64::MAX,
        ] {
            let mut out = Vec::new();
            put_varint(&mut out, v);
            assert_eq!(out.len(), varint_len(v), "value {v}");
            assert_eq!(Reader::new(&out).varint().unwrap(), v);
        }
    }

    #[test]
    fn a_varint_cut_short_is_truncated_and_an_overlong_one_overflows() {
        assert_eq!(
            Reader::new(&[0x80, 0x80]).varint(),
            Err(DecodeError::Truncated)
        );
        assert_eq!(
            Reader::new(&[0xff; 11]).varint(),
            Err(DecodeError::VarintOverflow)
        );
    }

    #[test]
    fn negative_int32_is_written_sign_extended_to_ten_bytes() {
        let mut out = Vec::new();
        Int32::write(&-1, &mut out);
        assert_eq!(out.len(), 10);
        assert_eq!(Int32::read(&mut Reader::new(&out)).unwrap(), -1);
    }

    #[test]
    fn group_wire_types_and_field_zero_are_rejected() {
        assert_eq!(
            Reader::new(&[0x0b]).key(),
            Err(DecodeError::UnsupportedWireType(3))
        );
        assert_eq!(
            Reader::new(&[0x00]).key(),
            Err(DecodeError::InvalidFieldNumber(0))
        );
    }
}
