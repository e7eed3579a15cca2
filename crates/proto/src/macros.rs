//! The `message!` macro: declares a protobuf message the way a `.proto` file would,
//! and generates the struct, its [`Message`](crate::wire::Message) impl and its
//! JSON view. Fields must be listed in ascending field-number order, because the
//! encoder writes them in declaration order (a unit test checks every message).

/// Declares a message. Each field is `NUMBER => name: optional|repeated KIND`,
/// where KIND is one of the kinds in [`crate::wire`].
macro_rules! message {
    (
        $(#[$meta:meta])*
        pub struct $name:ident {
            $(
                $(#[$fmeta:meta])*
                $num:literal => $field:ident : $card:ident $kind:ty
            ),* $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
        pub struct $name {
            $(
                $(#[$fmeta])*
                #[doc = concat!("Field ", stringify!($num), ".")]
                #[serde(skip_serializing_if = "crate::wire::IsAbsent::is_absent")]
                pub $field: message!(@ty $card $kind),
            )*
            /// Fields this schema does not know, kept so re-encoding is lossless.
            #[serde(rename = "unknown", skip_serializing_if = "crate::wire::IsAbsent::is_absent")]
            pub unknown_fields: crate::wire::UnknownFields,
        }

        impl $name {
            /// Field numbers in declaration order (checked ascending by a test).
            #[allow(dead_code)]
            pub(crate) const FIELD_NUMBERS: &'static [u32] = &[$($num),*];
        }

        impl crate::wire::Message for $name {
            fn merge_field(
                &mut self,
                number: u32,
                wire: crate::wire::WireType,
                r: &mut crate::wire::Reader<'_>,
            ) -> Result<bool, crate::error::DecodeError> {
                match number {
                    $($num => {
                        let packed = crate::wire::$card::packed::<$kind>(wire);
                        let known = crate::wire::$card::merge::<$kind>(&mut self.$field, wire, r)?;
                        if known && packed {
                            self.unknown_fields.mark_packed($num);
                        }
                        Ok(known)
                    })*
                    _ => {
                        let _ = (wire, r);
                        Ok(false)
                    }
                }
            }

            fn unknown_fields(&self) -> &crate::wire::UnknownFields {
                &self.unknown_fields
            }

            fn unknown_fields_mut(&mut self) -> &mut crate::wire::UnknownFields {
                &mut self.unknown_fields
            }

            fn encode_raw(&self, out: &mut Vec<u8>) {
                let next = 0usize;
                $(
                    let next = self.unknown_fields.encode_before(next, $num, out);
                    crate::wire::$card::encode::<$kind>($num, &self.$field, self.unknown_fields.is_packed($num), out);
                )*
                self.unknown_fields.encode_rest(next, out);
            }

            fn encoded_len(&self) -> usize {
                0 $(+ crate::wire::$card::len::<$kind>($num, &self.$field, self.unknown_fields.is_packed($num)))*
                    + self.unknown_fields.encoded_len()
            }
        }
    };
    (@ty optional $kind:ty) => { Option<<$kind as crate::wire::Kind>::Value> };
    (@ty repeated $kind:ty) => { Vec<<$kind as crate::wire::Kind>::Value> };
}
