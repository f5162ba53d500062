//! Registration on the portal and the logins that go with it (DOMAIN.md, "Using the portal",
//! steps 1 and 2), request/reply like the cabinet: each request carries `reply_to` and a
//! `correlation_id`, and the answer is a `cabinet.reply.v1`.
//!
//! - By e-mail: `registration.email.v1` (the form) -> an activation link by e-mail ->
//!   `registration.activate.v1` (the token from the link) -> an account at level `basic`;
//!   `cabinet.login_email.v1` logs in with the address and password.
//! - By EDS: `cabinet.eds_challenge.v1` gives a challenge (a nonce with its time, single use,
//!   short-lived); the person's key signs it; `registration.eds.v1` registers the certificate's
//!   holder (or links an account with the same identification number) at level `high`, and
//!   `cabinet.login_eds.v1` logs in at level `high`.
//!
//! Certificates travel as base64 DER; signatures as base64 of the 48-byte bign signature.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::sealed::Sealed;
use crate::{Message, MessageType};

/// `registration.email.v1`: the registration form.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct RegisterByEmail {
    /// The e-mail address (the login).
    pub email: String,
    /// The password as typed.
    pub password: String,
    /// Surname.
    pub surname: String,
    /// Given name.
    pub given_name: String,
}
masked_debug!(RegisterByEmail, "RegisterByEmail");
impl Message for RegisterByEmail {
    const TYPE: MessageType = MessageType::new("registration.email", 1);
}

/// `registration.activate.v1`: the token from the activation link.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ActivateEmail {
    /// The token.
    pub token: String,
}
masked_debug!(ActivateEmail, "ActivateEmail");
impl Message for ActivateEmail {
    const TYPE: MessageType = MessageType::new("registration.activate", 1);
}

/// `cabinet.login_email.v1`: log in with the e-mail address and password.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct LogInByEmail {
    /// The address.
    pub email: String,
    /// The password as typed.
    pub password: String,
}
masked_debug!(LogInByEmail, "LogInByEmail");
impl Message for LogInByEmail {
    const TYPE: MessageType = MessageType::new("cabinet.login_email", 1);
}

/// `cabinet.eds_challenge.v1`: asks for a challenge to sign with the EDS key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
pub struct RequestEdsChallenge {}
impl Message for RequestEdsChallenge {
    const TYPE: MessageType = MessageType::new("cabinet.eds_challenge", 1);
}

/// The signed answer to a challenge: the certificate, its chain, and the signature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct EdsProof {
    /// The holder's certificate, base64 DER.
    pub certificate: String,
    /// The intermediate certificates, base64 DER.
    #[serde(default)]
    pub chain: Vec<String>,
    /// The challenge's nonce, as the hub gave it (hex).
    pub nonce: String,
    /// The bign signature over the challenge's bytes, base64.
    pub signature: String,
}

/// `cabinet.login_eds.v1`: log in with the EDS.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct LogInByEds {
    /// The proof.
    #[serde(flatten)]
    pub proof: EdsProof,
}
impl Message for LogInByEds {
    const TYPE: MessageType = MessageType::new("cabinet.login_eds", 1);
}

/// `registration.eds.v1`: register (or link) with the EDS.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct RegisterByEds {
    /// The proof.
    #[serde(flatten)]
    pub proof: EdsProof,
}
impl Message for RegisterByEds {
    const TYPE: MessageType = MessageType::new("registration.eds", 1);
}

/// Why an e-mail is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum EmailPurpose {
    /// The activation link of a new registration.
    Activation,
    /// Someone registered an address that already has an account.
    AlreadyRegistered,
}

/// `email.send.v1`: send an e-mail (inside the hub, to the e-mail worker). The activation token
/// travels sealed; the worker opens it and puts it in the link.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct SendEmail {
    /// Why.
    pub purpose: EmailPurpose,
    /// The address.
    pub to: String,
    /// The addressee's name, for the greeting.
    pub name: String,
    /// The activation token, sealed (for `activation`).
    pub token: Option<Sealed>,
}
masked_debug!(SendEmail, "SendEmail");
impl Message for SendEmail {
    const TYPE: MessageType = MessageType::new("email.send", 1);
}
