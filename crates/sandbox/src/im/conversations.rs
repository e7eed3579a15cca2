//! The inbox (cmd 203) and conversation info (cmds 608 and 610), built from
//! the seed's conversations and, for the inbox's last-message rows, the
//! messages accepted so far; an account sees only the conversations it takes
//! part in.

use tiktok_dm_proto::ids::Uid;
use tiktok_dm_proto::schema::{
    ConversationInfoV2, GetConversationInfoListV2ResponseBody, GetConversationInfoV2ResponseBody,
    MessagesPerUserInitV2ResponseBody, Participant, ParticipantsPage, RequestBody, ResponseBody,
};

use super::{Action, Envelope};
use crate::seed::Conversation;

/// cmd 203: every conversation of the account, on one page, and before them
/// (field 1) the last message of each that has one, in the `MessageBody`
/// shape of pushes (PROTOCOL.md 2.5: a populated answer carries them there;
/// the working client reads a conversation's short id from these rows).
pub(super) fn inbox(env: &Envelope<'_>) -> Action {
    let uid = env.account.uid;
    let mine: Vec<&Conversation> = env
        .shared
        .seed
        .conversations
        .iter()
        .filter(|c| c.conversation_id.peer_of(uid).is_some())
        .collect();
    let messages = {
        let state = env.shared.lock();
        mine.iter()
            .filter_map(|c| {
                let id = c.conversation_id.as_str();
                state
                    .messages
                    .iter()
                    .rev()
                    .find(|m| m.received.conversation_id == id)
                    .map(|m| m.body.clone())
            })
            .collect()
    };
    let init = MessagesPerUserInitV2ResponseBody {
        messages,
        conversations: mine.iter().map(|c| conversation_info(c, uid)).collect(),
        per_user_cursor: Some(0),
        next_cursor: Some(0),
        has_more: Some(false),
        ..MessagesPerUserInitV2ResponseBody::default()
    };
    env.ok(ResponseBody {
        messages_per_user_init_v2_body: Some(init),
        ..ResponseBody::default()
    })
}

/// cmd 610: the asked conversations the account takes part in.
pub(super) fn info_list(env: &Envelope<'_>, body: &RequestBody) -> Action {
    let uid = env.account.uid;
    let asked = body
        .get_conversation_info_list_v2_body
        .as_ref()
        .map(|b| &b.conversation_info_list[..]);
    let found = asked
        .unwrap_or_default()
        .iter()
        .filter_map(|q| env.shared.conversation(q.conversation_id.as_deref()?))
        .filter(|c| c.conversation_id.peer_of(uid).is_some())
        .map(|c| conversation_info(c, uid))
        .collect();
    let list = GetConversationInfoListV2ResponseBody {
        conversation_info_list: found,
        ..Default::default()
    };
    env.ok(ResponseBody {
        get_conversation_info_list_v2_body: Some(list),
        ..ResponseBody::default()
    })
}

/// cmd 608: one conversation, or 3 when it is unknown or not the account's.
pub(super) fn info(env: &Envelope<'_>, body: &RequestBody) -> Action {
    let uid = env.account.uid;
    let id = body
        .get_conversation_info_v2_body
        .as_ref()
        .and_then(|b| b.conversation_id.as_deref());
    match id
        .and_then(|id| env.shared.conversation(id))
        .filter(|c| c.conversation_id.peer_of(uid).is_some())
    {
        Some(c) => {
            let info = GetConversationInfoV2ResponseBody {
                conversation_info: Some(conversation_info(c, uid)),
                ..Default::default()
            };
            env.ok(ResponseBody {
                get_conversation_info_v2_body: Some(info),
                ..ResponseBody::default()
            })
        }
        None => env.not_found(),
    }
}

fn conversation_info(c: &Conversation, own: Uid) -> ConversationInfoV2 {
    let participants = c
        .conversation_id
        .participants()
        .map(|(a, b)| vec![a, b])
        .unwrap_or_default()
        .into_iter()
        .map(|uid| Participant {
            user_id: Some(uid.get()),
            ..Participant::default()
        })
        .collect();
    ConversationInfoV2 {
        conversation_id: Some(c.conversation_id.as_str().into()),
        conversation_short_id: Some(c.conversation_short_id.get()),
        conversation_type: Some(1),
        ticket: Some("deprecated".into()),
        first_page_participants: Some(ParticipantsPage {
            participants,
            has_more: Some(false),
            ..ParticipantsPage::default()
        }),
        participants_count: Some(2),
        is_participant: Some(c.conversation_id.peer_of(own).is_some()),
        inbox_type: Some(c.inbox_type),
        ..ConversationInfoV2::default()
    }
}
