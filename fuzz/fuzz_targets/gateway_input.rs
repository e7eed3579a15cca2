//! What a caller of `POST /v1/messages` sends: a Content-Type (the case's first
//! line) and a body, JSON or a multipart form with text and image parts, images
//! as bytes, base64 or data URIs. Read and validated as the handler does; nothing
//! may panic, and every refusal is the caller's fault (a 4xx), never a 5xx.
//! The corpus is replayed by `crates/gateway/tests/api/fuzz_corpus.rs`.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use tiktok_dm_gateway::api::fuzzing::run_case;
use tokio::runtime::Runtime;

fn runtime() -> &'static Runtime {
    static RUNTIME: OnceLock<Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a current-thread runtime")
    })
}

fuzz_target!(|case: &[u8]| {
    if let Err(e) = runtime().block_on(run_case(case)) {
        assert!(
            e.status().is_client_error(),
            "{} ({}): {}",
            e.code.as_str(),
            e.status(),
            e.message
        );
    }
});
