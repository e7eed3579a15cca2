//! `tiktok-dm demo`: the whole product on one machine, with no account and no
//! setup: the sandbox on an ephemeral loopback port, the gateway in front of it on
//! another (a throwaway SQLite file, a stored sandbox account, an API key with a
//! daily limit of 3), and three sends over real HTTP: a text, an image with its
//! caption (multipart, as the n8n node sends binary data), and one more text that
//! the quota refuses. It prints each answer and what the sandbox received.

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use base64::Engine as _;
use serde_json::{Value, json};
use tiktok_dm_client::Endpoints;
use tiktok_dm_gateway::admin::{self, KeySpec};
use tiktok_dm_gateway::secrets::{IssuedKey, Vault};
use tiktok_dm_gateway::{Application, Settings};
use tiktok_dm_sandbox::{Conversation, Sandbox, SandboxHandle, Seed};
use tiktok_dm_store::SqliteStore;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use tiktok_dm_gateway::now_ms;

/// A 48x32 gradient PNG, sent by the demo as its image.
const DEMO_PNG: &str = "iVBORw0KGgoAAAANSUhEUgAAADAAAAAgCAIAAADbtmxLAAALqElEQVR42hXXIcvyABiF4RVBLC4YZpGBZUUQiwsGLSJYVoRhccEwiwwsK4JYNBi0yMCyIgyLC4ZZZGC5iyAWDYZZZGBZXPze7/kFVzgcziMIAhmBnEBeoCBQFCgJlAUUgYpATaAu0BBoCbQFugKaQE+gLzAQGAqMBMYCEwFbYCowF1gIrAQ2AluBnYArsBc4CBwFTgJngYvAVQCBm8BD4CnwFvgIfAV+AoKQJZMllyWfpZClmKWUpZxFyVLJUstSz9LI0srSztLNomXpZelnGWQZZhllGWeZZLGzTLPMsyyyrLJssmyz7LK4WfZZDlmOWU5ZzlkuWa5ZyHLL8sjyzPLO8snyzfLL/oFEMiI5kbxIQaQoUhIpiygiFZGaSF2kIdISaYt0RTSRnkhfZCAyFBmJjEUmIrbIVGQushBZiWxEtiI7EVdkL3IQOYqcRM4iF5GrCCI3kYfIU+Qt8hH5ivzEP5BERiInkZcoSBQlShJlCUWiIlGTqEs0JFoSbYmuhCbRk+hLDCSGEiOJscREwpaYSswlFhIriY3EVmIn4UrsJQ4SR4mTxFniInGVQOIm8ZB4SrwlPhJfiZ/0B5LJyORk8jIFmaJMSaYso8hUZGoydZmGTEumLdOV0WR6Mn2ZgcxQZiQzlpnI2DJTmbnMQmYls5HZyuxkXJm9zEHmKHOSOctcZK4yyNxkHjJPmbfMR+Yr85P/QAoZhZxCXqGgUFQoKZQVFIWKQk2hrtBQaCm0FboKmkJPoa8wUBgqjBTGChMFW2GqMFdYKKwUNgpbhZ2Cq7BXOCgcFU4KZ4WLwlUBhZvCQ+Gp8Fb4KHwVfsofqEqmSq5KvkqhSrFKqUq5ilKlUqVWpV6lUaVVpV2lW0Wr0qvSrzKoMqwyqjKuMqliV5lWmVdZVFlV2VTZVtlVcavsqxyqHKucqpyrXKpcq1DlVuVR5VnlXeVT5VvlV/0DqWRUcip5lYJKUaWkUlZRVCoqNZW6SkOlpdJW6apoKj2VvspAZagyUhmrTFRslanKXGWhslLZqGxVdiquyl7loHJUOamcVS4qVxVUbioPlafKW+Wj8lX5qX+gJpkmuSb5JoUmxSalJuUmSpNKk1qTepNGk1aTdpNuE61Jr0m/yaDJsMmoybjJpIndZNpk3mTRZNVk02TbZNfEbbJvcmhybHJqcm5yaXJtQpNbk0eTZ5N3k0+Tb5Nf8w/UIdMh1yHfodCh2KHUodxB6VDpUOtQ79Do0OrQ7tDtoHXodeh3GHQYdhh1GHeYdLA7TDvMOyw6rDpsOmw77Dq4HfYdDh2OHU4dzh0uHa4d6HDr8Ojw7PDu8Onw7fDr/IE0Mho5jbxGQaOoUdIoaygaFY2aRl2jodHSaGt0NTSNnkZfY6Ax1BhpjDUmGrbGVGOusdBYaWw0tho7DVdjr3HQOGqcNM4aF42rBho3jYfGU+Ot8dH4avy0P5BORienk9cp6BR1SjplHUWnolPTqes0dFo6bZ2ujqbT0+nrDHSGOiOdsc5Ex9aZ6sx1FjornY3OVmen4+rsdQ46R52TzlnnonPVQeem89B56rx1PjpfnZ/+BzLIGOQM8gYFg6JByaBsoBhUDGoGdYOGQcugbdA10Ax6Bn2DgcHQYGQwNpgY2AZTg7nBwmBlsDHYGuwMXIO9wcHgaHAyOBtcDK4GGNwMHgZPg7fBx+Br8DP+QCYZk5xJ3qRgUjQpmZRNFJOKSc2kbtIwaZm0TbommknPpG8yMBmajEzGJhMT22RqMjdZmKxMNiZbk52Ja7I3OZgcTU4mZ5OLydUEk5vJw+Rp8jb5mHxNfuYfyCJjkbPIWxQsihYli7KFYlGxqFnULRoWLYu2RddCs+hZ9C0GFkOLkcXYYmJhW0wt5hYLi5XFxmJrsbNwLfYWB4ujxcnibHGxuFpgcbN4WDwt3hYfi6/Fz/oD2WRscjZ5m4JN0aZkU7ZRbCo2NZu6TcOmZdO26dpoNj2bvs3AZmgzshnbTGxsm6nN3GZhs7LZ2Gxtdjauzd7mYHO0OdmcbS42VxtsbjYPm6fN2+Zj87X52X+gGZkZuRn5GYUZxRmlGeUZyozKjNqM+ozGjNaM9ozuDG1Gb0Z/xmDGcMZoxnjGZIY9YzpjPmMxYzVjM2M7YzfDnbGfcZhxnHGacZ5xmXGdwYzbjMeM54z3jM+M74zf7A+0JLMktyS/pLCkuKS0pLxEWVJZUltSX9JY0lrSXtJdoi3pLekvGSwZLhktGS+ZLLGXTJfMlyyWrJZslmyX7Ja4S/ZLDkuOS05LzksuS65LWHJb8ljyXPJe8lnyXfJb/oHWZNbk1uTXFNYU15TWlNcoaypramvqaxprWmvaa7prtDW9Nf01gzXDNaM14zWTNfaa6Zr5msWa1ZrNmu2a3Rp3zX7NYc1xzWnNec1lzXUNa25rHmuea95rPmu+a37rP5BDxiHnkHcoOBQdSg5lB8Wh4lBzqDs0HFoObYeug+bQc+g7DByGDiOHscPEwXaYOswdFg4rh43D1mHn4DrsHQ4OR4eTw9nh4nB1wOHm8HB4OrwdPg5fh5/zB3LJuORc8i4Fl6JLyaXsorhUXGoudZeGS8ul7dJ10Vx6Ln2XgcvQZeQydpm42C5Tl7nLwmXlsnHZuuxcXJe9y8Hl6HJyObtcXK4uuNxcHi5Pl7fLx+Xr8nP/QB4Zj5xH3qPgUfQoeZQ9FI+KR82j7tHwaHm0PboemkfPo+8x8Bh6jDzGHhMP22PqMfdYeKw8Nh5bj52H67H3OHgcPU4eZ4+Lx9UDj5vHw+Pp8fb4eHw9ft4fyCfjk/PJ+xR8ij4ln7KP4lPxqfnUfRo+LZ+2T9dH8+n59H0GPkOfkc/YZ+Jj+0x95j4Ln5XPxmfrs/NxffY+B5+jz8nn7HPxufrgc/N5+Dx93j4fn6/Pz/8DBWQCcgH5gEJAMaAUUA5QAioBtYB6QCOgFdAO6AZoAb2AfsAgYBgwChgHTALsgGnAPGARsArYBGwDdgFuwD7gEHAMOAWcAy4B1wACbgGPgGfAO+AT8A34BX+gkExILiQfUggphpRCyiFKSCWkFlIPaYS0Qtoh3RAtpBfSDxmEDENGIeOQSYgdMg2ZhyxCViGbkG3ILsQN2YccQo4hp5BzyCXkGkLILeQR8gx5h3xCviG/8A8EGchBHgpQhBKU/09eKlCDOjSgBW3o/l8N9KAPAxjCCMYw+V+8TGEOC1jBBraw+59d9nCAI5zgDBe48v9u8IAnvOEDX/j9/Y/Cncyd3J38ncKd4p3SnfId5U7lTu1O/U7jTutO+073jnand6d/Z3BneGd0Z3xncse+M70zv7O4s7qzubO9s7vj3tnfOdw53jndOd+53Lne4c7tzuPO8877zufO987v/gd6kXmRe5F/UXhRfFF6UX6hvKi8qL2ov2i8aL1ov+i+0F70XvRfDF4MX4xejF9MXtgvpi/mLxYvVi82L7Yvdi/cF/sXhxfHF6cX5xeXF9cXvLi9eLx4vni/+Lz4vvi9/kARmYhcRD6iEFGMKEWUI5SISkQtoh7RiGhFtCO6EVpEL6IfMYgYRowixhGTCDtiGjGPWESsIjYR24hdhBuxjzhEHCNOEeeIS8Q1gohbxCPiGfGO+ER8I37RHygmE5OLyccUYooxpZhyjBJTianF1GMaMa2Ydkw3RovpxfRjBjHDmFHMOGYSY8dMY+Yxi5hVzCZmG7OLcWP2MYeYY8wp5hxzibnGEHOLecQ8Y94xn5hvzC/+AyVkEnIJ+YRCQjGhlFBOUBIqCbWEekIjoZXQTugmaAm9hH7CIGGYMEoYJ0wS7IRpwjxhkbBK2CRsE3YJbsI+4ZBwTDglnBMuCdcEEm4Jj4Rnwjvhk/BN+CV/oJRMSi4ln1JIKaaUUsopSkolpZZST2mktFLaKd0ULaWX0k8ZpAxTRinjlEmKnTJNmacsUlYpm5Rtyi7FTdmnHFKOKaeUc8ol5ZpCyi3lkfJMead8Ur4pv5R/cahZl7MPXtsAAAAASUVORK5CYII=";

/// One step of the demo: what was sent, what came back, and what was expected.
async fn step(
    name: &str,
    expected: u16,
    request: reqwest::RequestBuilder,
) -> anyhow::Result<(bool, Value)> {
    let resp = request.send().await?;
    let status = resp.status().as_u16();
    let answer: Value = resp.json().await?;
    Ok((
        status == expected,
        json!({"step": name, "status": status, "expected": expected, "answer": answer}),
    ))
}

pub async fn run() -> anyhow::Result<ExitCode> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let until_stopped = move || {
        let mut stopped = stopped.clone();
        async move {
            let _ = stopped.wait_for(|s| *s).await;
        }
    };
    let sandbox = start_sandbox(until_stopped()).await?;
    // The gateway, on a database that disappears with the demo.
    let dir = tempfile::tempdir()?;
    let database = dir.path().join("demo.sqlite");
    let gateway = start_gateway(&sandbox, &database, until_stopped()).await?;
    let (all_as_expected, steps) = send_all(&gateway, &sandbox.handle).await?;
    let report = json!({
        "gateway": gateway.url,
        "sandbox": sandbox.url,
        "sent_as": gateway.sent_as,
        "steps": steps,
        "sandbox_received": sandbox.handle.messages(),
    });
    crate::output::print_line(serde_json::to_string_pretty(&report)?)?;
    let _ = stop.send(true);
    let _ = gateway.task.await;
    let _ = sandbox.task.await;
    Ok(if all_as_expected {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// The sandbox, serving in the background on an ephemeral loopback port.
struct RunningSandbox {
    handle: SandboxHandle,
    url: String,
    task: JoinHandle<Result<(), tiktok_dm_sandbox::Error>>,
}

/// The gateway, serving in the background, with the demo's API key and the
/// name of the sandbox account it sends as.
struct RunningGateway {
    url: String,
    key: IssuedKey,
    sent_as: String,
    task: JoinHandle<std::io::Result<()>>,
}

/// Starts the sandbox with the default seed, serving until `shutdown`.
async fn start_sandbox(
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<RunningSandbox> {
    let sandbox = Sandbox::new(Seed::default_seed()?)?;
    let handle = sandbox.handle();
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    let task = tokio::spawn(sandbox.run(listener, shutdown));
    Ok(RunningSandbox { handle, url, task })
}

/// Starts the gateway on a SQLite file at `database`, pointed at `sandbox`,
/// with the sandbox's alice stored as the account `demo` and an API key with a
/// daily limit of 3 sending as it; it serves until `shutdown`.
async fn start_gateway(
    sandbox: &RunningSandbox,
    database: &Path,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<RunningGateway> {
    let store = SqliteStore::open(&database.to_string_lossy()).await?;
    let vault = Vault::from_key(&rand::random());
    let alice = sandbox
        .handle
        .account("alice")
        .ok_or_else(|| anyhow::anyhow!("the default seed has no alice"))?;
    admin::put_account(&store, &vault, "demo", &alice.session, None, now_ms()).await?;
    let spec = KeySpec {
        name: "demo".into(),
        daily_limit: Some(3),
        monthly_limit: None,
        account: Some("demo".into()),
        ..KeySpec::default()
    };
    let (key, _) = admin::create_key(&store, spec, now_ms()).await?;
    let mut settings = Settings::new(Endpoints::sandbox(&sandbox.url)?);
    settings.wait_for_delivery = Duration::from_secs(10);
    let app = Application::build("127.0.0.1:0", settings, store, vault).await?;
    let url = format!("http://{}", app.local_addr()?);
    let task = tokio::spawn(app.run(shutdown));
    Ok(RunningGateway {
        url,
        key,
        sent_as: alice.name.clone(),
        task,
    })
}

/// Sends the demo's three requests through the gateway, into the seed's first
/// conversation. Returns whether every answer had the expected status, and
/// each step's report.
async fn send_all(
    gateway: &RunningGateway,
    handle: &SandboxHandle,
) -> anyhow::Result<(bool, Vec<Value>)> {
    let http = reqwest::Client::new();
    let send = || {
        http.post(format!("{}/v1/messages", gateway.url))
            .bearer_auth(gateway.key.reveal())
    };
    let conversation = &handle.seed().conversations[0];
    let ids = |text: &str| {
        json!({
            "conversation_id": conversation.conversation_id.as_str(),
            "conversation_short_id": conversation.conversation_short_id.to_string(),
            "text": text,
        })
    };
    let form = image_form(conversation)?;
    let mut all_as_expected = true;
    let mut steps = Vec::new();
    for (name, expected, request) in [
        (
            "a text (JSON)",
            200,
            send().json(&ids("Hello from the tiktok-dm demo 👋")),
        ),
        (
            "an image and its caption (multipart)",
            200,
            send().multipart(form),
        ),
        (
            "one more text: the key's daily limit of 3 is used up",
            429,
            send().json(&ids("over the limit")),
        ),
    ] {
        let (ok, report) = step(name, expected, request).await?;
        all_as_expected &= ok;
        steps.push(report);
    }
    Ok((all_as_expected, steps))
}

/// The image step's multipart body: the conversation, a caption and the demo
/// PNG, as the n8n node sends binary data.
fn image_form(conversation: &Conversation) -> anyhow::Result<reqwest::multipart::Form> {
    let png = base64::engine::general_purpose::STANDARD.decode(DEMO_PNG)?;
    Ok(reqwest::multipart::Form::new()
        .text("conversation_id", conversation.conversation_id.to_string())
        .text(
            "conversation_short_id",
            conversation.conversation_short_id.to_string(),
        )
        .text("text", "…and its caption")
        .part(
            "image",
            reqwest::multipart::Part::bytes(png)
                .file_name("demo.png")
                .mime_str("image/png")?,
        ))
}
