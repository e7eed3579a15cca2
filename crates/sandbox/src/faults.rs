//! Scripted faults. Each fault fires for a number of matching requests (or until
//! cleared) and is set through a named helper on [`SandboxHandle`](crate::SandboxHandle)
//! or, for users, `POST /_sandbox/faults`.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// One kind of misbehaviour.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "fault", rename_all = "snake_case")]
pub enum Fault {
    /// WS IM requests are read and ignored: not processed, never answered.
    WsUnanswered,
    /// Sends are processed and stored, but the reply is lost (WS: never sent;
    /// HTTP: the response never comes).
    DropAcks,
    /// Replies are sent after a delay.
    DelayAcks {
        /// The delay in milliseconds.
        delay_ms: u64,
    },
    /// Sends (cmd 100) are taken only after a delay: a slow uplink or a busy
    /// server. The sandbox stamps, stores and answers each when the delay is
    /// over; on a WebSocket, the socket's later frames wait behind it.
    DelaySends {
        /// The delay in milliseconds.
        delay_ms: u64,
    },
    /// The server closes the WebSocket when the next IM request arrives,
    /// without processing it.
    CloseSocket,
    /// `"hi"` heartbeats are not answered (for idle-detection tests).
    MuteHeartbeats,
    /// WebSocket handshakes are refused with HTTP 503.
    RefuseHandshake,
    /// IM requests are answered with status_code 1 (INVALID_TOKEN), and
    /// handshakes are refused as for an unknown session.
    InvalidSession,
    /// IM requests are answered with the gateway rejection 200001.
    GatewayRejection,
    /// Sends are refused with business code 7193 (message request limit).
    MessageRequestLimit,
    /// Sends are refused with business code 7180 (sending too fast).
    RateLimit,
    /// IM requests are answered with status_code 6 (SERVER_ERR).
    ServerError,
    /// The upload credentials call (cmd 2059) is refused (status_code 11).
    RejectCredentials,
    /// The storage node reports a CRC-32 mismatch.
    CrcMismatch,
    /// The storage node answers 503.
    StorageDown,
    /// ImageX Commit answers 500.
    CommitFailure,
    /// ImageX Apply or Commit answers 403 SignatureDoesNotMatch.
    SignatureMismatch,
    /// ImageX Apply names `host` (a bare host or a URL) as the upload host
    /// instead of the sandbox itself: a storage node a client must not follow.
    UploadHost {
        /// The host Apply names.
        host: String,
    },
    /// ImageX Apply names a store URI, and a part upload's init an upload id,
    /// holding characters a URL must escape (`?`, `#`, `&`, `%`, a space); the
    /// storage node serves them only when they arrive escaped.
    OddUploadNames,
    /// ImageX Apply's answer is padded with spaces to `bytes` bytes (still
    /// valid JSON; at most 64 MiB).
    LargeUploadAnswer {
        /// The answer's size.
        bytes: u64,
    },
    /// Pushes (cmd 500, 501, 510, 705) to every socket of the seeded account
    /// named `account` are withheld; the messages are still stored, so
    /// history (cmd 301) and the inbox (cmd 203) have them. Each push
    /// addressed to the account (the echo of its own sends too) uses one
    /// firing.
    DropPushes {
        /// The account's seed name ("alice").
        account: String,
    },
    /// The HTTP IM routes answer with a bare HTTP status (e.g. 502).
    HttpStatus {
        /// The HTTP status to return.
        status: u16,
    },
}

/// A fault with how many more times it fires (`None`: until cleared).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScriptedFault {
    /// The fault.
    #[serde(flatten)]
    pub fault: Fault,
    /// Remaining firings; absent means until cleared.
    #[serde(default)]
    pub times: Option<u32>,
}

/// The faults in force, in the order they were added.
#[derive(Debug, Default)]
pub(crate) struct Faults {
    active: Vec<ScriptedFault>,
}

impl Faults {
    pub(crate) fn add(&mut self, fault: ScriptedFault) {
        if fault.times != Some(0) {
            self.active.push(fault);
        }
    }

    pub(crate) fn clear(&mut self) {
        self.active.clear();
    }

    pub(crate) fn list(&self) -> Vec<ScriptedFault> {
        self.active.clone()
    }

    /// Whether a fault that `matches` is active.
    pub(crate) fn any(&self, matches: impl Fn(&Fault) -> bool) -> bool {
        self.active.iter().any(|f| matches(&f.fault))
    }

    /// Fires the first active fault that `matches`, consuming one use.
    pub(crate) fn take(&mut self, matches: impl Fn(&Fault) -> bool) -> Option<Fault> {
        let index = self.active.iter().position(|f| matches(&f.fault))?;
        let entry = &mut self.active[index];
        let fault = entry.fault.clone();
        if let Some(n) = entry.times.as_mut() {
            *n -= 1;
            if *n == 0 {
                self.active.remove(index);
            }
        }
        Some(fault)
    }
}

impl Fault {
    pub(crate) fn delay(&self) -> Option<Duration> {
        match self {
            Self::DelayAcks { delay_ms } | Self::DelaySends { delay_ms } => {
                Some(Duration::from_millis(*delay_ms))
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_counted_fault_fires_that_many_times_then_disappears() {
        let mut faults = Faults::default();
        faults.add(ScriptedFault {
            fault: Fault::DropAcks,
            times: Some(2),
        });
        assert_eq!(
            faults.take(|f| *f == Fault::DropAcks),
            Some(Fault::DropAcks)
        );
        assert_eq!(
            faults.take(|f| *f == Fault::DropAcks),
            Some(Fault::DropAcks)
        );
        assert_eq!(faults.take(|f| *f == Fault::DropAcks), None);
    }

    #[test]
    fn faults_parse_from_the_json_users_post() {
        let f: ScriptedFault =
            serde_json::from_str(r#"{"fault":"delay_acks","delay_ms":250,"times":1}"#).unwrap();
        assert_eq!(
            f,
            ScriptedFault {
                fault: Fault::DelayAcks { delay_ms: 250 },
                times: Some(1)
            }
        );
        let f: ScriptedFault =
            serde_json::from_str(r#"{"fault":"delay_sends","delay_ms":600}"#).unwrap();
        assert_eq!(f.fault, Fault::DelaySends { delay_ms: 600 });
        assert_eq!(f.fault.delay(), Some(Duration::from_millis(600)));
        let f: ScriptedFault =
            serde_json::from_str(r#"{"fault":"message_request_limit"}"#).unwrap();
        assert_eq!(f.times, None);
        let f: ScriptedFault =
            serde_json::from_str(r#"{"fault":"drop_pushes","account":"alice","times":2}"#).unwrap();
        assert_eq!(
            f.fault,
            Fault::DropPushes {
                account: "alice".into()
            }
        );
    }
}
