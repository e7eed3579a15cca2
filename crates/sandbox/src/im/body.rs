//! The `MessageBody` of a stored message, as pushes, history (cmd 301) and
//! the inbox (cmd 203) give it out: shared by sends (cmd 100) and the
//! messages `/_sandbox/inbound` makes.

use tiktok_dm_proto::ids::Uid;
use tiktok_dm_proto::schema::{ExtendedEntry, MediaInfo, MediaVariant, MessageBody};

use crate::http::Addressed;
use crate::seed::Conversation;

/// Where a stored message sits and who sent it.
pub(crate) struct Placed<'a> {
    pub(crate) conversation: &'a Conversation,
    pub(crate) sender: Uid,
    pub(crate) client_message_id: &'a str,
    pub(crate) server_message_id: i64,
    /// Its `index_in_conversation`.
    pub(crate) index: i64,
    /// When it was stored (Unix ms).
    pub(crate) now: u64,
}

/// The fields every stored message has; the caller sets its type and content.
pub(crate) fn message_body(placed: &Placed<'_>) -> MessageBody {
    let conversation = placed.conversation;
    MessageBody {
        conversation_id: Some(conversation.conversation_id.as_str().into()),
        conversation_type: Some(1),
        server_message_id: Some(placed.server_message_id),
        index_in_conversation: Some(placed.index),
        conversation_short_id: Some(conversation.conversation_short_id.get()),
        sender: Some(placed.sender.get()),
        ext: vec![
            ExtendedEntry::new("s:client_message_id", placed.client_message_id),
            ExtendedEntry::new("im_client_send_msg_time", placed.now.to_string()),
        ],
        create_time: Some(placed.now as i64),
        // The history cursor the working client pages with: this message's
        // own index, so the next page (strictly older) starts after it.
        pre_conversation_index: Some(placed.index),
        ..MessageBody::default()
    }
}

/// A stored image as a received `private_image` names it.
pub(crate) struct MediaRef<'a> {
    pub(crate) path: &'a str,
    pub(crate) decrypt_key: &'a str,
    pub(crate) width: u32,
    pub(crate) height: u32,
}

/// The media block of a received private image: its path and key, and the
/// URL of the encrypted blob on this sandbox (`/im/media/{path}`, fetched
/// with a participant's session cookie), in the scheme and host the request
/// that made the message was addressed to.
pub(crate) fn media_info(host: &Addressed, media: &MediaRef<'_>) -> MediaInfo {
    let url = format!(
        "{}://{}/im/media/{}",
        host.scheme(),
        host.host,
        crate::upload::escape_path(media.path)
    );
    MediaInfo {
        path: Some(media.path.into()),
        decrypt_key: Some(media.decrypt_key.into()),
        variants: vec![MediaVariant {
            label: Some(b"full".to_vec().into()),
            urls: vec![url.into()],
            width: Some(i64::from(media.width)),
            height: Some(i64::from(media.height)),
            ..MediaVariant::default()
        }],
        ..MediaInfo::default()
    }
}
