//! Wire messages, declared field by field from PROTOCOL.md (sections 1.5, 2 and
//! Appendix A). Each message is a plain struct with `Option` fields (explicit
//! presence) and the unknown fields it was decoded with.
//!
//! Maps (`map<string,string>`) are declared as repeated [`ExtendedEntry`]
//! messages: that is their wire form, and it keeps their order.

mod conversation;
mod envelope;
mod frame;
mod media;
mod send;

pub use conversation::*;
pub use envelope::*;
pub use frame::*;
pub use media::*;
pub use send::*;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_message_declares_its_fields_in_ascending_order() {
        let all: &[(&str, &[u32])] = &[
            ("Frame", Frame::FIELD_NUMBERS),
            ("ExtendedEntry", ExtendedEntry::FIELD_NUMBERS),
            ("Request", Request::FIELD_NUMBERS),
            ("Response", Response::FIELD_NUMBERS),
            ("RequestBody", RequestBody::FIELD_NUMBERS),
            ("ResponseBody", ResponseBody::FIELD_NUMBERS),
            ("TokenInfo", TokenInfo::FIELD_NUMBERS),
            ("MsgTrace", MsgTrace::FIELD_NUMBERS),
            ("MsgTraceMetric", MsgTraceMetric::FIELD_NUMBERS),
            (
                "SendMessageRequestBody",
                SendMessageRequestBody::FIELD_NUMBERS,
            ),
            (
                "SendMessageResponseBody",
                SendMessageResponseBody::FIELD_NUMBERS,
            ),
            (
                "ReferencedMessageInfo",
                ReferencedMessageInfo::FIELD_NUMBERS,
            ),
            ("ReferenceInfo", ReferenceInfo::FIELD_NUMBERS),
            ("MessageBody", MessageBody::FIELD_NUMBERS),
            ("NewMessageNotify", NewMessageNotify::FIELD_NUMBERS),
            ("PropertyUpdateNotify", PropertyUpdateNotify::FIELD_NUMBERS),
            ("ConversationInfoV2", ConversationInfoV2::FIELD_NUMBERS),
            ("ParticipantsPage", ParticipantsPage::FIELD_NUMBERS),
            ("Participant", Participant::FIELD_NUMBERS),
            (
                "GetConversationInfoV2RequestBody",
                GetConversationInfoV2RequestBody::FIELD_NUMBERS,
            ),
            (
                "GetConversationInfoV2ResponseBody",
                GetConversationInfoV2ResponseBody::FIELD_NUMBERS,
            ),
            (
                "GetConversationInfoListV2RequestBody",
                GetConversationInfoListV2RequestBody::FIELD_NUMBERS,
            ),
            (
                "GetConversationInfoListV2ResponseBody",
                GetConversationInfoListV2ResponseBody::FIELD_NUMBERS,
            ),
            (
                "CreateConversationV2RequestBody",
                CreateConversationV2RequestBody::FIELD_NUMBERS,
            ),
            (
                "CreateConversationV2ResponseBody",
                CreateConversationV2ResponseBody::FIELD_NUMBERS,
            ),
            ("GetTicketRequestBody", GetTicketRequestBody::FIELD_NUMBERS),
            (
                "GetTicketResponseBody",
                GetTicketResponseBody::FIELD_NUMBERS,
            ),
            (
                "MessagesPerUserInitV2RequestBody",
                MessagesPerUserInitV2RequestBody::FIELD_NUMBERS,
            ),
            (
                "MessagesPerUserInitV2ResponseBody",
                MessagesPerUserInitV2ResponseBody::FIELD_NUMBERS,
            ),
            (
                "MessagesPerUserRequestBody",
                MessagesPerUserRequestBody::FIELD_NUMBERS,
            ),
            (
                "MessagesPerUserResponseBody",
                MessagesPerUserResponseBody::FIELD_NUMBERS,
            ),
            ("ClientAckRequestBody", ClientAckRequestBody::FIELD_NUMBERS),
            (
                "GetUploadTokenRequestBody",
                GetUploadTokenRequestBody::FIELD_NUMBERS,
            ),
            (
                "GetUploadTokenResponseBody",
                GetUploadTokenResponseBody::FIELD_NUMBERS,
            ),
            (
                "MediaUploadConfigResponseBody",
                MediaUploadConfigResponseBody::FIELD_NUMBERS,
            ),
            ("MediaUploadConfig", MediaUploadConfig::FIELD_NUMBERS),
            ("MessageContent", MessageContent::FIELD_NUMBERS),
            ("PrivateImageContent", PrivateImageContent::FIELD_NUMBERS),
            ("PrivateImageAsset", PrivateImageAsset::FIELD_NUMBERS),
            ("MediaSize", MediaSize::FIELD_NUMBERS),
            ("LocalizedText", LocalizedText::FIELD_NUMBERS),
            ("DisplayTexts", DisplayTexts::FIELD_NUMBERS),
            ("MediaMetadataList", MediaMetadataList::FIELD_NUMBERS),
            ("MediaMetadata", MediaMetadata::FIELD_NUMBERS),
            ("SendMediaRequest", SendMediaRequest::FIELD_NUMBERS),
            ("SendMediaFileInfo", SendMediaFileInfo::FIELD_NUMBERS),
            ("MediaInfo", MediaInfo::FIELD_NUMBERS),
            ("MediaVariant", MediaVariant::FIELD_NUMBERS),
            (
                "MessagesInConversationRequestBody",
                MessagesInConversationRequestBody::FIELD_NUMBERS,
            ),
            (
                "MessagesInConversationResponseBody",
                MessagesInConversationResponseBody::FIELD_NUMBERS,
            ),
        ];
        for (name, numbers) in all {
            assert!(
                numbers.windows(2).all(|w| w[0] < w[1]),
                "{name}: {numbers:?}"
            );
        }
    }
}
