//! The enums of PROTOCOL.md 2.6 as open enums: wire fields stay `i32` (so a value
//! no source names still round-trips), and these types give the known values names.

macro_rules! open_enum {
    ($(#[$m:meta])* $name:ident { $($(#[$vm:meta])* $variant:ident = $value:literal),* $(,)? }) => {
        $(#[$m])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum $name {
            $(
                $(#[$vm])*
                #[doc = concat!("Wire value ", stringify!($value), ".")]
                $variant,
            )*
            /// A value no source names.
            Other(i32),
        }

        impl From<i32> for $name {
            fn from(v: i32) -> Self {
                match v {
                    $($value => Self::$variant,)*
                    other => Self::Other(other),
                }
            }
        }

        impl From<$name> for i32 {
            fn from(v: $name) -> i32 {
                match v {
                    $($name::$variant => $value,)*
                    $name::Other(other) => other,
                }
            }
        }
    };
}

open_enum!(
    /// `Request.refer`.
    Refer { NotUsed = 0, Android = 1, Ios = 2, Pc = 3, Server = 4 }
);
open_enum!(
    /// `Request.auth_type` (Douyin web sends 4, the SDK's CERT_AUTH).
    AuthType { Unknown = 0, SessionAuth = 1, TokenAuth = 2, SubstituteAuth = 3, CertAuth = 4 }
);
open_enum!(
    /// `conversation_type` (the SDK takes `bizType & 15`).
    ConversationType { OneToOne = 1, Group = 2, Live = 3, Broadcast = 4 }
);
open_enum!(
    /// `SendMessageResponseBody.status`.
    SendMessageStatus {
        /// Sent.
        Succeed = 0,
        /// The sender is not in the conversation.
        UserNotInConversation = 1,
        /// The conversation failed a check.
        CheckConvNotPass = 2,
        /// The message failed a check (e.g. 7193).
        CheckMsgNotPass = 3,
        /// Held back: visible only to the sender.
        CheckMsgNotPassButSelfVisible = 4,
        /// Blocked by the receiver.
        UserHasBeenBlocked = 5,
    }
);
open_enum!(
    /// `message_type`. TikTok web text is 7, its images `private_image` 1802
    /// and videos `private_video` 1803 (PROTOCOL.md 10.3); Douyin images are 27.
    MessageType {
        NotUsed = 0, LegacySystem = 1, LegacyImage = 2, LegacyAudio = 3, LegacyVideo = 4, LegacyEmoji = 5,
        LegacyFile = 6, LegacyText = 7, LegacyUserCard = 8, LegacyToast = 9, LegacyGroupCard = 10,
        DouyinImage = 27, PrivateImage = 1802, PrivateVideo = 1803,
        Text = 10001, Sticker = 10002, Image = 10003, Video = 10004, File = 10005, Audio = 10006,
        Location = 10007, System = 10008, Link = 10009,
        Command = 50001, UpdateMessageExt = 50002, UpdateMinIndex = 50003, UserAction = 50004,
        ConversationDestroy = 50005, ModeChange = 50010, NotifyCommand = 60001,
    }
);
open_enum!(
    /// `SendMessageResponseBody.inboxPageCategory` (web).
    InboxPageCategory { Normal = 1, StrangerMessageRequest = 2, StrangerFiltered = 3 }
);
open_enum!(
    /// `SendMessageResponseBody.filter_reason` (web).
    FilterReason { Risk = 1, Keyword = 2 }
);
open_enum!(
    /// `GetTicketRequestBody.ticket_type`.
    TicketType { App = 1, Pc = 2, Web = 3 }
);
open_enum!(
    /// `MessagesInConversationRequestBody.direction`.
    MessageDirection { Older = 1, Newer = 2, FromLatest = 3 }
);
open_enum!(
    /// `NewMessageNotify.notify_type`.
    NewMessageNotifyType { PerUser = 1, PerConversation = 2 }
);
open_enum!(
    /// Media types.
    MediaType { Img = 1, Video = 2, Audio = 3, File = 4, Other10 = 10 }
);
open_enum!(
    /// `GetUploadTokenRequestBody.token_type`.
    MediaTokenType { Vsdk = 1, ImageX = 2, VsdkV5 = 3, ImageXV5 = 4 }
);
open_enum!(
    /// TikTok Android's IM upload scene.
    UploadScene { MultimediaMessaging = 1, StickerCreation = 2, PublicMultimediaMessaging = 3 }
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_values_round_trip_and_unknown_ones_are_kept() {
        assert_eq!(MessageType::from(7), MessageType::LegacyText);
        assert_eq!(i32::from(MessageType::LegacyText), 7);
        assert_eq!(
            SendMessageStatus::from(3),
            SendMessageStatus::CheckMsgNotPass
        );
        assert_eq!(MessageType::from(2703), MessageType::Other(2703));
        assert_eq!(i32::from(MessageType::Other(2703)), 2703);
    }
}
