//! cmd 301 history, newest first and paged by `index_in_conversation`; and the
//! routes the working client sends with no query string and no `device_id`,
//! which are served while the send still needs both.

use tiktok_dm_proto::cmd;
use tiktok_dm_proto::cmd::WEB_API_QUERY;
use tiktok_dm_proto::codec::im_request;
use tiktok_dm_proto::schema::{
    MessageBody, MessagesInConversationRequestBody, MessagesInConversationResponseBody, Request,
    RequestBody,
};
use tiktok_dm_sandbox::Account;
use tiktok_dm_test_support::{TestSandbox, spawn_sandbox};

use crate::websocket::{exchange, open};
use crate::{alice, assert_refused, new_id, post_route, send_request, send_request_to};

const HISTORY_ROUTE: &str = "v1/message/get_by_conversation";

/// A cmd 301 request for the seed's conversation `index`, as the working
/// client sends it: no `device_id`.
fn history_request(
    sandbox: &TestSandbox,
    account: &Account,
    index: usize,
    anchor: i64,
    limit: i32,
) -> Request {
    let c = &sandbox.handle.seed().conversations[index];
    let body = RequestBody {
        messages_in_conversation_body: Some(MessagesInConversationRequestBody {
            conversation_id: Some(c.conversation_id.as_str().into()),
            conversation_type: Some(1),
            conversation_short_id: Some(c.conversation_short_id.get()),
            direction: Some(1),
            anchor_index: Some(anchor),
            limit: Some(limit),
            ..MessagesInConversationRequestBody::default()
        }),
        ..RequestBody::default()
    };
    let mut request = im_request(
        cmd::GET_MESSAGES_BY_CONVERSATION,
        10011,
        0,
        body,
        Vec::new(),
        &account.wid,
    );
    request.device_id = None;
    request
}

pub async fn history(
    sandbox: &TestSandbox,
    account: &Account,
    anchor: i64,
    limit: i32,
) -> MessagesInConversationResponseBody {
    let request = history_request(sandbox, account, 0, anchor, limit);
    let response = post_route(sandbox, &account.session, HISTORY_ROUTE, "", &request).await;
    assert_eq!(response.status_code, Some(0), "{:?}", response.error_desc);
    response
        .body
        .unwrap()
        .messages_in_conversation_body
        .unwrap()
}

fn texts(messages: &[MessageBody]) -> Vec<String> {
    messages
        .iter()
        .map(|m| {
            let content: serde_json::Value = m.content.as_deref().unwrap().parse().unwrap();
            content["text"].as_str().unwrap().to_owned()
        })
        .collect()
}

async fn send_text(sandbox: &TestSandbox, account: &Account, index: usize, n: u8, text: &str) {
    let c = &sandbox.handle.seed().conversations[index];
    let content = format!(r#"{{"aweType":0,"text":"{text}"}}"#);
    let request = send_request_to(
        account,
        &c.conversation_id,
        c.conversation_short_id,
        10009,
        &new_id(n),
        &content,
    );
    let response = post_route(
        sandbox,
        &account.session,
        "v1/message/send",
        WEB_API_QUERY,
        &request,
    )
    .await;
    assert_eq!(response.status_code, Some(0), "{:?}", response.error_desc);
}

#[tokio::test]
async fn history_returns_the_conversations_messages_newest_first_page_by_page() {
    let sandbox = spawn_sandbox().await;
    let a = alice(&sandbox);
    let bob = sandbox.handle.account("bob").unwrap().clone();
    send_text(&sandbox, &a, 0, 1, "one").await;
    send_text(&sandbox, &bob, 0, 2, "two").await;
    send_text(&sandbox, &a, 1, 3, "to carol").await;
    send_text(&sandbox, &a, 0, 4, "three").await;

    let first = history(&sandbox, &a, 0, 2).await;
    assert_eq!(texts(&first.messages), ["three", "two"]);
    assert_eq!(first.has_more, Some(true));
    assert_eq!(first.next_cursor, first.messages[1].index_in_conversation);
    assert_eq!(first.messages[1].sender, Some(bob.uid.get()));
    let second = history(&sandbox, &a, first.next_cursor.unwrap(), 2).await;
    assert_eq!(texts(&second.messages), ["one"]);
    assert_eq!(second.has_more, Some(false));
    let everything = history(&sandbox, &bob, 0, 0).await;
    assert_eq!(texts(&everything.messages), ["three", "two", "one"]);
    let indexes: Vec<i64> = everything
        .messages
        .iter()
        .map(|m| m.index_in_conversation.unwrap())
        .collect();
    assert!(indexes.windows(2).all(|w| w[0] > w[1]), "{indexes:?}");

    // Over the socket too.
    let mut ws = open(&sandbox, &bob).await;
    let (_, response) = exchange(&mut ws, &history_request(&sandbox, &bob, 0, 0, 1)).await;
    let page = response
        .body
        .unwrap()
        .messages_in_conversation_body
        .unwrap();
    assert_eq!(texts(&page.messages), ["three"]);
}

#[tokio::test]
async fn history_of_a_conversation_the_account_is_not_in_is_not_found() {
    let sandbox = spawn_sandbox().await;
    let carol = sandbox.handle.account("carol").unwrap().clone();
    // Conversation 0 is alice and bob.
    let request = history_request(&sandbox, &carol, 0, 0, 10);
    let response = post_route(&sandbox, &carol.session, HISTORY_ROUTE, "", &request).await;
    assert_eq!(response.status_code, Some(3));
}

#[tokio::test]
async fn history_is_served_without_query_or_device_id_while_a_send_still_needs_both() {
    let sandbox = spawn_sandbox().await;
    let a = alice(&sandbox);
    let request = history_request(&sandbox, &a, 0, 0, 10);
    assert_eq!(request.device_id, None);
    let served = post_route(&sandbox, &a.session, HISTORY_ROUTE, "", &request).await;
    assert_eq!(served.status_code, Some(0), "{:?}", served.error_desc);

    let send = send_request(&sandbox, &a, 0, 10009, &new_id(1));
    let bare = post_route(&sandbox, &a.session, "v1/message/send", "", &send).await;
    assert_eq!(bare.status_code, Some(200001));
    let mut no_device = send.clone();
    no_device.device_id = None;
    let mut wrong_device = send;
    wrong_device.device_id = Some("7100000000000000999".into());
    for request in [no_device, wrong_device] {
        let refused = post_route(
            &sandbox,
            &a.session,
            "v1/message/send",
            WEB_API_QUERY,
            &request,
        )
        .await;
        assert_refused(&refused, 4, "device_id");
    }
    assert!(sandbox.handle.messages().is_empty());
}
