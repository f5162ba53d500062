//! The personal cabinet on the portal asks the hub about accounts, request/reply over the
//! broker: each request carries `reply_to` (the portal's reply queue) and a `correlation_id`
//! (its own request id), and the answer, `cabinet.reply.v1`, comes back to that queue with the
//! same correlation.
//!
//! Answers say what the portal must show, and never whether an identifier exists to someone who
//! has not proved they hold it: a wrong password and an unknown identifier answer alike, and the
//! lock-out after repeated failures counts both.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::{Message, MessageType};

/// `cabinet.login.v1`: log in with the identifier and a password.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct LogIn {
    /// The identifier (identification number).
    #[schemars(pattern(crate::person::id_number_pattern()))]
    pub identifier: String,
    /// The password as typed.
    pub password: String,
}
masked_debug!(LogIn, "LogIn");
impl Message for LogIn {
    const TYPE: MessageType = MessageType::new("cabinet.login", 1);
}

/// `cabinet.change_password.v1`: replace the password (the temporary one at first login).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ChangePassword {
    /// The identifier.
    #[schemars(pattern(crate::person::id_number_pattern()))]
    pub identifier: String,
    /// The current password (the temporary one at first login).
    pub current_password: String,
    /// The new static password.
    pub new_password: String,
}
masked_debug!(ChangePassword, "ChangePassword");
impl Message for ChangePassword {
    const TYPE: MessageType = MessageType::new("cabinet.change_password", 1);
}

/// `cabinet.recover_password.v1`: the person lost the password; send a code to the account's
/// phone if the identifier and phone belong together.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct RecoverPassword {
    /// The identifier.
    #[schemars(pattern(crate::person::id_number_pattern()))]
    pub identifier: String,
    /// The phone the person says is theirs.
    #[schemars(pattern(crate::person::phone_pattern()))]
    pub phone: String,
}
masked_debug!(RecoverPassword, "RecoverPassword");
impl Message for RecoverPassword {
    const TYPE: MessageType = MessageType::new("cabinet.recover_password", 1);
}

/// `cabinet.complete_recovery.v1`: the code from the SMS and the new password.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct CompleteRecovery {
    /// The identifier.
    #[schemars(pattern(crate::person::id_number_pattern()))]
    pub identifier: String,
    /// The code from the SMS.
    pub code: String,
    /// The new static password.
    pub new_password: String,
}
masked_debug!(CompleteRecovery, "CompleteRecovery");
impl Message for CompleteRecovery {
    const TYPE: MessageType = MessageType::new("cabinet.complete_recovery", 1);
}

/// `cabinet.block.v1`: the person gives up the identifier (self-service block).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct BlockSelf {
    /// The identifier.
    #[schemars(pattern(crate::person::id_number_pattern()))]
    pub identifier: String,
    /// The password, to prove it is the holder.
    pub password: String,
}
masked_debug!(BlockSelf, "BlockSelf");
impl Message for BlockSelf {
    const TYPE: MessageType = MessageType::new("cabinet.block", 1);
}

/// `cabinet.unblock.v1`: the person who blocked the identifier (in the cabinet or at a desk)
/// takes it back: send a code to the phone the registry holds now, if the identifier is blocked
/// and the phone given is that one. Answered `code_sent_if_known` whatever the case, as a
/// recovery is.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct UnblockSelf {
    /// The identifier.
    #[schemars(pattern(crate::person::id_number_pattern()))]
    pub identifier: String,
    /// The phone the person says is theirs.
    #[schemars(pattern(crate::person::phone_pattern()))]
    pub phone: String,
}
masked_debug!(UnblockSelf, "UnblockSelf");
impl Message for UnblockSelf {
    const TYPE: MessageType = MessageType::new("cabinet.unblock", 1);
}

/// `cabinet.complete_unblock.v1`: the code from the SMS and a new static password; the
/// identifier is unblocked with it, all earlier history kept.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct CompleteUnblock {
    /// The identifier.
    #[schemars(pattern(crate::person::id_number_pattern()))]
    pub identifier: String,
    /// The code from the SMS.
    pub code: String,
    /// The new static password.
    pub new_password: String,
}
masked_debug!(CompleteUnblock, "CompleteUnblock");
impl Message for CompleteUnblock {
    const TYPE: MessageType = MessageType::new("cabinet.complete_unblock", 1);
}

/// `cabinet.logout.v1`: ends the session (the portal's "log out"). Answered `ok` whether or not
/// the session was still open.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct LogOut {
    /// The session to end.
    pub session_token: SessionToken,
}
masked_debug!(LogOut, "LogOut");
impl Message for LogOut {
    const TYPE: MessageType = MessageType::new("cabinet.logout", 1);
}

/// A session token: what a successful login answers, and what the portal then sends with every
/// application, withdrawal, receipt and complaint of that person. 256 random bits from the
/// operating system's CSPRNG, base64url without padding (43 characters); the hub keeps only its
/// SHA-256. Its `Debug` shows nothing of it.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(transparent)]
pub struct SessionToken(pub String);

impl SessionToken {
    /// The token's text, as the portal sends it.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for SessionToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionToken(..)")
    }
}

impl From<String> for SessionToken {
    fn from(s: String) -> Self {
        Self(s)
    }
}

/// What the portal must show.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum CabinetOutcome {
    /// Done: logged in (with the assurance level and the session), password changed, account
    /// blocked, logged out.
    Ok {
        /// `substantial` for the unique identifier (DOMAIN.md).
        assurance_level: String,
        /// The new session, on a login (password, e-mail or EDS) and an EDS registration;
        /// absent on every other answer.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        session_token: Option<SessionToken>,
    },
    /// The password is the temporary one: it must be replaced before anything else.
    MustChangePassword,
    /// The temporary password expired: a new one comes from a desk.
    TemporaryPasswordExpired,
    /// The identifier or the password is wrong (the portal cannot tell which, on purpose).
    WrongCredentials,
    /// The identifier is blocked; unblocking is in the cabinet (`cabinet.unblock.v1`) or by
    /// application at an issuance desk.
    Blocked,
    /// Too many failures: try again after `until`.
    LockedOut {
        /// When attempts are accepted again.
        until: DateTime<Utc>,
    },
    /// The new password breaks the rules.
    WeakPassword {
        /// What is wrong with it.
        problems: Vec<String>,
    },
    /// A recovery (or unblock) code went to the phone, if the identifier and phone belong
    /// together (and, for an unblock, the identifier is blocked).
    CodeSentIfKnown,
    /// The recovery (or unblock) code is wrong.
    WrongCode,
    /// There is no valid recovery (or unblock) code (expired, used up, or never sent).
    CodeExpired,
    /// The registration form breaks the rules.
    InvalidForm {
        /// What is wrong, one entry per problem (`email: ...`, `password: ...`).
        problems: Vec<String>,
    },
    /// Registration by e-mail: the activation link went to the address (or, if the address is
    /// registered already, a note saying so: the portal cannot tell which, on purpose).
    ActivationSent,
    /// The activation link is unknown, used, or expired: register again.
    ActivationInvalid,
    /// The e-mail account exists but its activation link was not followed yet.
    NotActivated,
    /// A challenge to sign with the EDS key: sign the base64-decoded `to_sign` and send it
    /// back with `nonce` before `expires_at`.
    EdsChallenge {
        /// The challenge's nonce (hex).
        nonce: String,
        /// The bytes to sign, base64.
        to_sign: String,
        /// When it stops being accepted.
        expires_at: DateTime<Utc>,
    },
    /// The EDS proof was refused; `reason` is one of `malformed`, `bad_signature`,
    /// `untrusted_chain`, `expired`, `not_yet_valid`, `revoked`, `wrong_key_usage`,
    /// `unsupported_algorithm`, `challenge_used` (a replayed one), `challenge_expired`,
    /// `challenge_unknown`.
    EdsRefused {
        /// Why.
        reason: String,
    },
    /// The certificate's status could not be learned (the CA is unreachable): nothing was
    /// decided; try again later.
    TryLater {
        /// What could not be checked.
        reason: String,
    },
    /// A valid EDS whose holder has no portal account: register by EDS first.
    NotRegistered,
}

/// `cabinet.reply.v1`: the answer to every cabinet request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct CabinetReply {
    /// The outcome.
    #[serde(flatten)]
    pub outcome: CabinetOutcome,
}
impl Message for CabinetReply {
    const TYPE: MessageType = MessageType::new("cabinet.reply", 1);
}
