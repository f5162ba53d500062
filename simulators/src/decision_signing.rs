//! How a simulated authority signs its decisions (`authority.decided.v2`): an official's
//! certificate issued by the GosSUOK simulator with the authority's id as its subject's
//! `organizationName`, and a bign signature over belt-hash of the decision's canonical bytes,
//! made by the GosSUOK simulator's key token (`POST /sim/certificates/{serial}/sign`).
//!
//! The canonical bytes are written here again, from the README, as an agency would: UTF-8
//! lines joined by `\n`, `by.portal.decision.v1`, the application id, the authority id, the
//! decision's number, its date (`YYYY-MM-DD`), the verdict (`granted` / `refused`), then the
//! text as is.
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

/// An official's certificate and the way to sign with its key.
#[derive(Debug)]
pub struct DecisionSigning {
    gossuok_url: Url,
    http: reqwest::Client,
    /// The certificate's serial (lowercase hex).
    pub serial: String,
    certificate: String,
    chain: Vec<String>,
    fault: Mutex<SigningFault>,
    refusals: Mutex<Vec<Refusal>>,
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
        Ok(DecisionSigning {
            gossuok_url: gossuok_url.clone(),
            http: http.clone(),
            serial: issued.serial,
            certificate: issued.certificate,
            chain: issued.chain,
            fault: Mutex::new(SigningFault::None),
            refusals: Mutex::new(Vec::new()),
        })
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

    /// Keeps a refusal (an `authority.decision_refused.v1` body).
    pub(crate) fn refused(&self, body: &Value) {
        let Some(application_id) = body["application_id"]
            .as_str()
            .and_then(|s| Uuid::parse_str(s).ok())
        else {
            return;
        };
        let text = |f: &str| body[f].as_str().unwrap_or_default().to_owned();
        self.refusals
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(Refusal {
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
        let fault = *self.fault.lock().unwrap_or_else(|e| e.into_inner());
        if fault == SigningFault::Unsigned {
            return Ok(body);
        }
        let bytes = format!(
            "by.portal.decision.v1\n{}\n{authority}\n{number}\n{date}\n{verdict}\n{text}",
            application_id.hyphenated()
        );
        let signed: Signed = self
            .http
            .post(
                self.gossuok_url
                    .join(&format!("sim/certificates/{}/sign", self.serial))?,
            )
            .json(&json!({"data": BASE64.encode(bytes.as_bytes())}))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        let mut signature = BASE64.decode(&signed.signature)?;
        if let (SigningFault::BadSignature, Some(b)) = (fault, signature.first_mut()) {
            *b ^= 0x01;
        }
        body["signature"] = json!({
            "signature": BASE64.encode(&signature),
            "certificate": self.certificate,
            "chain": self.chain,
        });
        Ok(body)
    }
}
