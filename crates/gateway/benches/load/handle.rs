//! A running gateway as the driver sees it: its address, the key to send
//! with, and the body of the sends the latency runs make.

use serde_json::Value;

pub struct Gateway {
    pub http: reqwest::Client,
    pub url: String,
    pub key: String,
    pub body: Value,
}

impl Gateway {
    /// One send; a status outside `expected` stops the run with the answer's
    /// body, so a failure under load says what it was. Answers the status.
    pub async fn send(
        &self,
        session: &str,
        body: &Value,
        asynchronous: bool,
        expected: &[u16],
    ) -> u16 {
        let mut req = self
            .http
            .post(format!("{}/v1/messages", self.url))
            .bearer_auth(&self.key)
            .header("x-tiktok-session", session)
            .json(body);
        if asynchronous {
            req = req.header("prefer", "respond-async");
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let answer = resp.bytes().await.unwrap_or_default();
        assert!(
            expected.contains(&status),
            "gateway answered {status}: {}",
            String::from_utf8_lossy(&answer)
        );
        status
    }

    /// The outbox depth `/readyz` shows (the store's count, at most 1 s old).
    pub async fn depth(&self) -> u64 {
        let v: Value = self
            .http
            .get(format!("{}/readyz", self.url))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        v["outbox_depth"].as_u64().unwrap()
    }

    /// The value of the unlabelled metric `name` (`tiktok_dm_…`), as `/metrics`
    /// shows it, or "?".
    pub async fn metric(&self, name: &str) -> String {
        let metrics = self
            .http
            .get(format!("{}/metrics", self.url))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
            .unwrap_or("?")
            .to_owned()
    }
}
