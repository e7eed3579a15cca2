//! Typed identifiers, so a uid cannot be passed where a short id is expected.
//! Each parses from user input with a specific error message.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::DecodeError;

fn parse_positive_i64(raw: &str, what: &str) -> Result<i64, DecodeError> {
    let trimmed = raw.trim();
    if trimmed.is_empty() {
        return Err(DecodeError::Invalid(format!("{what} is missing")));
    }
    if !trimmed.bytes().all(|b| b.is_ascii_digit()) {
        return Err(DecodeError::Invalid(format!(
            "{what} must be a decimal number, got {trimmed:?}"
        )));
    }
    match trimmed.parse::<i64>() {
        Ok(v) if v > 0 => Ok(v),
        Ok(_) => Err(DecodeError::Invalid(format!(
            "{what} must be greater than zero"
        ))),
        Err(_) => Err(DecodeError::Invalid(format!(
            "{what} is too large for a 64-bit id"
        ))),
    }
}

macro_rules! numeric_id {
    ($(#[$m:meta])* $name:ident, $what:literal) => {
        $(#[$m])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(i64);

        impl $name {
            /// Wraps a positive wire value.
            ///
            /// # Errors
            /// Zero and negative values.
            pub fn new(value: i64) -> Result<Self, DecodeError> {
                if value > 0 {
                    Ok(Self(value))
                } else {
                    Err(DecodeError::Invalid(format!(concat!($what, " must be greater than zero, got {}"), value)))
                }
            }

            /// Parses a decimal string (surrounding whitespace is ignored).
            ///
            /// # Errors
            /// Empty, non-numeric, zero or out-of-range input, with a message naming the id.
            pub fn parse(raw: &str) -> Result<Self, DecodeError> {
                parse_positive_i64(raw, $what).map(Self)
            }

            /// The value as written on the wire.
            pub fn get(self) -> i64 {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}

numeric_id!(
    /// A TikTok user id.
    Uid,
    "user id"
);
numeric_id!(
    /// A conversation's server-issued short id (`conversation_short_id`).
    ConversationShortId,
    "conversation short id"
);
numeric_id!(
    /// A server-assigned message id.
    ServerMessageId,
    "server message id"
);

/// A conversation id: `<inbox>:<type>:<uid low>:<uid high>` for 1:1 chats, or a
/// group's short id as a decimal string (PROTOCOL.md 3.6).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ConversationId(String);

impl ConversationId {
    /// Parses and checks a conversation id: the 1:1 form
    /// `<inbox>:<type>:<uid>:<uid>` or a decimal group id, each part a
    /// decimal that fits in 64 bits (TikTok's ids are 64-bit numbers). Leading
    /// zeros are allowed and dropped, so the id kept is at most 83 characters
    /// however long the input was.
    ///
    /// # Errors
    /// An empty id, one that is neither form, or a part over `u64::MAX`.
    pub fn parse(raw: &str) -> Result<Self, DecodeError> {
        let id = raw.trim();
        if id.is_empty() {
            return Err(DecodeError::Invalid("conversation id is missing".into()));
        }
        let parts: Vec<&str> = id.split(':').collect();
        let numeric = |s: &&str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        if !matches!(parts.len(), 1 | 4) || !parts.iter().all(numeric) {
            return Err(DecodeError::Invalid(format!(
                "conversation id {} is not of the form 0:1:<uid>:<uid> (or a numeric group id)",
                shown(id)
            )));
        }
        let mut canonical = String::with_capacity(4 * 20 + 3);
        for (i, part) in parts.iter().enumerate() {
            let value = part.parse::<u64>().map_err(|_| {
                DecodeError::Invalid(format!(
                    "conversation id {}: {} is larger than a 64-bit id (at most {})",
                    shown(id),
                    shown(part),
                    u64::MAX
                ))
            })?;
            if i > 0 {
                canonical.push(':');
            }
            canonical.push_str(&value.to_string());
        }
        Ok(Self(canonical))
    }

    /// The 1:1 id TikTok uses for two users: uids in ascending order.
    pub fn one_to_one(a: Uid, b: Uid) -> Self {
        let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
        Self(format!("0:1:{lo}:{hi}"))
    }

    /// The two uids of a 1:1 id.
    pub fn participants(&self) -> Option<(Uid, Uid)> {
        let mut parts = self.0.split(':').skip(2);
        let a = Uid::parse(parts.next()?).ok()?;
        let b = Uid::parse(parts.next()?).ok()?;
        Some((a, b))
    }

    /// The other participant of a 1:1 conversation.
    pub fn peer_of(&self, own: Uid) -> Option<Uid> {
        let (a, b) = self.participants()?;
        if a == own {
            Some(b)
        } else if b == own {
            Some(a)
        } else {
            None
        }
    }

    /// The id as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ConversationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// User input as shown in an error: quoted, and cut after 64 characters so a
/// huge id does not make a huge message.
fn shown(raw: &str) -> String {
    const SHOWN: usize = 64;
    match raw.char_indices().nth(SHOWN) {
        Some((cut, _)) => format!("{:?}… ({} bytes)", &raw[..cut], raw.len()),
        None => format!("{raw:?}"),
    }
}

/// A client message id: a lowercase, hyphenated UUID v4 (PROTOCOL.md 3.5). It is
/// fixed when a message is accepted and reused for every retransmission, so the
/// server can de-duplicate.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ClientMessageId(String);

impl ClientMessageId {
    /// Builds a UUID v4 from 16 random bytes (the caller supplies randomness,
    /// because this crate does no I/O).
    pub fn from_random_bytes(mut bytes: [u8; 16]) -> Self {
        bytes[6] = (bytes[6] & 0x0f) | 0x40;
        bytes[8] = (bytes[8] & 0x3f) | 0x80;
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        Self(format!(
            "{}-{}-{}-{}-{}",
            &hex[0..8],
            &hex[8..12],
            &hex[12..16],
            &hex[16..20],
            &hex[20..32]
        ))
    }

    /// Accepts a UUID in canonical lowercase form.
    ///
    /// # Errors
    /// Anything that is not 8-4-4-4-12 lowercase hex.
    pub fn parse(raw: &str) -> Result<Self, DecodeError> {
        let groups: Vec<&str> = raw.split('-').collect();
        let lens = [8, 4, 4, 4, 12];
        let ok = groups.len() == 5
            && groups.iter().zip(lens).all(|(g, n)| {
                g.len() == n && g.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
            });
        if ok {
            Ok(Self(raw.to_owned()))
        } else {
            Err(DecodeError::Invalid(format!(
                "client message id {raw:?} is not a lowercase UUID"
            )))
        }
    }

    /// The id as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ClientMessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The web device id ("wid"): a decimal string, also `Request.device_id`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct DeviceId(String);

impl DeviceId {
    /// Parses a decimal device id.
    ///
    /// # Errors
    /// Empty or non-numeric input.
    pub fn parse(raw: &str) -> Result<Self, DecodeError> {
        let id = raw.trim();
        if id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()) {
            return Err(DecodeError::Invalid(format!(
                "web device id (wid) must be a decimal number, got {id:?}"
            )));
        }
        Ok(Self(id.to_owned()))
    }

    /// The id as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for DeviceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_to_one_ids_put_the_lower_uid_first() {
        let a = Uid::new(7664958044560016398).unwrap();
        let b = Uid::new(7366359960223482885).unwrap();
        let id = ConversationId::one_to_one(a, b);
        assert_eq!(id.as_str(), "0:1:7366359960223482885:7664958044560016398");
        assert_eq!(id.peer_of(a), Some(b));
        assert_eq!(ConversationId::parse(id.as_str()).unwrap(), id);
    }

    #[test]
    fn malformed_ids_are_rejected_with_a_message_naming_the_id() {
        let err = ConversationShortId::parse("12ab").unwrap_err().to_string();
        assert!(
            err.contains("conversation short id must be a decimal number"),
            "{err}"
        );
        let err = ConversationId::parse("").unwrap_err().to_string();
        assert_eq!(err, "conversation id is missing");
        assert!(ConversationId::parse("0:1:abc:2").is_err());
        assert!(
            ConversationShortId::parse("99999999999999999999")
                .unwrap_err()
                .to_string()
                .contains("too large")
        );
    }

    #[test]
    fn conversation_id_parts_must_each_fit_in_64_bits() {
        let max = ConversationId::parse("0:1:18446744073709551615:18446744073709551615").unwrap();
        assert_eq!(
            max.as_str(),
            "0:1:18446744073709551615:18446744073709551615"
        );
        for over in [
            "0:1:1:18446744073709551616",
            "0:1:99999999999999999999:2",
            "18446744073709551616",
        ] {
            let err = ConversationId::parse(over).unwrap_err().to_string();
            assert!(err.contains("is larger than a 64-bit id"), "{over}: {err}");
        }
        // Megabytes of digits are refused with a short message, not kept.
        let huge = format!("0:1:1:{}", "9".repeat(1 << 20));
        let err = ConversationId::parse(&huge).unwrap_err().to_string();
        assert!(err.len() < 400, "{} bytes", err.len());
        assert!(err.contains("1048582 bytes"), "{err}");
        // Leading zeros are dropped: the id kept is bounded whatever the input.
        let padded = format!("0:1:{}7:0008", "0".repeat(1 << 20));
        assert_eq!(ConversationId::parse(&padded).unwrap().as_str(), "0:1:7:8");
    }

    #[test]
    fn client_message_ids_are_uuid_v4() {
        let id = ClientMessageId::from_random_bytes([0xff; 16]);
        assert_eq!(id.as_str(), "ffffffff-ffff-4fff-bfff-ffffffffffff");
        assert_eq!(ClientMessageId::parse(id.as_str()).unwrap(), id);
        assert!(ClientMessageId::parse("5C822568-65d8-451b-a38a-a9e046268f5f").is_err());
    }
}
