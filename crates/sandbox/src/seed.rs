//! Seed data: the accounts and conversations a sandbox starts with.

use serde::{Deserialize, Serialize};
use tiktok_dm_proto::ids::{ConversationId, ConversationShortId, DeviceId, Uid};

use crate::error::Error;

/// One emulated TikTok account.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Account {
    /// A short name for humans ("alice").
    pub name: String,
    /// The user id.
    pub uid: Uid,
    /// The web device id ("wid") shown in the page hydration data.
    pub wid: DeviceId,
    /// The `sessionid` cookie value that logs this account in.
    pub session: String,
    /// The @handle.
    pub unique_id: String,
}

/// One 1:1 conversation between two seeded accounts.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Conversation {
    /// `0:1:<low uid>:<high uid>`.
    pub conversation_id: ConversationId,
    /// The server-issued short id.
    pub conversation_short_id: ConversationShortId,
    /// Inbox type reported for the conversation (0 normal, 3 message request).
    #[serde(default)]
    pub inbox_type: i32,
    /// A message request the receiver has not accepted: as on TikTok, the sender
    /// may send one message, and further sends get business code 7193.
    #[serde(default)]
    pub message_request: bool,
}

/// Everything a sandbox starts with.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Seed {
    /// Accounts.
    pub accounts: Vec<Account>,
    /// Conversations (both participants must be seeded accounts).
    pub conversations: Vec<Conversation>,
}

fn account(name: &str, n: i64) -> Result<Account, Error> {
    Ok(Account {
        name: name.to_owned(),
        uid: Uid::new(7_000_000_000_000_000_000 + n)?,
        wid: DeviceId::parse(&(7_100_000_000_000_000_000 + n).to_string())?,
        session: format!("sandbox-session-{name}"),
        unique_id: format!("{name}.sandbox"),
    })
}

impl Seed {
    /// Three accounts: alice talks with bob (an accepted conversation) and with
    /// carol (a message request carol has not accepted).
    ///
    /// # Errors
    /// None in practice; the constants are valid ids.
    pub fn default_seed() -> Result<Self, Error> {
        let alice = account("alice", 1)?;
        let bob = account("bob", 2)?;
        let carol = account("carol", 3)?;
        let conversations = vec![
            Conversation {
                conversation_id: ConversationId::one_to_one(alice.uid, bob.uid),
                conversation_short_id: ConversationShortId::new(7_200_000_000_000_000_001)?,
                inbox_type: 0,
                message_request: false,
            },
            Conversation {
                conversation_id: ConversationId::one_to_one(alice.uid, carol.uid),
                conversation_short_id: ConversationShortId::new(7_200_000_000_000_000_002)?,
                inbox_type: 3,
                message_request: true,
            },
        ];
        Ok(Self {
            accounts: vec![alice, bob, carol],
            conversations,
        })
    }

    /// Checks that every conversation's participants are seeded accounts and that
    /// ids and sessions are unique.
    ///
    /// # Errors
    /// [`Error::Seed`] naming the problem.
    pub fn validate(&self) -> Result<(), Error> {
        let mut sessions = std::collections::HashSet::new();
        for a in &self.accounts {
            if a.session.is_empty() || !sessions.insert(&a.session) {
                return Err(Error::Seed(format!(
                    "account {:?} has an empty or duplicate session",
                    a.name
                )));
            }
        }
        for c in &self.conversations {
            let Some((x, y)) = c.conversation_id.participants() else {
                return Err(Error::Seed(format!(
                    "conversation {} is not a 1:1 id",
                    c.conversation_id
                )));
            };
            for uid in [x, y] {
                if !self.accounts.iter().any(|a| a.uid == uid) {
                    return Err(Error::Seed(format!(
                        "conversation {} names unknown user {uid}",
                        c.conversation_id
                    )));
                }
            }
        }
        Ok(())
    }
}
