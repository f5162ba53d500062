//! How a simulated authority signs its decisions (`authority.decided.v2`) and its decisions on
//! complaints (`authority.complaint_decided.v2`): an official's certificate issued by the
//! GosSUOK simulator with the authority's id as its subject's `organizationName`, and a bign
//! signature over belt-hash of the decision's canonical bytes, made by the GosSUOK simulator's
//! key token: over HTTP (`POST /sim/certificates/{serial}/sign`, [`DecisionSigning::issue`]) or,
//! for a simulator in the same process as GosSUOK, in-process
//! ([`DecisionSigning::in_process`]; the HTTP back-office does so).
//!
//! The canonical bytes are written here again, from the README, as an agency would: UTF-8
//! lines joined by `\n`, `by.portal.decision.v1`, the application id, the authority id, the
//! decision's number, its date (`YYYY-MM-DD`), the verdict (`granted` / `refused`), then the
//! text as is; for a complaint `by.portal.complaint_decision.v1`, the complaint id, the
//! authority id, the number, the date, the verdict (`upheld`, `dismissed`, ...), the text.
//!
//! A fault switch ([`DecisionSigning::set_fault`]) makes the next decisions unsigned or badly
//! signed, for tests and the demo; the refusals the hub answers (`authority.decision_refused.v1`)
//! are kept ([`DecisionSigning::refusals`]).

use std::sync::Mutex;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Value, json};
use url::Url;
use uuid::Uuid;

use crate::gossuok::KeyTokens;

/// What the authority does wrong when signing, on purpose.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SigningFault {
    /// Nothing: a proper signature.
    #[default]
    None,
    /// No signature at all.
    Unsigned,
    /// A signature that does not verify (a byte of it changed).
    BadSignature,
}

/// A refusal the hub answered, as the authority received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The application.
    pub application_id: Uuid,
    /// The hub's reason code (`bad_signature`, `revoked`, ...).
    pub reason: String,
    /// The hub's words.
    pub detail: String,
}

/// A refusal of a decision on a complaint (`authority.complaint_decision_refused.v1`), as the
/// authority received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComplaintRefusal {
    /// The complaint.
    pub complaint_id: Uuid,
    /// The hub's reason code.
    pub reason: String,
    /// The hub's words.
    pub detail: String,
}

/// The most refusals of each kind an official's certificate keeps; the oldest go first.
pub const MAX_REFUSALS: usize = 10_000;

/// A list that keeps its newest [`MAX_REFUSALS`].
trait PushBounded<T> {
    fn push_bounded(&mut self, item: T);
}

impl<T> PushBounded<T> for Vec<T> {
    fn push_bounded(&mut self, item: T) {
        if self.len() >= MAX_REFUSALS {
            let excess = self.len() + 1 - MAX_REFUSALS;
            self.drain(..excess);
        }
        self.push(item);
    }
}

/// Where the official's key is.
#[derive(Debug)]
enum KeyToken {
    /// At the GosSUOK simulator, reached over HTTP.
    Http {
        gossuok_url: Url,
        http: reqwest::Client,
    },
    /// At the GosSUOK simulator of this process.
    InProcess(KeyTokens),
}

/// An official's certificate and the way to sign with its key.
#[derive(Debug)]
pub struct DecisionSigning {
    key: KeyToken,
    /// The certificate's serial (lowercase hex).
    pub serial: String,
    certificate: String,
    chain: Vec<String>,
    fault: Mutex<SigningFault>,
    refusals: Mutex<Vec<Refusal>>,
    complaint_refusals: Mutex<Vec<ComplaintRefusal>>,
}

#[derive(Debug, Deserialize)]
struct Issued {
    serial: String,
    certificate: String,
    chain: Vec<String>,
}

#[derive(Debug, Deserialize)]
struct Signed {
    signature: String,
}

impl DecisionSigning {
    /// Asks the GosSUOK simulator at `gossuok_url` for a certificate of the person
    /// `identification_number` (in its population) signing for `organization` (an authority's
    /// catalogue id).
    ///
    /// Errors: the simulator does not answer, or refuses.
    pub async fn issue(
        http: &reqwest::Client,
        gossuok_url: &Url,
        identification_number: &str,
        organization: &str,
    ) -> anyhow::Result<DecisionSigning> {
        let issued: Issued = http
            .post(gossuok_url.join("sim/certificates")?)
            .json(&json!({
                "identification_number": identification_number,
                "organization": organization,
            }))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        let key = KeyToken::Http {
            gossuok_url: gossuok_url.clone(),
            http: http.clone(),
        };
        Ok(Self::with(
            key,
            issued.serial,
            issued.certificate,
            issued.chain,
        ))
    }

    /// A certificate for `organization` (an authority's catalogue id) from the GosSUOK
    /// simulator of this process ([`KeyTokens::issue_official`]), signing in-process.
    ///
    /// Errors: GosSUOK cannot issue (its population is empty).
    pub fn in_process(tokens: &KeyTokens, organization: &str) -> anyhow::Result<DecisionSigning> {
        let issued = tokens.issue_official(organization)?;
        let key = KeyToken::InProcess(tokens.clone());
        Ok(Self::with(
            key,
            issued.serial,
            issued.certificate,
            issued.chain,
        ))
    }

    fn with(key: KeyToken, serial: String, certificate: String, chain: Vec<String>) -> Self {
        DecisionSigning {
            key,
            serial,
            certificate,
            chain,
            fault: Mutex::new(SigningFault::None),
            refusals: Mutex::new(Vec::new()),
            complaint_refusals: Mutex::new(Vec::new()),
        }
    }

    /// The fault it signs with now.
    pub fn fault(&self) -> SigningFault {
        *self.fault.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// From now on, signs with `fault`.
    pub fn set_fault(&self, fault: SigningFault) {
        *self.fault.lock().unwrap_or_else(|e| e.into_inner()) = fault;
    }

    /// The refusals the hub answered so far.
    pub fn refusals(&self) -> Vec<Refusal> {
        self.refusals
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The refusals of decisions on complaints the hub answered so far.
    pub fn complaint_refusals(&self) -> Vec<ComplaintRefusal> {
        self.complaint_refusals
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Keeps a refusal (an `authority.decision_refused.v1` or
    /// `authority.complaint_decision_refused.v1` body); past [`MAX_REFUSALS`] of a kind, the
    /// oldest goes.
    pub(crate) fn refused(&self, body: &Value) {
        let id = |f: &str| body[f].as_str().and_then(|s| Uuid::parse_str(s).ok());
        let text = |f: &str| body[f].as_str().unwrap_or_default().to_owned();
        if let Some(complaint_id) = id("complaint_id") {
            self.complaint_refusals
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push_bounded(ComplaintRefusal {
                    complaint_id,
                    reason: text("reason"),
                    detail: text("detail"),
                });
            return;
        }
        let Some(application_id) = id("application_id") else {
            return;
        };
        self.refusals
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push_bounded(Refusal {
                application_id,
                reason: text("reason"),
                detail: text("detail"),
            });
    }

    /// The `authority.decided.v2` body of a decision, signed (or not, or badly, as the fault
    /// switch says).
    ///
    /// Errors: the GosSUOK simulator does not sign.
    pub async fn decided(
        &self,
        authority: &str,
        application_id: Uuid,
        verdict: &str,
        text: &str,
        decided_at: DateTime<Utc>,
    ) -> anyhow::Result<Value> {
        let number = format!(
            "{}-D-{}",
            authority.to_uppercase(),
            &application_id.simple().to_string()[..8]
        );
        let date = decided_at.date_naive().format("%Y-%m-%d").to_string();
        let document = json!({
            "application_id": application_id,
            "authority_id": authority,
            "number": number,
            "date": date,
            "verdict": verdict,
            "text": text,
        });
        let mut body = json!({
            "application_id": application_id,
            "document": document,
            "decided_at": decided_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        });
        let bytes = format!(
            "by.portal.decision.v1\n{}\n{authority}\n{number}\n{date}\n{verdict}\n{text}",
            application_id.hyphenated()
        );
        self.sign_into(&mut body, bytes.as_bytes()).await?;
        Ok(body)
    }

    /// The `authority.complaint_decided.v2` body of a decision on a complaint, signed (or not,
    /// or badly, as the fault switch says).
    ///
    /// Errors: the GosSUOK simulator does not sign.
    pub async fn complaint_decided(
        &self,
        authority: &str,
        complaint_id: Uuid,
        verdict: &str,
        text: &str,
        decided_at: DateTime<Utc>,
    ) -> anyhow::Result<Value> {
        let number = format!(
            "{}-C-{}",
            authority.to_uppercase(),
            &complaint_id.simple().to_string()[..8]
        );
        let date = decided_at.date_naive().format("%Y-%m-%d").to_string();
        let mut body = json!({
            "complaint_id": complaint_id,
            "document": {
                "complaint_id": complaint_id,
                "authority_id": authority,
                "number": number,
                "date": date,
                "verdict": verdict,
                "text": text,
            },
            "decided_at": decided_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        });
        let bytes = format!(
            "by.portal.complaint_decision.v1\n{}\n{authority}\n{number}\n{date}\n{verdict}\n{text}",
            complaint_id.hyphenated()
        );
        self.sign_into(&mut body, bytes.as_bytes()).await?;
        Ok(body)
    }

    /// The signed (v2) form of an unsigned decision the clerk gave, `(message type, body)`:
    /// `authority.decided.v1` becomes `authority.decided.v2`, `authority.complaint_decided.v1`
    /// becomes `authority.complaint_decided.v2`; `None` for any other answer.
    ///
    /// Errors: the v1 body lacks a field, or the GosSUOK simulator does not sign.
    pub async fn sign_answer(
        &self,
        authority: &str,
        message_type: &str,
        unsigned: &Value,
    ) -> anyhow::Result<Option<(&'static str, Value)>> {
        let complaint = match message_type {
            "authority.decided.v1" => false,
            "authority.complaint_decided.v1" => true,
            _ => return Ok(None),
        };
        let field = |f: &str| {
            unsigned[f]
                .as_str()
                .ok_or_else(|| anyhow::anyhow!("{message_type} without {f}"))
        };
        let decided_at = DateTime::parse_from_rfc3339(field("decided_at")?)?.with_timezone(&Utc);
        let (verdict, text) = (field("verdict")?, field("document")?);
        Ok(Some(if complaint {
            let id = Uuid::parse_str(field("complaint_id")?)?;
            let body = self
                .complaint_decided(authority, id, verdict, text, decided_at)
                .await?;
            ("authority.complaint_decided.v2", body)
        } else {
            let id = Uuid::parse_str(field("application_id")?)?;
            let body = self
                .decided(authority, id, verdict, text, decided_at)
                .await?;
            ("authority.decided.v2", body)
        }))
    }

    /// Signs `bytes` into `body["signature"]` as the fault switch says (no signature at all,
    /// or one with a byte changed).
    async fn sign_into(&self, body: &mut Value, bytes: &[u8]) -> anyhow::Result<()> {
        let fault = self.fault();
        if fault == SigningFault::Unsigned {
            return Ok(());
        }
        let mut signature = match &self.key {
            KeyToken::InProcess(tokens) => tokens.sign(&self.serial, bytes)?,
            KeyToken::Http { gossuok_url, http } => {
                let path = format!("sim/certificates/{}/sign", self.serial);
                let signed: Signed = http
                    .post(gossuok_url.join(&path)?)
                    .json(&json!({"data": BASE64.encode(bytes)}))
                    .send()
                    .await?
                    .error_for_status()?
                    .json()
                    .await?;
                BASE64.decode(&signed.signature)?
            }
        };
        if let (SigningFault::BadSignature, Some(b)) = (fault, signature.first_mut()) {
            *b ^= 0x01;
        }
        body["signature"] = json!({
            "signature": BASE64.encode(&signature),
            "certificate": self.certificate,
            "chain": self.chain,
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bign256::dsa::Signature;
    use bign256::dsa::signature::Verifier;
    use der::Decode;
    use x509_cert::Certificate;

    #[test]
    fn past_the_bound_the_oldest_refusal_goes() {
        let mut kept: Vec<usize> = Vec::new();
        for n in 0..=MAX_REFUSALS {
            kept.push_bounded(n);
        }
        assert_eq!(kept.len(), MAX_REFUSALS);
        assert_eq!(kept.first(), Some(&1), "the oldest dropped");
        assert_eq!(kept.last(), Some(&MAX_REFUSALS), "the newest kept");
    }

    use crate::gossuok::ca::{TestCa, verifying_key_from_stb};

    fn tokens() -> KeyTokens {
        let ctx = crate::server::SimContext::new(
            crate::SimKind::Gossuok,
            tokio_util::sync::CancellationToken::new(),
        );
        crate::gossuok::key_tokens(
            ctx,
            crate::gossuok::Deps {
                ca: TestCa::new(7),
                population: crate::mvd::population::generate(7, 20, Utc::now().date_naive()),
                crl_validity: std::time::Duration::from_secs(600),
            },
        )
    }

    /// Whether `body`'s signature verifies over `bytes` under the certificate it carries.
    fn verifies(body: &Value, bytes: &str) -> bool {
        let der = BASE64
            .decode(
                body["signature"]["certificate"]
                    .as_str()
                    .expect("a certificate"),
            )
            .expect("base64");
        let cert = Certificate::from_der(&der).expect("a certificate");
        let spki = &cert.tbs_certificate.subject_public_key_info;
        let key = verifying_key_from_stb(spki.subject_public_key.raw_bytes()).expect("a key");
        let signature = BASE64
            .decode(
                body["signature"]["signature"]
                    .as_str()
                    .expect("a signature"),
            )
            .expect("base64");
        let signature = Signature::from_slice(&signature).expect("a bign signature");
        key.verify(bytes.as_bytes(), &signature).is_ok()
    }

    /// The canonical bytes of a signed body's document, as the README writes them.
    fn canonical(context: &str, id_field: &str, body: &Value) -> String {
        let d = &body["document"];
        let line = |f: &str| d[f].as_str().expect("a field").to_owned();
        [
            context.to_owned(),
            line(id_field),
            line("authority_id"),
            line("number"),
            line("date"),
            line("verdict"),
            line("text"),
        ]
        .join("\n")
    }

    #[tokio::test]
    async fn an_in_process_official_signs_decisions_and_complaint_decisions_verifiably() {
        let signing = DecisionSigning::in_process(&tokens(), "tax-ministry").expect("issued");
        let der = BASE64.decode(&signing.certificate).expect("base64");
        let organization = b"tax-ministry";
        assert!(
            der.windows(organization.len()).any(|w| w == organization),
            "the certificate names the authority"
        );
        let id = Uuid::new_v4();
        let v1 = json!({"application_id": id, "verdict": "granted", "document": "Granted.\nIn full.",
            "decided_at": "2026-12-07T10:00:00Z"});
        let (kind, body) = signing
            .sign_answer("tax-ministry", "authority.decided.v1", &v1)
            .await
            .expect("signed")
            .expect("a decision");
        assert_eq!(kind, "authority.decided.v2");
        assert_eq!(body["document"]["text"], "Granted.\nIn full.");
        let bytes = canonical("by.portal.decision.v1", "application_id", &body);
        assert!(verifies(&body, &bytes));

        let complaint = json!({"complaint_id": id, "verdict": "dismissed", "document": "Stands.",
            "decided_at": "2026-12-07T10:00:00Z"});
        let (kind, body) = signing
            .sign_answer("tax-ministry", "authority.complaint_decided.v1", &complaint)
            .await
            .expect("signed")
            .expect("a decision");
        assert_eq!(kind, "authority.complaint_decided.v2");
        assert_eq!(body["document"]["complaint_id"], json!(id));
        let bytes = canonical("by.portal.complaint_decision.v1", "complaint_id", &body);
        assert!(verifies(&body, &bytes));
        assert!(
            !verifies(&body, &bytes.replacen("complaint_decision", "decision", 1)),
            "a complaint's signature is not an application decision's"
        );

        // The fault switch: badly signed, then unsigned.
        signing.set_fault(SigningFault::BadSignature);
        let (_, bad) = signing
            .sign_answer("tax-ministry", "authority.complaint_decided.v1", &complaint)
            .await
            .expect("signed")
            .expect("a decision");
        assert!(!verifies(&bad, &bytes));
        signing.set_fault(SigningFault::Unsigned);
        let (_, unsigned) = signing
            .sign_answer("tax-ministry", "authority.decided.v1", &v1)
            .await
            .expect("made")
            .expect("a decision");
        assert!(unsigned.get("signature").is_none());
        let info = json!({"application_id": id, "request": "a lease"});
        assert!(
            signing
                .sign_answer("tax-ministry", "authority.info_requested.v1", &info)
                .await
                .expect("nothing to sign")
                .is_none()
        );
    }
}
