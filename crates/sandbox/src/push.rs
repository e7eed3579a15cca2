//! The cmd-500 new-message push, sent to every socket of both participants
//! (PROTOCOL.md 1.10): a service-20032 frame with a gzip `Response`.

use tiktok_dm_proto::Message;
use tiktok_dm_proto::cmd;
use tiktok_dm_proto::codec::gzip;
use tiktok_dm_proto::ids::Uid;
use tiktok_dm_proto::schema::{
    ExtendedEntry, Frame, MessageBody, NewMessageNotify, Response, ResponseBody,
    SendMessageRequestBody,
};

use crate::state::{Outbound, ReceivedMessage, Shared, now_ms};

/// A push to deliver and who gets it. It is encoded (and compressed) only in
/// [`deliver`], after the sender's reply has been queued, to keep compression
/// off the reply's path.
#[derive(Debug)]
pub(crate) struct Push {
    response: Response,
    recipients: [Uid; 2],
}

/// Builds the echo push of an accepted message.
pub(crate) fn new_message_push(
    message: &ReceivedMessage,
    send: &SendMessageRequestBody,
    recipients: [Uid; 2],
) -> Push {
    let now = now_ms();
    let body = MessageBody {
        conversation_id: Some(message.conversation_id.as_str().into()),
        conversation_type: Some(1),
        server_message_id: Some(message.server_message_id),
        index_in_conversation: Some((now * 1000) as i64),
        conversation_short_id: Some(message.conversation_short_id),
        message_type: Some(message.message_type),
        sender: Some(message.sender_uid),
        content: send.content.clone(),
        ext: vec![
            ExtendedEntry::new("s:client_message_id", &message.client_message_id),
            ExtendedEntry::new("im_client_send_msg_time", now.to_string()),
        ],
        create_time: Some(now as i64),
        ..MessageBody::default()
    };
    let notify = NewMessageNotify {
        conversation_id: Some(message.conversation_id.as_str().into()),
        conversation_type: Some(1),
        notify_type: Some(1),
        message: Some(body),
        ..NewMessageNotify::default()
    };
    let response = Response {
        cmd: Some(cmd::NEW_MSG_NOTIFY),
        body: Some(ResponseBody {
            has_new_message_notify: vec![notify],
            ..ResponseBody::default()
        }),
        ..Response::default()
    };
    Push {
        response,
        recipients,
    }
}

fn push_frame(shared: &Shared, response: &Response) -> Vec<u8> {
    let now = now_ms();
    let counter = shared.next_counter();
    Frame {
        seqid: Some(10_000_000_000 + counter),
        logid: Some(now),
        service: Some(cmd::SERVICE_BSYNC_PUSH),
        method: Some(1),
        headers: vec![
            ExtendedEntry::new("X-Method", "PayloadRelatedMethod"),
            ExtendedEntry::new("X-PSM", "bytedance.bsync.cache_svr"),
            ExtendedEntry::new(":x_frontier_msg_id", format!("msg_sandbox{counter:020}")),
        ],
        payload_encoding: Some("gzip".into()),
        payload_type: Some(Default::default()),
        payload: Some(gzip(&response.encode_to_vec()).into()),
        ..Frame::default()
    }
    .encode_to_vec()
}

/// Queues the push on every socket of its recipients. Called after the reply to
/// the sender has been queued, so the sender sees the reply first.
pub(crate) fn deliver(shared: &Shared, push: &Push) {
    let bytes = push_frame(shared, &push.response);
    let mut state = shared.lock();
    for uid in push.recipients {
        if let Some(sockets) = state.sockets.get_mut(&uid) {
            // A socket whose task has ended is dropped from the registry here.
            sockets.retain(|(_, tx)| tx.send(Outbound::Frame(bytes.clone())).is_ok());
        }
    }
}
