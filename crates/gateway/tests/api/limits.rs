//! Connection and request limits (issue 17, fault 5): a client trickling its
//! request head is cut off while others are served, an idle connection and
//! a client that does not read its answers are closed, connections beyond
//! the cap wait until one closes, and one key's requests in progress are
//! capped with a 429.

use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use crate::{TestApp, spawn_app_with};

/// Longer than anything these tests wait for: only a connection the gateway
/// never closes (or a request it never answers) reaches it.
const PATIENCE: Duration = Duration::from_secs(30);

/// Reads until the gateway closes `tcp`: the bytes read, or `None` when it
/// was still open after [`PATIENCE`].
async fn read_until_closed(tcp: &mut TcpStream) -> Option<Vec<u8>> {
    let mut all = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    let read = async {
        loop {
            match tcp.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => all.extend_from_slice(&buf[..n]),
            }
        }
    };
    tokio::time::timeout(PATIENCE, read).await.ok()?;
    Some(all)
}

/// A connection that has had one `GET /healthz` answered and stays open.
async fn kept_alive(app: &TestApp) -> TcpStream {
    let mut tcp = TcpStream::connect(app.addr).await.unwrap();
    tcp.write_all(b"GET /healthz HTTP/1.1\r\nHost: gateway\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    let mut buf = [0u8; 1024];
    while !answer.ends_with(b"\r\n\r\nok") {
        let n = tcp.read(&mut buf).await.unwrap();
        assert!(n > 0, "closed after {:?}", String::from_utf8_lossy(&answer));
        answer.extend_from_slice(&buf[..n]);
    }
    assert!(answer.starts_with(b"HTTP/1.1 200"));
    tcp
}

/// Opens a connection that sends the start of a request head, then one
/// more byte of a header value every 100 ms, never ending it: the task
/// ends when the gateway cuts the connection off.
async fn trickling(app: &TestApp) -> tokio::task::JoinHandle<Vec<u8>> {
    let tcp = TcpStream::connect(app.addr).await.unwrap();
    let (mut reader, mut writer) = tcp.into_split();
    writer
        .write_all(b"POST /v1/messages HTTP/1.1\r\nHost: gateway\r\nX-Slow: ")
        .await
        .unwrap();
    tokio::spawn(async move {
        let trickle = async {
            while writer.write_all(b"a").await.is_ok() {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        };
        let mut answer = Vec::new();
        tokio::select! {
            () = trickle => {}
            _ = reader.read_to_end(&mut answer) => {}
        }
        answer
    })
}

#[tokio::test]
async fn a_client_trickling_its_request_head_is_cut_off_and_others_are_served_meanwhile() {
    let app = spawn_app_with(|s| {
        s.header_timeout = Duration::from_secs(3);
        s.idle_timeout = Duration::from_secs(3600);
    })
    .await;
    let slow = trickling(&app).await;
    assert_eq!(app.get_text("/healthz").await, "ok");
    let (status, body) = app.post(&app.key, &app.body("meanwhile"), &[]).await;
    assert_eq!(status, 200, "{body}");
    assert!(!slow.is_finished(), "the slow client is still sending");
    let answer = tokio::time::timeout(PATIENCE, slow)
        .await
        .expect("the slow client is cut off")
        .unwrap();
    // Nothing of the request was handled.
    assert!(!answer.starts_with(b"HTTP/1.1 2"), "{answer:?}");
    assert_eq!(app.sandbox.handle.messages().len(), 1);
}

#[tokio::test]
async fn the_gateway_stops_while_a_client_trickles_its_request_head() {
    let mut app = spawn_app_with(|s| {
        s.header_timeout = Duration::from_secs(1);
        s.idle_timeout = Duration::from_secs(3600);
    })
    .await;
    let slow = trickling(&app).await;
    let _idle = kept_alive(&app).await;
    tokio::time::timeout(PATIENCE, app.stop())
        .await
        .expect("the stop is not held up by the slow client");
    // The gateway had closed it by then; the client hears of it.
    tokio::time::timeout(PATIENCE, slow).await.unwrap().unwrap();
}

#[tokio::test]
async fn an_idle_connection_is_closed_after_the_idle_timeout() {
    let app = spawn_app_with(|s| {
        s.header_timeout = Duration::from_secs(300);
        s.idle_timeout = Duration::from_secs(1);
    })
    .await;
    let mut idle = kept_alive(&app).await;
    let rest = read_until_closed(&mut idle).await;
    assert_eq!(rest, Some(Vec::new()), "closed, with nothing more sent");
}

#[tokio::test]
async fn a_client_that_does_not_read_its_answers_is_cut_off_after_the_idle_timeout() {
    let app = spawn_app_with(|s| {
        s.header_timeout = Duration::from_secs(300);
        s.idle_timeout = Duration::from_secs(1);
    })
    .await;
    let document = app.get_text("/openapi.json").await.len();
    // More answers than the gateway's send buffer and our receive buffer hold.
    let asks = 16 * 1024 * 1024 / document + 1;
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut tcp = socket.connect(app.addr).await.unwrap();
    let ask = b"GET /openapi.json HTTP/1.1\r\nHost: gateway\r\n\r\n".repeat(asks);
    tcp.write_all(&ask).await.unwrap();
    // Not reading: the gateway's writes stall, and after the idle timeout
    // it gives up on the connection.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let read = read_until_closed(&mut tcp)
        .await
        .expect("the connection is closed");
    let answered = read.windows(12).filter(|w| w == b"HTTP/1.1 200").count();
    assert!(answered < asks, "{answered} of {asks} answers sent");
}

#[tokio::test]
async fn connections_beyond_the_cap_wait_until_one_closes() {
    let app = spawn_app_with(|s| {
        s.max_connections = 2;
        s.header_timeout = Duration::from_secs(300);
        s.idle_timeout = Duration::from_secs(3600);
    })
    .await;
    let first = kept_alive(&app).await;
    let _second = kept_alive(&app).await;
    let url = app.url("/healthz");
    let third = tokio::spawn(async move {
        let answer = reqwest::Client::new().get(url).send().await.unwrap();
        answer.status().as_u16()
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!third.is_finished(), "answered beyond the cap");
    drop(first);
    let status = tokio::time::timeout(PATIENCE, third)
        .await
        .expect("served once a connection closed")
        .unwrap();
    assert_eq!(status, 200);
}

/// Waits until `n` sends wait for their outcome.
async fn until_waiting(app: &TestApp, n: usize) {
    let line = format!("tiktok_dm_sends_waiting {n}\n");
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !app.get_text("/metrics").await.contains(&line) {
        assert!(tokio::time::Instant::now() < deadline, "never {n} waiting");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_key_with_its_limit_of_requests_in_progress_is_refused_429_and_other_keys_are_not() {
    let app = std::sync::Arc::new(
        spawn_app_with(|s| {
            s.max_requests_per_key = 2;
            s.send_timeout = Duration::from_secs(60);
        })
        .await,
    );
    app.sandbox.handle.delay_acks(Duration::from_secs(3), 2);
    let mut slow = Vec::new();
    for i in 0..2 {
        let app = std::sync::Arc::clone(&app);
        slow.push(tokio::spawn(async move {
            app.post(&app.key, &app.body(&format!("slow {i}")), &[])
                .await
                .0
        }));
    }
    until_waiting(&app, 2).await;
    let refused = app
        .http
        .post(app.url("/v1/messages"))
        .bearer_auth(&app.key)
        .header("x-tiktok-session", crate::ALICE)
        .json(&app.body("a third"))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 429);
    assert_eq!(refused.headers()["retry-after"], "1");
    let body: serde_json::Value = refused.json().await.unwrap();
    assert_eq!(
        body["error"]["code"], "too_many_concurrent_requests",
        "{body}"
    );
    let usage = app.get_json("/v1/usage", Some(&app.key)).await;
    assert_eq!(usage["error"]["code"], "too_many_concurrent_requests");
    let other = app.key_with_limit("other", None).await;
    let (status, body) = app.post(&other, &app.body("another key"), &[]).await;
    assert_eq!(status, 200, "{body}");
    for task in slow {
        assert_eq!(task.await.unwrap(), 200);
    }
    let (status, body) = app.post(&app.key, &app.body("after"), &[]).await;
    assert_eq!(status, 200, "{body}");
    let texts: Vec<String> = app
        .sandbox
        .handle
        .messages()
        .iter()
        .map(|m| m.content.to_string())
        .collect();
    assert!(!texts.iter().any(|t| t.contains("a third")), "{texts:?}");
    assert_eq!(texts.len(), 4, "{texts:?}");
}
