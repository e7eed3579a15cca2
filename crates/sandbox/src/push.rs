//! Pushes (PROTOCOL.md 1.10): the cmd-500 new message, sent to every socket
//! of both participants, and the 501 read, 510 typing and 705 property
//! pushes of `/_sandbox/inbound`. Each is a service-20032 frame whose
//! `Response` is one raw LZ4 block on an fpid-9 socket (`__lz4`, PROTOCOL.md
//! 10.2) and gzip on any other. The `drop_pushes` fault withholds them from
//! one account.

use tiktok_dm_proto::Message;
use tiktok_dm_proto::cmd;
use tiktok_dm_proto::codec::{ENCODING_GZIP, ENCODING_LZ4, gzip, lz4};
use tiktok_dm_proto::ids::Uid;
use tiktok_dm_proto::schema::{
    ExtendedEntry, Frame, MessageBody, NewMessageNotify, Response, ResponseBody,
};

use crate::faults::Fault;
use crate::state::{Downlink, Outbound, Shared, now_ms};

/// A push to deliver and who gets it. It is encoded (and compressed) only in
/// [`deliver`], after the sender's reply has been queued, to keep compression
/// off the reply's path.
#[derive(Debug)]
pub(crate) struct Push {
    response: Response,
    recipients: Vec<Uid>,
}

/// Builds the echo push of an accepted message from its stored body.
pub(crate) fn new_message_push(body: &MessageBody, recipients: [Uid; 2]) -> Push {
    let notify = NewMessageNotify {
        conversation_id: body.conversation_id.clone(),
        conversation_type: Some(1),
        notify_type: Some(1),
        message: Some(body.clone()),
        ..NewMessageNotify::default()
    };
    let body = ResponseBody {
        has_new_message_notify: vec![notify],
        ..ResponseBody::default()
    };
    notify_push(cmd::NEW_MSG_NOTIFY, body, recipients.to_vec())
}

/// A push of `command` (500, 501, 510 or 705) whose body is `body`.
pub(crate) fn notify_push(command: i32, body: ResponseBody, recipients: Vec<Uid>) -> Push {
    let response = Response {
        cmd: Some(command),
        body: Some(body),
        ..Response::default()
    };
    Push {
        response,
        recipients,
    }
}

/// The recipients a `drop_pushes` fault does not hold back; each account
/// held back uses one firing of its fault.
fn not_dropped(shared: &Shared, recipients: &[Uid]) -> Vec<Uid> {
    let mut state = shared.lock();
    recipients
        .iter()
        .copied()
        .filter(|uid| {
            // The account is looked up only when such a fault is in force.
            let named = |name: &str| shared.account_by_uid(*uid).is_some_and(|a| a.name == name);
            let dropped = state
                .faults
                .take(|f| matches!(f, Fault::DropPushes { account } if named(account)));
            dropped.is_none()
        })
        .collect()
}

fn push_frame(shared: &Shared, encoded: &[u8], downlink: Downlink) -> Vec<u8> {
    let now = now_ms();
    let counter = shared.next_counter();
    let (encoding, payload_type, payload) = match downlink {
        Downlink::Lz4 => (ENCODING_LZ4, "pb", lz4(encoded)),
        Downlink::Legacy => (ENCODING_GZIP, "", gzip(encoded)),
    };
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
        payload_encoding: Some(encoding.into()),
        payload_type: Some(payload_type.into()),
        payload: Some(payload.into()),
        ..Frame::default()
    }
    .encode_to_vec()
}

/// Queues the push on every socket of its recipients, each frame encoded the
/// way its socket reads. Called after the reply to the sender has been queued,
/// so the sender sees the reply first.
pub(crate) fn deliver(shared: &Shared, push: &Push) {
    let recipients = not_dropped(shared, &push.recipients);
    if recipients.is_empty() {
        return;
    }
    let encoded = push.response.encode_to_vec();
    let wanted: Vec<Downlink> = {
        let state = shared.lock();
        recipients
            .iter()
            .filter_map(|uid| state.sockets.get(uid))
            .flatten()
            .map(|s| s.downlink)
            .collect()
    };
    // Each encoding is compressed once, outside the lock.
    let frame_for = |d: Downlink| wanted.contains(&d).then(|| push_frame(shared, &encoded, d));
    let (lz4_frame, gzip_frame) = (frame_for(Downlink::Lz4), frame_for(Downlink::Legacy));
    let mut state = shared.lock();
    for uid in recipients {
        if let Some(sockets) = state.sockets.get_mut(&uid) {
            // A socket whose task has ended is dropped from the registry here.
            sockets.retain(|s| {
                let frame = match s.downlink {
                    Downlink::Lz4 => &lz4_frame,
                    Downlink::Legacy => &gzip_frame,
                };
                // A socket that opened after the frames were built gets none.
                frame
                    .as_ref()
                    .is_none_or(|f| s.tx.send(Outbound::Frame(f.clone())).is_ok())
            });
        }
    }
}
