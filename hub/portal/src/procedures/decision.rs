//! Signed decisions: the hub verifies an authority's decision before the person sees it.
//!
//! An authority decides with `authority.decided.v2`: a [`DecisionDocument`] (application,
//! authority, number, date, verdict, text), its bign signature over belt-hash of the document's
//! canonical bytes ([`DecisionDocument::signed_bytes`]) and the signer's certificate with its
//! chain. Checking it takes I/O (OCSP, CRLs at the certificate's own addresses), which a saga's
//! transition may not do, so the decision goes first to the decision gate ([`DecisionGate`],
//! queue [`GATE_QUEUE`]), which checks it in its `prepare` phase with the same
//! [`Checker`] as EDS logins (`HUB_EDS_TRUSTED_ROOTS`, `HUB_GOSSUOK_*`), and forwards the
//! outcome to the procedure saga as the hub's own `procedure.decision_checked.v1` (through the
//! default exchange, never the bus; the saga refuses it from the bus). The saga, which knows
//! the application's authority, then either records the decision and tells the person
//! (`procedure.decided.v1` with the document, the signature and the signer) or answers the
//! authority `authority.decision_refused.v1` and keeps waiting.
//!
//! The rules, in order (the first that fails is the reason):
//!
//! 1. the document names the message's application and keeps the canonical layout
//!    (`malformed_document`);
//! 2. it is signed (`unsigned`), with readable base64 (`malformed_signature`);
//! 3. the certificate chains to a trusted root, is within its validity, may sign
//!    (`digitalSignature`, which the validator demands of every leaf) and is not revoked
//!    (`untrusted_chain`, `certificate_expired`, `wrong_key_usage`, `revoked`); when its
//!    revocation status cannot be told (no CA answers) the message is retried, never accepted;
//! 4. the certificate is the authority's: its subject's `organizationName` is the authority id
//!    the document names (`wrong_authority`), and the saga checks that this is the authority
//!    that owns the application (`wrong_authority` too);
//! 5. the signature verifies under the certificate's key (`bad_signature`).
//!
//! The certificate is checked at the time the hub receives the decision, not at the document's
//! date: the hub has no trusted time stamp to believe an earlier one.
//!
//! A decision on a complaint (`authority.complaint_decided.v2`, a
//! [`contracts::procedure::ComplaintDecisionDocument`] with its own canonical bytes) goes
//! through the same gate and the same rules; the gate forwards it to the complaint saga as
//! `complaint.decision_checked.v1`, which checks that the signer is the body that heard the
//! complaint and answers a refusal with `authority.complaint_decision_refused.v1`.

use std::sync::Arc;

use adapters::Failure;
use adapters::gossuok::{Checker, Invalid, ValidCertificate};
use base64::Engine;
use chrono::{DateTime, Utc};
use contracts::procedure::{
    AuthorityComplaintDecidedSigned, AuthorityDecidedSigned, DecisionRefusalReason,
    DecisionSignature, DecisionSigner,
};
use contracts::{Message, MessageType, decode};
use futures_util::future::BoxFuture;
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;

use hub_runtime::broker::Incoming;
use hub_runtime::engine::{Command, Service};

/// The decision gate's queue (short name).
pub const GATE_QUEUE: &str = "decision.gate";

/// The gate's queue and the authorities' signed decisions it takes from the bus: on
/// applications and on complaints.
pub fn gate_queue_spec() -> contracts::QueueSpec {
    contracts::QueueSpec::new(
        GATE_QUEUE,
        [
            AuthorityDecidedSigned::TYPE.to_string(),
            AuthorityComplaintDecidedSigned::TYPE.to_string(),
        ],
    )
}

/// A signed decision the gate checks: on an application (`authority.decided.v2`) or on a
/// complaint (`authority.complaint_decided.v2`). Each has its own canonical bytes.
pub trait SignedDocument {
    /// What breaks the document's layout, or makes it name another case than the message's.
    fn layout_problem(&self) -> Option<String>;
    /// The signature, if any.
    fn signature(&self) -> Option<&DecisionSignature>;
    /// The authority the document names as the deciding one.
    fn authority_id(&self) -> &str;
    /// The canonical bytes signed.
    fn signed_bytes(&self) -> Vec<u8>;
}

impl SignedDocument for AuthorityDecidedSigned {
    fn layout_problem(&self) -> Option<String> {
        if self.document.application_id != self.application_id {
            return Some("the document names another application".to_owned());
        }
        self.document.problem().map(str::to_owned)
    }

    fn signature(&self) -> Option<&DecisionSignature> {
        self.signature.as_ref()
    }

    fn authority_id(&self) -> &str {
        &self.document.authority_id
    }

    fn signed_bytes(&self) -> Vec<u8> {
        self.document.signed_bytes()
    }
}

impl SignedDocument for AuthorityComplaintDecidedSigned {
    fn layout_problem(&self) -> Option<String> {
        if self.document.complaint_id != self.complaint_id {
            return Some("the document names another complaint".to_owned());
        }
        self.document.problem().map(str::to_owned)
    }

    fn signature(&self) -> Option<&DecisionSignature> {
        self.signature.as_ref()
    }

    fn authority_id(&self) -> &str {
        &self.document.authority_id
    }

    fn signed_bytes(&self) -> Vec<u8> {
        self.document.signed_bytes()
    }
}

/// What the gate found of a signed decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum CheckOutcome {
    /// Signed by a valid certificate of the organisation the document names.
    Verified {
        /// Who signed.
        signer: DecisionSigner,
    },
    /// Refused: the authority is told why.
    Refused {
        /// The rule.
        reason: DecisionRefusalReason,
        /// What failed, in words.
        detail: String,
    },
}

/// `procedure.decision_checked.v1`: the hub's own message, from the decision gate to the
/// procedure saga: the authority's decision and what the gate found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DecisionChecked {
    /// The decision as the authority sent it.
    pub decided: AuthorityDecidedSigned,
    /// The broker-checked `user_id` the authority's message carried: the saga checks it is the
    /// owning authority's, as for any message of an authority.
    pub sender: Option<String>,
    /// The gate's finding.
    pub check: CheckOutcome,
}

impl Message for DecisionChecked {
    const TYPE: MessageType = MessageType::new("procedure.decision_checked", 1);
}

/// `complaint.decision_checked.v1`: the hub's own message, from the decision gate to the
/// complaint saga: the deciding body's signed decision on a complaint and what the gate found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ComplaintDecisionChecked {
    /// The decision as the body sent it.
    pub decided: AuthorityComplaintDecidedSigned,
    /// The broker-checked `user_id` the body's message carried (the saga checks it).
    pub sender: Option<String>,
    /// The gate's finding.
    pub check: CheckOutcome,
}

impl Message for ComplaintDecisionChecked {
    const TYPE: MessageType = MessageType::new("complaint.decision_checked", 1);
}

/// What the gate forwards: a checked decision, to the saga it concerns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Checked {
    /// On an application, to the procedure saga.
    Application(DecisionChecked),
    /// On a complaint, to the complaint saga.
    Complaint(ComplaintDecisionChecked),
}

/// The refusal reason for a certificate the checker refused.
pub fn reason_of(invalid: &Invalid) -> DecisionRefusalReason {
    match invalid {
        Invalid::Malformed(_) => DecisionRefusalReason::MalformedSignature,
        Invalid::BadSignature { which } if which == "signed message" => {
            DecisionRefusalReason::BadSignature
        }
        Invalid::BadSignature { .. } | Invalid::UntrustedChain(_) => {
            DecisionRefusalReason::UntrustedChain
        }
        Invalid::Expired { .. } | Invalid::NotYetValid { .. } => {
            DecisionRefusalReason::CertificateExpired
        }
        Invalid::Revoked { .. } => DecisionRefusalReason::Revoked,
        Invalid::WrongKeyUsage(_) | Invalid::UnsupportedAlgorithm(_) => {
            DecisionRefusalReason::WrongKeyUsage
        }
        // Neither happens for a certificate check (the first is retried, the second is a
        // login challenge's): refused as untrusted rather than let through.
        Invalid::StatusUnknown(_) | Invalid::ChallengeExpired { .. } => {
            DecisionRefusalReason::UntrustedChain
        }
    }
}

/// The checks that need no certificate: the document's layout and the signature's presence
/// and encoding. Returns the signature, the certificate and the chain, decoded.
#[allow(clippy::type_complexity)]
pub fn unpack(
    m: &impl SignedDocument,
) -> Result<(Vec<u8>, Vec<u8>, Vec<Vec<u8>>), (DecisionRefusalReason, String)> {
    if let Some(problem) = m.layout_problem() {
        return Err((DecisionRefusalReason::MalformedDocument, problem));
    }
    let Some(signed) = m.signature() else {
        return Err((
            DecisionRefusalReason::Unsigned,
            "the decision carries no signature".to_owned(),
        ));
    };
    let b64 = base64::engine::general_purpose::STANDARD;
    let bad = |what: &str| {
        (
            DecisionRefusalReason::MalformedSignature,
            format!("the {what} is not base64"),
        )
    };
    let signature = b64
        .decode(&signed.signature)
        .map_err(|_| bad("signature"))?;
    let certificate = b64
        .decode(&signed.certificate)
        .map_err(|_| bad("certificate"))?;
    let chain = signed
        .chain
        .iter()
        .map(|c| b64.decode(c).map_err(|_| bad("chain")))
        .collect::<Result<Vec<_>, _>>()?;
    Ok((signature, certificate, chain))
}

/// The signer as the cabinet shows them, from a verified certificate.
fn signer_of(cert: &ValidCertificate, organization: &str) -> DecisionSigner {
    let mut name = vec![cert.surname.as_str(), cert.given_name.as_str()];
    if let Some(p) = cert.patronymic.as_deref() {
        name.push(p);
    }
    DecisionSigner {
        name: name.join(" "),
        organization: organization.to_owned(),
        certificate_serial: cert.serial.clone(),
        issuer: cert.issuer.clone(),
    }
}

/// The checks of a certificate that passed the path: it is the organisation's, and it signed
/// the document.
pub fn check_signed_by(
    m: &impl SignedDocument,
    cert: &ValidCertificate,
    signature: &[u8],
) -> CheckOutcome {
    let authority = m.authority_id();
    if cert.organization.as_deref() != Some(authority) {
        return CheckOutcome::Refused {
            reason: DecisionRefusalReason::WrongAuthority,
            detail: format!(
                "the certificate {} is not {authority}'s (its organizationName is {:?})",
                cert.serial,
                cert.organization.as_deref().unwrap_or("")
            ),
        };
    }
    if let Err(invalid) = cert.verify_signature(&m.signed_bytes(), signature) {
        return CheckOutcome::Refused {
            reason: DecisionRefusalReason::BadSignature,
            detail: invalid.to_string(),
        };
    }
    CheckOutcome::Verified {
        signer: signer_of(cert, authority),
    }
}

/// Checks a signed decision at `now` (see the module for the rules). Errors: transient when
/// the certificate's revocation status cannot be told now (retried, never accepted).
pub async fn check(
    checker: Option<&Checker>,
    m: &impl SignedDocument,
    now: DateTime<Utc>,
) -> Result<CheckOutcome, Failure> {
    let (signature, certificate, chain) = match unpack(m) {
        Ok(parts) => parts,
        Err((reason, detail)) => return Ok(CheckOutcome::Refused { reason, detail }),
    };
    let Some(checker) = checker else {
        return Ok(CheckOutcome::Refused {
            reason: DecisionRefusalReason::UntrustedChain,
            detail: "the hub trusts no EDS root (HUB_EDS_TRUSTED_ROOTS)".to_owned(),
        });
    };
    let cert = match checker.check(&certificate, &chain, now).await {
        Ok(cert) => cert,
        Err(invalid) if invalid.is_transient() => {
            return Err(Failure::transient(format!(
                "the decision's certificate cannot be checked now: {invalid}"
            )));
        }
        Err(invalid) => {
            return Ok(CheckOutcome::Refused {
                reason: reason_of(&invalid),
                detail: invalid.to_string(),
            });
        }
    };
    Ok(check_signed_by(m, &cert, &signature))
}

/// The decision gate: checks each signed decision (with I/O, before any transaction) and
/// forwards the decision and the finding to the saga it concerns: the procedure saga for an
/// application's, the complaint saga for a complaint's.
#[derive(Debug, Clone)]
pub struct DecisionGate {
    procedure_queue: String,
    complaint_queue: String,
    checker: Option<Arc<Checker>>,
}

impl DecisionGate {
    /// The gate forwarding to the procedure and complaint sagas' queues (full names); with no
    /// checker (no trusted root configured) every signed decision is refused as untrusted.
    pub fn new(
        procedure_queue: String,
        complaint_queue: String,
        checker: Option<Arc<Checker>>,
    ) -> Self {
        Self {
            procedure_queue,
            complaint_queue,
            checker,
        }
    }
}

/// Logs a refusal: the case's id and the reason, nothing of the document.
fn log_refusal(kind: &str, id: uuid::Uuid, check: &CheckOutcome) {
    if let CheckOutcome::Refused { reason, .. } = check {
        tracing::warn!(%kind, %id, reason = reason.as_str(), "signed decision refused");
    }
}

impl Service for DecisionGate {
    type Prepared = Checked;

    fn name(&self) -> &'static str {
        "decision_gate"
    }

    fn prepare<'a>(&'a self, message: &'a Incoming) -> BoxFuture<'a, Result<Checked, Failure>> {
        Box::pin(async move {
            let t = message.metadata.message_type.as_str();
            let sender = message.metadata.user_id.clone();
            let checker = self.checker.as_deref();
            if AuthorityDecidedSigned::TYPE.matches(t) {
                let decided: AuthorityDecidedSigned = decode(t, &message.body)?;
                let check = check(checker, &decided, Utc::now()).await?;
                log_refusal("application", decided.application_id, &check);
                Ok(Checked::Application(DecisionChecked {
                    decided,
                    sender,
                    check,
                }))
            } else if AuthorityComplaintDecidedSigned::TYPE.matches(t) {
                let decided: AuthorityComplaintDecidedSigned = decode(t, &message.body)?;
                let check = check(checker, &decided, Utc::now()).await?;
                log_refusal("complaint", decided.complaint_id, &check);
                Ok(Checked::Complaint(ComplaintDecisionChecked {
                    decided,
                    sender,
                    check,
                }))
            } else {
                Err(Failure::invalid_input(format!(
                    "the decision gate does not take {t}"
                )))
            }
        })
    }

    fn apply<'a>(
        &'a self,
        _conn: &'a mut PgConnection,
        _message: &'a Incoming,
        checked: Checked,
    ) -> BoxFuture<'a, Result<Vec<Command>, Failure>> {
        Box::pin(async move {
            Ok(vec![match &checked {
                Checked::Application(c) => Command::new(c)?.reply_to(&self.procedure_queue),
                Checked::Complaint(c) => Command::new(c)?.reply_to(&self.complaint_queue),
            }])
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveDate;
    use contracts::procedure::{DecisionDocument, DecisionSignature, Verdict};
    use uuid::Uuid;

    fn decided(signature: Option<DecisionSignature>) -> AuthorityDecidedSigned {
        let id = Uuid::from_u128(7);
        AuthorityDecidedSigned {
            application_id: id,
            document: DecisionDocument {
                application_id: id,
                authority_id: "mns".to_owned(),
                number: "R-1".to_owned(),
                date: NaiveDate::from_ymd_opt(2026, 12, 7).expect("a day"),
                verdict: Verdict::Granted,
                text: "Granted.".to_owned(),
            },
            signature,
            decided_at: Utc::now(),
        }
    }

    #[test]
    fn an_unsigned_or_unreadable_decision_is_refused_before_any_certificate_check() {
        let refused = |m: &AuthorityDecidedSigned| unpack(m).err().map(|(r, _)| r);
        assert_eq!(
            refused(&decided(None)),
            Some(DecisionRefusalReason::Unsigned)
        );
        let garbled = DecisionSignature {
            signature: "not base64!".to_owned(),
            certificate: "AAAA".to_owned(),
            chain: vec![],
        };
        assert_eq!(
            refused(&decided(Some(garbled.clone()))),
            Some(DecisionRefusalReason::MalformedSignature)
        );
        let mut other = decided(Some(garbled));
        other.document.application_id = Uuid::from_u128(8);
        assert_eq!(
            refused(&other),
            Some(DecisionRefusalReason::MalformedDocument)
        );
    }

    #[test]
    fn the_checkers_refusals_map_to_reasons_the_authority_can_act_on() {
        let signed = Invalid::BadSignature {
            which: "signed message".to_owned(),
        };
        assert_eq!(reason_of(&signed), DecisionRefusalReason::BadSignature);
        let ca = Invalid::BadSignature {
            which: "leaf certificate".to_owned(),
        };
        assert_eq!(reason_of(&ca), DecisionRefusalReason::UntrustedChain);
        let revoked = Invalid::Revoked {
            serial: "0a".to_owned(),
            revoked_at: Utc::now(),
            reason: "key_compromise".to_owned(),
        };
        assert_eq!(reason_of(&revoked), DecisionRefusalReason::Revoked);
        assert_eq!(
            reason_of(&Invalid::WrongKeyUsage("x".to_owned())),
            DecisionRefusalReason::WrongKeyUsage
        );
    }
}
