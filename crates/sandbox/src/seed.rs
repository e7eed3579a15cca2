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

    /// The default seed plus `n` accounts `user-1` … `user-n` (sessions
    /// `sandbox-session-user-N`), each in an accepted conversation with bob, so
    /// load tests can drive many accounts at once.
    ///
    /// # Errors
    /// `n` so large that the ids leave their ranges.
    pub fn with_crowd(n: u32) -> Result<Self, Error> {
        let mut seed = Self::default_seed()?;
        let bob = seed.accounts[1].uid;
        for i in 1..=i64::from(n) {
            let user = account(&format!("user-{i}"), 1_000 + i)?;
            seed.conversations.push(Conversation {
                conversation_id: ConversationId::one_to_one(user.uid, bob),
                conversation_short_id: ConversationShortId::new(7_300_000_000_000_000_000 + i)?,
                inbox_type: 0,
                message_request: false,
            });
            seed.accounts.push(user);
        }
        Ok(seed)
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

#[cfg(test)]
mod crowd_tests {
    use super::*;

    #[test]
    fn a_crowd_is_valid_with_one_conversation_per_user() {
        let seed = Seed::with_crowd(1_000).unwrap();
        seed.validate().unwrap();
        assert_eq!(seed.accounts.len(), 1_003);
        assert_eq!(seed.conversations.len(), 1_002);
        let last = &seed.accounts[1_002];
        assert_eq!(last.session, "sandbox-session-user-1000");
        assert!(
            seed.conversations[1_001]
                .conversation_id
                .participants()
                .is_some_and(|(a, b)| a == last.uid || b == last.uid)
        );
    }
}
