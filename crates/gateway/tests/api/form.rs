//! POST /v1/messages as multipart form data (what the n8n node sends for binary images).

use base64::Engine as _;
use reqwest::multipart::{Form, Part};

use crate::{ALICE, TestApp, spawn_app};

fn ids(app: &TestApp) -> Form {
    let c = &app.sandbox.handle.seed().conversations[0];
    Form::new()
        .text("conversation_id", c.conversation_id.to_string())
        .text("conversation_short_id", c.conversation_short_id.to_string())
}

async fn post_form(app: &TestApp, form: Form) -> (u16, serde_json::Value) {
    let resp = app
        .http
        .post(app.url("/v1/messages"))
        .bearer_auth(&app.key)
        .header("x-tiktok-session", ALICE)
        .multipart(form)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap())
}

#[tokio::test]
async fn a_file_part_and_a_caption_are_delivered_in_order() {
    let app = spawn_app().await;
    let png = tiktok_dm_test_support::noise_png(16, 12, 5);
    let form = ids(&app).text("text", "caption from a form").part(
        "image",
        Part::bytes(png.clone())
            .file_name("photo.png")
            .mime_str("image/png")
            .unwrap(),
    );
    let (status, answer) = post_form(&app, form).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["usage"]["image_bytes"], png.len());
    let received = app.sandbox.handle.messages();
    assert_eq!(
        received.iter().map(|m| m.message_type).collect::<Vec<_>>(),
        [1802, 7]
    );
    assert_eq!(received[1].content["text"], "caption from a form");
    let path = &received[0].image.as_ref().unwrap().path;
    assert_eq!(app.sandbox.handle.object(path).unwrap(), png);
}

#[tokio::test]
async fn an_image_part_may_carry_base64_text_and_the_short_id_is_a_string() {
    let app = spawn_app().await;
    let png = tiktok_dm_test_support::noise_png(8, 8, 1);
    let b64 = base64::engine::general_purpose::STANDARD.encode(&png);
    let form = ids(&app).text("image", format!("data:image/png;base64,{b64}"));
    let (status, answer) = post_form(&app, form).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["messages"].as_array().unwrap().len(), 1);
    assert_eq!(answer["messages"][0]["kind"], "image");
}

fn png_part(seed: u8) -> Part {
    Part::bytes(tiktok_dm_test_support::noise_png(4, 4, seed.into()))
        .file_name("photo.png")
        .mime_str("image/png")
        .unwrap()
}

#[tokio::test]
async fn a_text_part_in_a_declared_charset_is_decoded_from_it() {
    let app = spawn_app().await;
    let latin1 = Part::bytes(b"caf\xe9".to_vec())
        .mime_str("text/plain; charset=iso-8859-1")
        .unwrap();
    let (status, answer) = post_form(&app, ids(&app).part("text", latin1)).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        app.sandbox.handle.messages()[0].content["text"],
        "caf\u{e9}"
    );
}

#[tokio::test]
async fn form_errors_use_the_same_codes_as_json() {
    let app = spawn_app().await;
    let cases = [
        (ids(&app), "message_empty"),
        (ids(&app).text("text", "   "), "message_empty"),
        (
            Form::new()
                .text("conversation_short_id", "1")
                .text("text", "x"),
            "conversation_id_missing",
        ),
        (
            ids(&app).part(
                "image",
                Part::bytes(b"not an image at all".to_vec()).file_name("a.png"),
            ),
            "image_invalid",
        ),
        (
            ids(&app).text("text", "x").text("colour", "red"),
            "invalid_form",
        ),
        // Two images or two texts: keeping one would drop the other unseen.
        (
            ids(&app)
                .part("image", png_part(1))
                .part("image", png_part(2)),
            "invalid_form",
        ),
        (
            ids(&app).part("image", png_part(1)).text(
                "image_base64",
                base64::engine::general_purpose::STANDARD
                    .encode(tiktok_dm_test_support::noise_png(4, 4, 2)),
            ),
            "invalid_form",
        ),
        (
            ids(&app).text("text", "one").text("text", "two"),
            "invalid_form",
        ),
        // Latin-1 bytes with no charset declared: refused, not turned into U+FFFD.
        (
            ids(&app).part("text", Part::bytes(b"caf\xe9".to_vec())),
            "invalid_form",
        ),
        (
            ids(&app)
                .text("conversation_short_id", "2")
                .text("text", "x"),
            "invalid_form",
        ),
    ];
    for (form, code) in cases {
        let (status, answer) = post_form(&app, form).await;
        assert_eq!(
            (status, answer["error"]["code"].as_str()),
            (400, Some(code)),
            "{answer}"
        );
    }
    let broken = app
        .http
        .post(app.url("/v1/messages"))
        .bearer_auth(&app.key)
        .header("x-tiktok-session", ALICE)
        .header("content-type", "multipart/form-data; boundary=xyz")
        .body("--xyz\r\nContent-Disposition: form-data; name=\"text\"\r\n\r\nunterminated")
        .send()
        .await
        .unwrap();
    assert_eq!(broken.status(), 400);
    let body: serde_json::Value = broken.json().await.unwrap();
    assert_eq!(body["error"]["code"], "invalid_form");
    assert!(app.sandbox.handle.messages().is_empty());
}

/// Media types are case-insensitive: a form sent as `Multipart/Form-Data` is
/// read as a form (it was refused as invalid JSON).
#[tokio::test]
async fn a_form_content_type_in_other_case_is_a_form() {
    let app = spawn_app().await;
    let c = &app.sandbox.handle.seed().conversations[0];
    let part = |name: &str, value: &str| {
        format!("--xyz\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n")
    };
    let body = format!(
        "{}{}{}--xyz--\r\n",
        part("conversation_id", &c.conversation_id.to_string()),
        part(
            "conversation_short_id",
            &c.conversation_short_id.get().to_string()
        ),
        part("text", "mixed case")
    );
    let answer = app
        .http
        .post(app.url("/v1/messages"))
        .bearer_auth(&app.key)
        .header("x-tiktok-session", ALICE)
        .header("content-type", "Multipart/Form-Data; boundary=xyz")
        .body(body)
        .send()
        .await
        .unwrap();
    let status = answer.status().as_u16();
    assert_eq!(status, 200, "{}", answer.text().await.unwrap());
    assert_eq!(app.sandbox.handle.messages().len(), 1);
}

#[tokio::test]
async fn a_file_part_over_the_image_limit_is_refused_with_413() {
    let app = spawn_app().await;
    // The test app's limit is the default (20 MB); 21 MB of zeroes passes the
    // body limit's slack for base64 but not the image limit.
    let form = ids(&app).part(
        "image",
        Part::bytes(vec![0u8; 21 * 1024 * 1024]).file_name("big.png"),
    );
    let (status, answer) = post_form(&app, form).await;
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (413, Some("image_too_large")),
        "{answer}"
    );
}
