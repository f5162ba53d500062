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

use std::sync::Arc;

use adapters::Failure;
use adapters::gossuok::{Checker, Invalid, ValidCertificate};
use base64::Engine;
use chrono::{DateTime, Utc};
use contracts::procedure::{AuthorityDecidedSigned, DecisionRefusalReason, DecisionSigner};
use contracts::{Message, MessageType, decode};
use futures_util::future::BoxFuture;
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;

use hub_runtime::broker::Incoming;
use hub_runtime::engine::{Command, Service};

/// The decision gate's queue (short name).
pub const GATE_QUEUE: &str = "decision.gate";

/// The gate's queue and the authorities' signed decisions it takes from the bus.
pub fn gate_queue_spec() -> contracts::QueueSpec {
    contracts::QueueSpec::new(GATE_QUEUE, [AuthorityDecidedSigned::TYPE.to_string()])
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
    m: &AuthorityDecidedSigned,
) -> Result<(Vec<u8>, Vec<u8>, Vec<Vec<u8>>), (DecisionRefusalReason, String)> {
    if m.document.application_id != m.application_id {
        return Err((
            DecisionRefusalReason::MalformedDocument,
            "the document names another application".to_owned(),
        ));
    }
    if let Some(problem) = m.document.problem() {
        return Err((DecisionRefusalReason::MalformedDocument, problem.to_owned()));
    }
    let Some(signed) = &m.signature else {
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
    m: &AuthorityDecidedSigned,
    cert: &ValidCertificate,
    signature: &[u8],
) -> CheckOutcome {
    let authority = &m.document.authority_id;
    if cert.organization.as_deref() != Some(authority.as_str()) {
        return CheckOutcome::Refused {
            reason: DecisionRefusalReason::WrongAuthority,
            detail: format!(
                "the certificate {} is not {authority}'s (its organizationName is {:?})",
                cert.serial,
                cert.organization.as_deref().unwrap_or("")
            ),
        };
    }
    if let Err(invalid) = cert.verify_signature(&m.document.signed_bytes(), signature) {
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
    m: &AuthorityDecidedSigned,
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
/// forwards the decision and the finding to the procedure saga.
#[derive(Debug, Clone)]
pub struct DecisionGate {
    procedure_queue: String,
    checker: Option<Arc<Checker>>,
}

impl DecisionGate {
    /// The gate forwarding to the procedure saga's queue (full name); with no checker (no
    /// trusted root configured) every signed decision is refused as untrusted.
    pub fn new(procedure_queue: String, checker: Option<Arc<Checker>>) -> Self {
        Self {
            procedure_queue,
            checker,
        }
    }
}

impl Service for DecisionGate {
    type Prepared = DecisionChecked;

    fn name(&self) -> &'static str {
        "decision_gate"
    }

    fn prepare<'a>(
        &'a self,
        message: &'a Incoming,
    ) -> BoxFuture<'a, Result<DecisionChecked, Failure>> {
        Box::pin(async move {
            let t = message.metadata.message_type.as_str();
            if !AuthorityDecidedSigned::TYPE.matches(t) {
                return Err(Failure::invalid_input(format!(
                    "the decision gate does not take {t}"
                )));
            }
            let decided: AuthorityDecidedSigned = decode(t, &message.body)?;
            let check = check(self.checker.as_deref(), &decided, Utc::now()).await?;
            if let CheckOutcome::Refused { reason, .. } = &check {
                tracing::warn!(
                    application_id = %decided.application_id,
                    reason = reason.as_str(),
                    "signed decision refused"
                );
            }
            Ok(DecisionChecked {
                decided,
                sender: message.metadata.user_id.clone(),
                check,
            })
        })
    }

    fn apply<'a>(
        &'a self,
        _conn: &'a mut PgConnection,
        _message: &'a Incoming,
        checked: DecisionChecked,
    ) -> BoxFuture<'a, Result<Vec<Command>, Failure>> {
        Box::pin(async move {
            Ok(vec![
                Command::new(&checked)?.reply_to(&self.procedure_queue),
            ])
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
