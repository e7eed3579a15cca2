//! Conformance with a working open-source TikTok web client (PROTOCOL.md
//! 10): its `pkg/libtiktok` requests replayed against the sandbox (method,
//! path, query, the headers that matter, and protobuf bodies with its field
//! numbers, wire types, values and presence), and the answers read the way it
//! reads them. The bytes are built by hand (`working_client/pb.rs`), never by
//! our client or our schema, so a mistake shared with them cannot hide here.
//!
//! Only the hosts differ from that client's: `https://im-api-sg.tiktok.com`,
//! `https://www.tiktok.com` and `wss://im-ws-sg.tiktok.com` become the
//! sandbox. Most tests reach it over plain HTTP and WS, so the ImageX and
//! storage calls, which that client sends to `https://` + the host the sandbox
//! names, go to `http://`; one runs the whole flow over TLS, `https://` and
//! `wss://` only, as that client does.

mod pb;
mod read;
mod replay;

use std::time::Duration;

use aes_gcm::aead::Aead as _;
use aes_gcm::{Aes256Gcm, KeyInit as _, Nonce};
use futures_util::StreamExt as _;
use tiktok_dm_sandbox::Account;
use tiktok_dm_test_support::{noise_png, spawn_sandbox};
use tokio_tungstenite::tungstenite::Message as WsMessage;

use crate::alice;
use crate::tls::{Server, spawn_tls};
use pb::Pb;
use read::{Conversation, Message};
use replay::{Session, Ws};

/// `getMessagesUniversalData`: GET `/messages`, the JSON of the
/// `__UNIVERSAL_DATA_FOR_REHYDRATION__` script, `__DEFAULT_SCOPE__` →
/// `webapp.app-context`.
async fn app_context(server: &Server, cookie: &str) -> serde_json::Value {
    let page = server
        .http()
        .get(format!("{}/messages", server.base_url()))
        .header("cookie", cookie)
        .header("user-agent", replay::USER_AGENT)
        .header("accept-language", "en-US,en;q=0.9")
        .header(
            "accept",
            "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
        )
        .send()
        .await
        .unwrap();
    assert!(page.status().is_success());
    let html = page.text().await.unwrap();
    let tag = html
        .find("<script id=\"__UNIVERSAL_DATA_FOR_REHYDRATION__\"")
        .unwrap();
    let start = tag + html[tag..].find('>').unwrap() + 1;
    let end = start + html[start..].find("</script>").unwrap();
    let data: serde_json::Value = serde_json::from_str(html[start..end].trim()).unwrap();
    data["__DEFAULT_SCOPE__"]["webapp.app-context"].clone()
}

/// A session of that client for `account`: its cookie and the page's `wid`.
async fn session(server: impl Into<Server>, account: &Account) -> Session {
    let server = server.into();
    let cookie = replay::cookie(account);
    let context = app_context(&server, &cookie).await;
    let wid = context["wid"].as_str().unwrap().to_owned();
    Session {
        server,
        cookie,
        wid,
    }
}

/// `fetchInbox`: cmd 203 with sequence 10002 (flag 1) or 10006 (flag 0).
async fn fetch_inbox(s: &Session, sequence: u64) -> Vec<u8> {
    let flag = u64::from(sequence != 10006);
    let body = Pb::new().msg(203, Pb::new().uint(1, 0));
    let bytes = replay::request(
        203,
        sequence,
        flag,
        body,
        Some(&s.wid),
        &replay::metadata(&s.wid),
    );
    let query = replay::im_query(Vec::new());
    let own = [("referer", "https://www.tiktok.com/messages")];
    s.post_im("/v2/message/get_by_user_init", Some(query), bytes, &own)
        .await
}

/// `GetInbox`: both calls, merged.
async fn inbox(s: &Session) -> (Vec<Conversation>, usize) {
    let first = read::inbox(&fetch_inbox(s, 10002).await);
    let second = read::inbox(&fetch_inbox(s, 10006).await);
    let mut all = first.conversations;
    for c in second.conversations {
        if !all.iter().any(|a| a.id == c.id) {
            all.push(c);
        }
    }
    (all, first.real_rows.max(second.real_rows))
}

/// What a send puts in the body beside the envelope fields.
enum Content<'a> {
    Text(&'a str),
    Image(&'a Uploaded),
}

/// The common part of `buildSendPayload`: 1 id, 2 1, 3 the short id, 4 the
/// content, 5 the two tags (`s:mentioned_users` with no value), 6 the type,
/// 7 "deprecated", 8 the client id.
fn send_body(conv: &Conversation, client_id: &str, content: &Content<'_>) -> Pb {
    let (json, message_type) = match content {
        Content::Text(text) => (
            serde_json::json!({"aweType": 0, "text": text}).to_string(),
            7,
        ),
        Content::Image(_) => (String::new(), 1802),
    };
    let body = Pb::new()
        .str(1, &conv.id)
        .uint(2, 1)
        .uint(3, conv.short_id)
        .str(4, &json)
        .msg(5, Pb::new().str(1, "s:mentioned_users"))
        .kv(5, "s:client_message_id", client_id)
        .uint(6, message_type)
        .str(7, "deprecated")
        .str(8, client_id);
    match content {
        Content::Text(_) => body,
        Content::Image(image) => image_fields(body, image),
    }
}

/// The private image's 13 `content_pb`, 14 scene and 17 media summary.
fn image_fields(body: Pb, image: &Uploaded) -> Pb {
    let (w, h) = (image.width, image.height);
    let asset = Pb::new()
        .str(1, &image.uri)
        .msg(5, Pb::new().uint(1, w).uint(2, h))
        .str(6, &image.key)
        .uint(7, 0);
    let texts = Pb::new()
        .msg(1, Pb::new().str(1, "You sent a 📷"))
        .msg(2, Pb::new().str(1, "sent a 📷"))
        .msg(3, Pb::new().str(1, "[Photo]"));
    let mut entry = Pb::new().str(1, &image.uri);
    for (k, v) in [
        ("image_width", w.to_string()),
        ("image_height", h.to_string()),
        ("decrypt_key", image.key.clone()),
        ("quote_preview", "dm_cam_preview_photo".into()),
        ("sender_preview", "sender_preview".into()),
    ] {
        entry = entry.kv(2, k, &v);
    }
    let private_image = Pb::new()
        .msg(1, asset)
        .msg(3, texts)
        .msg(200, Pb::new().msg(1, entry));
    let info = Pb::new()
        .uint(1, w)
        .uint(2, h)
        .uint(4, image.size)
        .str(5, "image.png");
    body.msg(13, Pb::new().msg(4, private_image))
        .str(14, "private_image")
        .msg(
            17,
            Pb::new()
                .uint(1, 1)
                .str(2, &image.uri)
                .str(3, &image.key)
                .msg(10, info),
        )
}

/// `SendMessage`: a fresh P-256 key, the DPoP proof for the send URL, the
/// cmd-100 request (sequence 10009) with the ticket-guard metadata, the
/// `ztca-*` query and the ticket-guard HTTP headers. Returns the client id
/// and the answer.
async fn send(s: &Session, conv: &Conversation, content: Content<'_>) -> (String, Vec<u8>) {
    let key = replay::fresh_key();
    let public = replay::public_key(&key);
    let htu = format!("https://{}/v1/message/send", s.server.addr);
    let proof = replay::dpop(&key, "POST", &htu);
    let client_id = replay::uuid();
    let body = Pb::new().msg(100, send_body(conv, &client_id, &content));
    let metadata = replay::send_metadata(&s.wid, &public);
    let bytes = replay::request(100, 10009, 0, body, Some(&s.wid), &metadata);
    let query = replay::im_query(vec![("ztca-version", "1".into()), ("ztca-dpop", proof)]);
    let own = [
        ("pragma", "no-cache"),
        ("priority", "u=1, i"),
        ("tt-ticket-guard-iteration-version", "0"),
        ("tt-ticket-guard-public-key", public.as_str()),
        ("tt-ticket-guard-version", "2"),
        ("tt-ticket-guard-web-version", "1"),
    ];
    let answer = s
        .post_im("/v1/message/send", Some(query), bytes, &own)
        .await;
    (client_id, answer)
}

/// The first chat event on the socket, skipping frames that carry none.
async fn next_chat(ws: &mut Ws) -> Message {
    loop {
        let next = tokio::time::timeout(Duration::from_secs(5), ws.next()).await;
        let frame = next.unwrap().unwrap().unwrap();
        if let WsMessage::Binary(data) = frame {
            if let Some(message) = read::ws_frame(&data).unwrap() {
                return message;
            }
        }
    }
}

/// The committed image as that client keeps it.
struct Uploaded {
    uri: String,
    key: String,
    width: u64,
    height: u64,
    size: u64,
}

/// cmd 2059 (sequence 10007, body field 2059 an empty string).
async fn credentials(s: &Session) -> replay::Credentials {
    let body = Pb::new().str(2059, "");
    let bytes = replay::request(
        2059,
        10007,
        0,
        body,
        Some(&s.wid),
        &replay::metadata(&s.wid),
    );
    let query = replay::im_query(Vec::new());
    let answer = s
        .post_im("/v1/media/upload_config", Some(query), bytes, &[])
        .await;
    read::upload_credentials(&answer).expect("an ImageX entry that client accepts")
}

/// `applyImageUpload` (GET, signed) and `uploadImageBytes`: the store URI's
/// session key once the bytes are on the storage node.
async fn apply_and_upload(server: &Server, creds: &replay::Credentials, png: &[u8]) -> String {
    let query = replay::canonical_query(vec![
        ("Action", "ApplyImageUpload".into()),
        ("FileExtension", ".png".into()),
        ("FileSize", png.len().to_string()),
        ("ServiceId", creds.service_id.clone()),
        ("Version", "2018-08-01".into()),
        ("s", replay::upload_identifier(11)),
    ]);
    let headers = replay::sign(creds, "GET", &query, b"");
    let (scheme, http) = (server.scheme(), server.http());
    let url = format!("{scheme}://{}/?{query}", creds.host);
    let (status, applied) = replay::media_call(&http, "GET", &url, headers, Vec::new()).await;
    assert_eq!(status, 200, "{applied}");
    assert!(applied["ResponseMetadata"]["Error"].is_null(), "{applied}");
    let address = &applied["Result"]["UploadAddress"];
    let store = &address["StoreInfos"][0];
    let (uri, auth) = (
        store["StoreUri"].as_str().unwrap(),
        store["Auth"].as_str().unwrap(),
    );
    let host = address["UploadHosts"][0].as_str().unwrap();
    let headers = vec![
        ("authorization".to_owned(), auth.to_owned()),
        (
            "content-crc32".to_owned(),
            format!("{:08x}", crc32fast::hash(png)),
        ),
        ("content-type".into(), "application/octet-stream".into()),
        (
            "content-disposition".into(),
            "attachment; filename=\"undefined\"".into(),
        ),
        ("user-agent".into(), replay::USER_AGENT.into()),
    ];
    let url = format!("{scheme}://{host}/upload/v1/{uri}");
    let (status, stored) = replay::media_call(&http, "POST", &url, headers, png.to_vec()).await;
    assert_eq!(
        (status, stored["code"].as_i64()),
        (200, Some(2000)),
        "{stored}"
    );
    address["SessionKey"].as_str().unwrap().to_owned()
}

/// `commitImageUpload` (POST, signed with the body's hash) asking for
/// `cipher_v2`, read as that client reads it: `Results[0].Encryption` with
/// `Extra` a map of strings, then `PluginResult[0]` where present.
async fn commit(server: &Server, creds: &replay::Credentials, session_key: &str) -> Uploaded {
    let body = format!(
        r#"{{"SessionKey":"{session_key}","Functions":[{{"name":"Encryption","input":{{"Config":{{"copies":"cipher_v2"}}}}}}]}}"#
    );
    let query = replay::canonical_query(vec![
        ("Action", "CommitImageUpload".into()),
        ("ServiceId", creds.service_id.clone()),
        ("Version", "2018-08-01".into()),
    ]);
    let headers = replay::sign(creds, "POST", &query, body.as_bytes());
    let url = format!("{}://{}/?{query}", server.scheme(), creds.host);
    let (status, committed) =
        replay::media_call(&server.http(), "POST", &url, headers, body.into_bytes()).await;
    assert_eq!(status, 200, "{committed}");
    assert!(committed["ResponseMetadata"]["Error"].is_null());
    let encryption = &committed["Result"]["Results"][0]["Encryption"];
    let extra: std::collections::HashMap<String, String> =
        serde_json::from_value(encryption["Extra"].clone()).expect("Extra is a map of strings");
    let number = |k: &str| extra.get(k).and_then(|v| v.parse().ok()).unwrap_or(0);
    let mut image = Uploaded {
        uri: encryption["Uri"].as_str().unwrap().to_owned(),
        key: encryption["SecretKey"].as_str().unwrap().to_owned(),
        width: number("img_width"),
        height: number("img_height"),
        size: number("img_size"),
    };
    let plugin = &committed["Result"]["PluginResult"][0];
    if let Some(uri) = plugin["ImageUri"].as_str().filter(|u| !u.is_empty()) {
        image.uri = uri.to_owned();
    }
    for (field, slot) in [
        ("ImageWidth", &mut image.width),
        ("ImageHeight", &mut image.height),
        ("ImageSize", &mut image.size),
    ] {
        let value = &plugin[field];
        assert!(value.is_null() || value.is_i64(), "{field} must be an int");
        if let Some(v) = value.as_u64().filter(|v| *v > 0) {
            *slot = v;
        }
    }
    image
}

/// `uploadImage`: credentials, apply, upload, commit.
async fn upload_image(s: &Session, png: &[u8]) -> Uploaded {
    let creds = credentials(s).await;
    assert_eq!(creds.host, s.server.addr.to_string());
    let session_key = apply_and_upload(&s.server, &creds, png).await;
    commit(&s.server, &creds, &session_key).await
}

/// `GetMessages`: cmd 301, sequence 1, no device id and no query string.
async fn history(s: &Session, conv: &Conversation, cursor: u64) -> Vec<u8> {
    let query = Pb::new()
        .str(1, &conv.id)
        .uint(2, 1)
        .uint(3, conv.short_id)
        .uint(4, 1)
        .uint(5, cursor)
        .uint(6, 20);
    let body = Pb::new().msg(301, query);
    let bytes = replay::request(301, 1, 0, body, None, &replay::metadata(&s.wid));
    s.post_im("/v1/message/get_by_conversation", None, bytes, &[])
        .await
}

/// The conversation of alice and bob, as alice's inbox lists it.
async fn alice_and_bob(s: &Session) -> Conversation {
    let seeded = &s.server.handle.seed().conversations[0];
    let (conversations, _) = inbox(s).await;
    conversations
        .into_iter()
        .find(|c| c.id == seeded.conversation_id.as_str())
        .unwrap()
}

fn decrypt(key_hex: &str, blob: &[u8]) -> Vec<u8> {
    let key: Vec<u8> = (0..key_hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&key_hex[i..i + 2], 16).unwrap())
        .collect();
    assert_eq!(key.len(), 32);
    let cipher = Aes256Gcm::new_from_slice(&key).unwrap();
    cipher
        .decrypt(Nonce::from_slice(&blob[..12]), &blob[12..])
        .unwrap()
}

#[tokio::test]
async fn the_messages_page_gives_that_client_a_wid_and_a_user_with_uid_and_unique_id() {
    let sandbox = spawn_sandbox().await;
    let a = alice(&sandbox);
    let context = app_context(&Server::from(&sandbox), &replay::cookie(&a)).await;
    assert_eq!(context["wid"].as_str(), Some(a.wid.as_str()));
    let user = &context["user"];
    assert_eq!(user["uid"].as_str(), Some(a.uid.to_string().as_str()));
    assert_eq!(user["uniqueId"].as_str(), Some(a.unique_id.as_str()));
    assert!(user["nickName"].is_string());
    // GetSelf takes the avatar from `avatarUri`, a list, when there is one.
    assert!(user["avatarUri"].is_null() || user["avatarUri"].is_array());
}

#[tokio::test]
async fn both_inbox_calls_list_each_conversation_with_its_short_id_and_members() {
    let sandbox = spawn_sandbox().await;
    let a = alice(&sandbox);
    let s = session(&sandbox, &a).await;
    for sequence in [10002, 10006] {
        let answer = fetch_inbox(&s, sequence).await;
        // That client does not read them, but the call must have succeeded.
        assert_eq!(pb::uint(&answer, 1), Some(203));
        assert_eq!(pb::uint(&answer, 3), Some(0), "{:?}", pb::text(&answer, 4));
    }
    let (conversations, _) = inbox(&s).await;
    let seeded = &sandbox.handle.seed().conversations;
    assert_eq!(conversations.len(), seeded.len());
    for c in seeded {
        let listed = conversations
            .iter()
            .find(|l| l.id == c.conversation_id.as_str())
            .unwrap();
        assert_eq!(listed.short_id, c.conversation_short_id.get() as u64);
        assert_eq!(listed.conversation_type, 1);
        let (x, y) = c.conversation_id.participants().unwrap();
        assert_eq!(listed.participants, [x.to_string(), y.to_string()]);
    }
}

#[tokio::test]
async fn a_text_send_is_acknowledged_with_an_id_that_client_reads_and_echoed_on_its_socket() {
    let sandbox = spawn_sandbox().await;
    let a = alice(&sandbox);
    let s = session(&sandbox, &a).await;
    let conv = alice_and_bob(&s).await;
    let (mut ws, handshake) = s.connect().await;
    assert!(handshake.get("sec-websocket-protocol").is_none());

    let (client_id, answer) = send(&s, &conv, Content::Text("hello from Go")).await;
    assert_eq!(pb::uint(&answer, 3), Some(0), "{:?}", pb::text(&answer, 4));
    let stored = sandbox.handle.messages();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].client_message_id, client_id);
    assert_eq!(stored[0].content["text"], "hello from Go");
    // The id is read from 6 -> 100 -> 1. The sandbox writes it as the int64
    // of the live capture, which that client's typed schema (a string at 1)
    // would skip; its raw reader takes a varint as well, and that is the path
    // that finds it.
    let ack = pb::bytes(&pb::bytes(&answer, 6).unwrap(), 100).unwrap();
    assert!(matches!(pb::all(&ack, 1)[..], [pb::Raw::Varint(_)]));
    let server_id = stored[0].server_message_id.to_string();
    assert_eq!(read::send_id(&answer), Some(server_id.clone()));

    let echo = next_chat(&mut ws).await;
    assert_eq!(echo.conversation_id, conv.id);
    assert_eq!(echo.server_id.to_string(), server_id);
    assert_eq!(echo.client_message_id, client_id);
    assert_eq!(echo.sender, a.uid.to_string());
    assert_eq!(
        (echo.kind.as_str(), echo.text.as_str()),
        ("text", "hello from Go")
    );
    assert!(echo.timestamp_us > 1_700_000_000_000_000, "microseconds");
}

#[tokio::test]
async fn an_image_goes_up_through_imagex_and_comes_back_as_a_pushed_encrypted_download() {
    let sandbox = spawn_sandbox().await;
    let a = alice(&sandbox);
    let s = session(&sandbox, &a).await;
    let conv = alice_and_bob(&s).await;
    let (mut ws, _) = s.connect().await;
    let png = noise_png(48, 32, 7);

    let image = upload_image(&s, &png).await;
    assert_eq!((image.width, image.height), (48, 32));
    assert_eq!(image.size, png.len() as u64);
    let (client_id, answer) = send(&s, &conv, Content::Image(&image)).await;
    assert_eq!(pb::uint(&answer, 3), Some(0), "{:?}", pb::text(&answer, 4));
    assert!(read::send_id(&answer).is_some());

    let echo = next_chat(&mut ws).await;
    assert_eq!(echo.client_message_id, client_id);
    assert_eq!(
        (echo.kind.as_str(), echo.subtype.as_str()),
        ("image", "private_image")
    );
    assert_eq!(echo.decrypt_key, image.key);
    assert_eq!((echo.width, echo.height), (48, 32));
    let blob = s.download(&echo.media_url).await;
    assert_eq!(decrypt(&echo.decrypt_key, &blob), png);
}

#[tokio::test]
async fn the_history_gives_the_sent_messages_in_the_rows_that_client_reads() {
    let sandbox = spawn_sandbox().await;
    let a = alice(&sandbox);
    let s = session(&sandbox, &a).await;
    let conv = alice_and_bob(&s).await;
    let (first, _) = send(&s, &conv, Content::Text("one")).await;
    let image = upload_image(&s, &noise_png(20, 10, 3)).await;
    let (second, _) = send(&s, &conv, Content::Image(&image)).await;

    let (messages, _next) = read::history(&history(&s, &conv, 0).await);
    let ids: Vec<&str> = messages
        .iter()
        .map(|m| m.client_message_id.as_str())
        .collect();
    assert_eq!(
        ids,
        [first.as_str(), second.as_str()],
        "oldest first once reversed"
    );
    assert_eq!(
        (messages[0].kind.as_str(), messages[0].text.as_str()),
        ("text", "one")
    );
    assert_eq!(messages[1].kind, "image");
    assert_eq!(messages[1].decrypt_key, image.key);
    assert!(messages[0].timestamp_us < messages[1].timestamp_us);
    assert!(messages.iter().all(|m| m.conversation_id == conv.id));
}

#[tokio::test]
async fn the_strict_ticket_guard_accepts_the_entries_where_that_client_puts_them() {
    let sandbox = spawn_sandbox().await;
    sandbox.handle.require_ticket_guard(true);
    let a = alice(&sandbox);
    let s = session(&sandbox, &a).await;
    let conv = alice_and_bob(&s).await;
    // The five entries come before the last context entry, not at the end.
    let metadata = replay::send_metadata(&s.wid, "k");
    assert_eq!(metadata.last().unwrap().0, "Web-Sdk-Ms-Token");
    let (_, answer) = send(&s, &conv, Content::Text("guarded")).await;
    assert_eq!(pb::uint(&answer, 3), Some(0), "{:?}", pb::text(&answer, 4));
    assert_eq!(sandbox.handle.messages().len(), 1);
}

#[tokio::test]
async fn the_inbox_lists_a_conversation_s_last_message_as_a_row_that_client_counts_as_real() {
    let sandbox = spawn_sandbox().await;
    let a = alice(&sandbox);
    let s = session(&sandbox, &a).await;
    let conv = alice_and_bob(&s).await;
    let (_, rows) = inbox(&s).await;
    assert_eq!(rows, 0, "no message yet, no row");
    send(&s, &conv, Content::Text("first")).await;
    let (latest, _) = send(&s, &conv, Content::Text("latest")).await;

    let list = pb::bytes(&pb::bytes(&fetch_inbox(&s, 10006).await, 6).unwrap(), 203).unwrap();
    let rows = pb::all_bytes(&list, 1);
    assert_eq!(rows.len(), 1, "one row per conversation with messages");
    let row = &rows[0];
    assert_eq!(pb::text(row, 1).as_deref(), Some(conv.id.as_str()));
    assert_eq!(pb::uint(row, 5), Some(conv.short_id));
    assert_eq!(pb::uint(row, 7), Some(a.uid.get() as u64));
    let content: serde_json::Value = serde_json::from_slice(&pb::bytes(row, 8).unwrap()).unwrap();
    assert_eq!(content["text"], "latest");
    let tags = pb::all_bytes(row, 9);
    assert!(
        tags.iter()
            .any(|t| pb::text(t, 2).as_deref() == Some(latest.as_str()))
    );
    let parsed = read::inbox(
        &pb::Pb::new()
            .msg(6, Pb::new().bytes(203, &list))
            .into_bytes(),
    );
    assert_eq!(parsed.real_rows, 1);
    assert_eq!(
        parsed.conversations.len(),
        2,
        "rows merge into the conversations"
    );
}

#[tokio::test]
async fn behind_a_tls_proxy_a_pushed_image_url_keeps_the_https_scheme() {
    let sandbox = spawn_sandbox().await;
    let a = alice(&sandbox);
    let s = session(&sandbox, &a).await;
    let conv = alice_and_bob(&s).await;
    let (mut ws, _) = s.connect().await;
    let image = upload_image(&s, &noise_png(8, 8, 1)).await;
    let client_id = replay::uuid();
    let body = Pb::new().msg(100, send_body(&conv, &client_id, &Content::Image(&image)));
    let key = replay::fresh_key();
    let metadata = replay::send_metadata(&s.wid, &replay::public_key(&key));
    let bytes = replay::request(100, 10009, 0, body, Some(&s.wid), &metadata);
    let own = [("x-forwarded-proto", "https")];
    let query = Some(replay::im_query(Vec::new()));
    s.post_im("/v1/message/send", query, bytes, &own).await;
    let echo = next_chat(&mut ws).await;
    let expected = format!("https://{}/", sandbox.addr);
    assert!(echo.media_url.starts_with(&expected), "{}", echo.media_url);
}

#[tokio::test]
async fn over_tls_that_client_s_whole_image_flow_works_with_https_and_wss_only() {
    let tls = spawn_tls().await;
    let a = tls.server.handle.account("alice").unwrap().clone();
    let s = session(tls.server.clone(), &a).await;
    let conv = alice_and_bob(&s).await;
    let (mut ws, _) = s.connect().await;
    let png = noise_png(24, 16, 3);
    // cmd 2059 names this sandbox as the ImageX host, and Apply names it as
    // the storage host: that client prefixes both with `https://`.
    let image = upload_image(&s, &png).await;
    let (client_id, answer) = send(&s, &conv, Content::Image(&image)).await;
    assert_eq!(pb::uint(&answer, 3), Some(0), "{:?}", pb::text(&answer, 4));

    let echo = next_chat(&mut ws).await;
    assert_eq!(echo.client_message_id, client_id);
    let expected = format!("https://{}/", tls.server.addr);
    assert!(echo.media_url.starts_with(&expected), "{}", echo.media_url);
    let blob = s.download(&echo.media_url).await;
    assert_eq!(decrypt(&echo.decrypt_key, &blob), png);
}

#[tokio::test]
async fn that_client_pages_back_through_history_with_the_cursor_on_each_row() {
    let sandbox = spawn_sandbox().await;
    let a = alice(&sandbox);
    let s = session(&sandbox, &a).await;
    let conv = alice_and_bob(&s).await;
    let mut sent = Vec::new();
    for n in 0..23 {
        let (id, _) = send(&s, &conv, Content::Text(&format!("m{n}"))).await;
        sent.push(id);
    }
    // It asks for 20 at a time and sends back the last row's field 25.
    let mut seen: Vec<String> = Vec::new();
    let mut cursor = 0;
    for _ in 0..3 {
        let (page, next) = read::history(&history(&s, &conv, cursor).await);
        let ids: Vec<String> = page.iter().map(|m| m.client_message_id.clone()).collect();
        seen.splice(0..0, ids);
        if next.is_empty() || page.is_empty() {
            break;
        }
        cursor = next.parse().unwrap();
    }
    assert_eq!(seen, sent, "every message once, oldest first, none skipped");
}
