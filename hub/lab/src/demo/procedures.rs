//! The demo's second act: people who got their identifier use the portal's administrative
//! procedures — free and paid ones, at authorities on the bus and at authorities with an HTTP
//! back-office — and some break a rule or change their mind on purpose. Each journey knows the
//! outcome it must come to.

use std::time::{Duration, Instant};

use contracts::cabinet::SessionToken;
use contracts::procedure::{
    ApplicationAccepted, ApplicationDecided, ApplicationRejected, ApplicationWithdrawn,
    AssuranceLevel, ComplaintDecided, ComplaintVerdict, DueBackReason, PaymentDueBack,
    PaymentReceived, ProcedureRejectReason, SubmitApplication, SubmitComplaint, Verdict,
    WithdrawApplication,
};
use serde_json::json;
use uuid::Uuid;

use super::Play;
use simulators::decision_signing::{DecisionSigning, SigningFault};

/// The authorities on the bus the journeys use: the demo runs their back-office simulators
/// (and that of FSZN's superior body, [`super::person_side::FSZN_SUPERIOR`], which decides
/// complaints only).
pub(super) const QUEUE_AUTHORITIES: [&str; 2] = ["fszn", "minsk-civil-registry"];

/// What a person does on the portal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Journey {
    /// A pension certificate from FSZN (free, on the bus).
    FreeOnBus,
    /// A duplicate birth certificate from the civil registry (21.00 BYN, on the bus), paid.
    PaidOnBus,
    /// A tax certificate from the Ministry of Taxes (free, HTTP back-office).
    FreeOverHttp,
    /// A pet registration in Minsk (12.60 BYN, HTTP back-office), paid.
    PaidOverHttp,
    /// A certificate the authority refuses.
    Refused,
    /// A paid application withdrawn before paying.
    Withdrawn,
    /// A passport, which needs an EDS login, with an identifier login.
    AssuranceTooLow,
    /// A complaint against a granted certificate, which the authority dismisses.
    Complaint,
    /// A paid certificate (on the bus) paid short first: it waits, and the rest completes it.
    ShortPayment,
    /// A paid application withdrawn, then paid anyway: the late payment is due back.
    LatePayment,
    /// The person's side ([`super::person_side`]): FSZN asks for information, the person
    /// answers after some working days, the term moves by them, FSZN decides.
    InfoAnswered,
    /// The person's side: FSZN lets the term pass; the person is told, complains of the
    /// inaction, and FSZN's superior body upholds the complaint.
    OverdueInaction,
}

impl Journey {
    /// The journeys of the person's side, played alone, with the lab moving the clock.
    pub(crate) const PERSON_SIDE: [Journey; 2] = [Journey::InfoAnswered, Journey::OverdueInaction];

    /// Every journey dealt to the new holders, in the order the demo deals them out (not those
    /// of [`Self::PERSON_SIDE`]).
    const ALL: [Journey; 10] = [
        Journey::FreeOverHttp,
        Journey::ShortPayment,
        Journey::PaidOnBus,
        Journey::LatePayment,
        Journey::FreeOnBus,
        Journey::PaidOverHttp,
        Journey::Complaint,
        Journey::Refused,
        Journey::Withdrawn,
        Journey::AssuranceTooLow,
    ];

    /// Journeys that need an authority on the bus (its own broker user).
    fn on_bus(self) -> bool {
        matches!(
            self,
            Journey::FreeOnBus
                | Journey::PaidOnBus
                | Journey::Withdrawn
                | Journey::ShortPayment
                | Journey::LatePayment
                | Journey::InfoAnswered
                | Journey::OverdueInaction
        )
    }

    /// The outcome it must come to.
    pub(crate) fn expected(self) -> &'static str {
        match self {
            Journey::FreeOnBus | Journey::PaidOnBus | Journey::FreeOverHttp => "granted",
            Journey::PaidOverHttp => "granted",
            Journey::Refused => "refused",
            Journey::Withdrawn => "withdrawn",
            Journey::AssuranceTooLow => "rejected: assurance_too_low",
            Journey::Complaint => "complaint dismissed",
            Journey::ShortPayment => "granted after a short payment completed",
            Journey::LatePayment => "late payment due back (withdrawn)",
            Journey::InfoAnswered => {
                "information given, term moved by the working days waited, granted"
            }
            Journey::OverdueInaction => "overdue, inaction complaint upheld by the superior body",
        }
    }

    /// The journeys for `n` people; without authorities on the bus, only the others.
    pub(super) fn deal(n: usize, bus: bool) -> Vec<Journey> {
        Journey::ALL
            .into_iter()
            .filter(|j| bus || !j.on_bus())
            .cycle()
            .take(n)
            .collect()
    }
}

/// The application a journey submits, with the person's session.
fn application(journey: Journey, session: &SessionToken) -> SubmitApplication {
    // The level each journey's login is meant to have (the session's decides).
    let (code, form, _level) = match journey {
        Journey::FreeOnBus | Journey::InfoAnswered | Journey::OverdueInaction => (
            "2.19",
            json!({"period_from": "2026-01-01", "period_to": "2026-06-30", "purpose": "bank"}),
            AssuranceLevel::Substantial,
        ),
        Journey::PaidOnBus | Journey::Withdrawn | Journey::ShortPayment | Journey::LatePayment => (
            "5.13",
            json!({"record_kind": "birth", "record_year": 1990}),
            AssuranceLevel::Substantial,
        ),
        Journey::FreeOverHttp | Journey::Refused => (
            "18.13",
            json!({"tax_year": 2025, "purpose": "embassy"}),
            AssuranceLevel::Substantial,
        ),
        Journey::PaidOverHttp => (
            "16.6",
            json!({"species": "dog", "pet_name": "Rex", "microchipped": true}),
            AssuranceLevel::Substantial,
        ),
        Journey::AssuranceTooLow => (
            "11.1.2",
            json!({"passport_number": "MP1234567", "passport_expires": "2026-12-31"}),
            AssuranceLevel::Substantial,
        ),
        Journey::Complaint => (
            "1.3.1",
            json!({"address": "Minsk, Nezavisimosti 1-1", "purpose": "bank"}),
            AssuranceLevel::Substantial,
        ),
    };
    let mut attachments = vec!["scan-1".to_owned()];
    if journey == Journey::Refused {
        // The back-office simulators refuse what asks for it (simulators/README.md).
        attachments.push(simulators::REFUSAL_ATTACHMENT.to_owned());
    }
    SubmitApplication {
        application_id: Uuid::new_v4(),
        procedure_code: code.into(),
        session_token: session.clone(),
        form: form.as_object().cloned().unwrap_or_default(),
        attachments,
        delivery: Default::default(),
    }
}

impl Play {
    /// Plays one journey, failing unless it comes to its expected outcome.
    pub(crate) async fn procedure_as_expected(
        &self,
        journey: Journey,
        identifier: &str,
    ) -> anyhow::Result<()> {
        let (outcome, _) = self.procedure(journey, identifier).await?;
        anyhow::ensure!(outcome == journey.expected(), "came to {outcome}");
        Ok(())
    }

    /// Plays one journey; returns its outcome and how long it took.
    pub(crate) async fn procedure(
        &self,
        journey: Journey,
        identifier: &str,
    ) -> anyhow::Result<(String, Duration)> {
        let started = Instant::now();
        // One login per person, kept for all their applications.
        let session = self.session(identifier).await?;
        let app = application(journey, &session);
        let key = app.application_id.to_string();
        self.send(&app).await?;
        if journey == Journey::AssuranceTooLow {
            let rejected: ApplicationRejected = self.desk.wait(&key).await?;
            let reason = match rejected.reason {
                ProcedureRejectReason::AssuranceTooLow => "assurance_too_low",
                _ => "other",
            };
            return Ok((format!("rejected: {reason}"), started.elapsed()));
        }
        let accepted: ApplicationAccepted = self.desk.wait(&key).await?;
        if matches!(journey, Journey::Withdrawn | Journey::LatePayment) {
            self.send(&WithdrawApplication {
                application_id: app.application_id,
                session_token: session.clone(),
            })
            .await?;
            let _: ApplicationWithdrawn = self.desk.wait(&key).await?;
            if journey == Journey::Withdrawn {
                return Ok(("withdrawn".into(), started.elapsed()));
            }
            // The person pays anyway (the bank takes it by the order number after the invoice
            // closed): the hub records it as due back and tells them.
            let order = accepted.order_number.clone().unwrap_or_default();
            self.pay_with(&order, json!({"channel": "bank", "late": true}))
                .await?;
            let owed: PaymentDueBack = self.desk.wait(&key).await?;
            anyhow::ensure!(
                owed.amount_kopecks == accepted.amount_kopecks,
                "{} of {} kopecks due back",
                owed.amount_kopecks,
                accepted.amount_kopecks
            );
            let reason = match owed.reason {
                DueBackReason::Withdrawn => "withdrawn",
                other => return Ok((format!("due back: {other:?}"), started.elapsed())),
            };
            return Ok((
                format!("late payment due back ({reason})"),
                started.elapsed(),
            ));
        }
        if journey == Journey::ShortPayment {
            // Half the fee first: the application waits and the person is told what is
            // missing; then the rest (the simulated bank pays what is still due).
            let order = accepted.order_number.clone().unwrap_or_default();
            let half = accepted.amount_kopecks / 2;
            self.pay_with(&order, json!({"channel": "bank", "amount": half}))
                .await?;
            let short: PaymentReceived = self.desk.wait(&key).await?;
            anyhow::ensure!(
                short.missing_kopecks == accepted.amount_kopecks - half,
                "after a short payment {} kopecks missing, not {}",
                short.missing_kopecks,
                accepted.amount_kopecks - half
            );
            self.pay_with(&order, json!({"channel": "bank"})).await?;
            let decided: ApplicationDecided = self.desk.wait(&key).await?;
            let outcome = match decided.verdict {
                Verdict::Granted => "granted after a short payment completed",
                Verdict::Refused => "refused",
            };
            return Ok((outcome.to_owned(), started.elapsed()));
        }
        if let Some(order) = &accepted.order_number {
            self.pay(order).await?;
            let paid: PaymentReceived = self.desk.wait(&key).await?;
            anyhow::ensure!(
                paid.amount_kopecks == accepted.amount_kopecks,
                "paid {} of {} kopecks",
                paid.amount_kopecks,
                accepted.amount_kopecks
            );
        }
        let decided: ApplicationDecided = self.desk.wait(&key).await?;
        let verdict = match decided.verdict {
            Verdict::Granted => "granted",
            Verdict::Refused => "refused",
        };
        if journey != Journey::Complaint {
            return Ok((verdict.to_owned(), started.elapsed()));
        }
        let complaint = SubmitComplaint {
            complaint_id: Uuid::new_v4(),
            application_id: app.application_id,
            session_token: session.clone(),
            text: "The certificate gives the wrong flat number.".into(),
            kind: Default::default(),
        };
        self.send(&complaint).await?;
        let decided: ComplaintDecided = self.desk.wait(&complaint.complaint_id.to_string()).await?;
        let verdict = match decided.verdict {
            ComplaintVerdict::Upheld => "complaint upheld",
            ComplaintVerdict::Dismissed => "complaint dismissed",
        };
        Ok((verdict.to_owned(), started.elapsed()))
    }
}

/// What the signed-decision act must come to: a signed decision shown with its signer, a badly
/// signed one refused back to the authority.
pub(crate) const SIGNED_EXPECTED: [&str; 2] = [
    "signed decision shown with its signer",
    "badly signed decision refused (bad_signature)",
];

/// Officials' certificates for the authorities on the bus, from the GosSUOK simulator (each
/// naming its authority as organizationName), by authority id; the officials are the first
/// persons of `population` GosSUOK knows.
pub(super) async fn officials(
    play: &Play,
    population: &[String],
) -> anyhow::Result<std::collections::HashMap<String, std::sync::Arc<DecisionSigning>>> {
    let mut officials = std::collections::HashMap::new();
    let mut persons = population.iter();
    // Every authority the demo starts on the bus signs: FSZN's superior body decides the
    // complaint of inaction, and the hub refuses an unsigned decision on it too.
    for id in QUEUE_AUTHORITIES
        .into_iter()
        .chain([super::person_side::FSZN_SUPERIOR])
    {
        let signing = loop {
            let Some(person) = persons.next() else {
                anyhow::bail!("no person of the population has a GosSUOK record");
            };
            if let Ok(s) = DecisionSigning::issue(&play.http, &play.gossuok, person, id).await {
                break s;
            }
        };
        officials.insert(id.to_owned(), std::sync::Arc::new(signing));
    }
    Ok(officials)
}

impl Play {
    /// The signed-decision act, played alone (its fault switch is the authority's): a decision
    /// of FSZN signed by its official reaches the cabinet with the signer; then one with a
    /// broken signature is refused back to FSZN and never reaches the cabinet. Returns the two
    /// outcomes (see [`SIGNED_EXPECTED`]) and the signer shown.
    pub(crate) async fn signed_decisions(
        &self,
        identifier: &str,
        fszn: &DecisionSigning,
    ) -> anyhow::Result<(Vec<String>, Option<String>)> {
        let session = self.session(identifier).await?;
        let app = application(Journey::FreeOnBus, &session);
        self.send(&app).await?;
        let decided: ApplicationDecided = self.desk.wait(&app.application_id.to_string()).await?;
        let (signed, signer) = match &decided.signed {
            Some(s) if s.signer.certificate_serial == fszn.serial => (
                SIGNED_EXPECTED[0].to_owned(),
                Some(format!(
                    "{} ({}, certificate {})",
                    s.signer.name, s.signer.organization, s.signer.certificate_serial
                )),
            ),
            Some(_) => ("signed by another certificate".to_owned(), None),
            None => ("decision without a signer".to_owned(), None),
        };
        fszn.set_fault(SigningFault::BadSignature);
        let bad = application(Journey::FreeOnBus, &session);
        let sent = self.send(&bad).await;
        let deadline = Instant::now() + Duration::from_secs(30);
        let refused = loop {
            if let Some(r) = fszn
                .refusals()
                .into_iter()
                .find(|r| r.application_id == bad.application_id)
            {
                break format!("badly signed decision refused ({})", r.reason);
            }
            if sent.is_err() || Instant::now() > deadline {
                break "no refusal of the badly signed decision".to_owned();
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        fszn.set_fault(SigningFault::None);
        sent?;
        Ok((vec![signed, refused], signer))
    }
}
