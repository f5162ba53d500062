//! The person's side of a procedure, as the demo plays it: an information request answered
//! (the term moved by the working days waited, then the decision), and an application whose
//! term passes undecided (the person told, an inaction complaint to the superior body, upheld).
//!
//! Both need days to pass. The demo does what the end-to-end tests do, on the stage's own
//! database, and says so in its report: **the lab moves the clock** — it dates the information
//! request back by [`WAITED_WORKING_DAYS`] working days in the saga's state, and makes the
//! saga's overdue timer due now. Nothing in the hub knows of it: the hub reads the request's day
//! and fires the timer as it would after real days. The authority leaves both applications
//! undecided on its own pace (the back-office simulators' `simulate:idle` marker): the first is
//! decided only once the person answered, the second never.

use std::time::Instant;

use chrono::{NaiveDate, Utc};
use contracts::cabinet::SessionToken;
use contracts::procedure::{
    ApplicationAccepted, ApplicationDecided, ApplicationOverdue, ApplicationRegistered,
    ComplaintAccepted, ComplaintDecided, ComplaintKind, ComplaintVerdict, InfoProvided,
    InfoRequested, ProvideInfo, SubmitApplication, SubmitComplaint, Verdict,
};
use hub_portal::procedures::calendar::Calendar;
use hub_portal::procedures::saga::ProcedureSaga;
use serde_json::json;
use sqlx::PgPool;
use uuid::Uuid;

use super::Play;
use super::procedures::Journey;
use crate::stage::STEP_TIMEOUT;

/// The working days the lab lets pass between the information request and the answer.
pub(crate) const WAITED_WORKING_DAYS: u32 = 3;

/// The superior body of FSZN (the catalogue's `superior`): it hears complaints of FSZN's
/// inaction, so the demo runs its back-office simulator on the bus too.
pub(crate) const FSZN_SUPERIOR: &str = "mintrud";

/// A pension certificate from FSZN (free, on the bus), which the authority leaves undecided on
/// its own pace; with an information request when `ask`.
fn idle_application(session: &SessionToken, ask: bool) -> SubmitApplication {
    let form = json!({"period_from": "2026-01-01", "period_to": "2026-06-30", "purpose": "bank"});
    let mut attachments = vec!["scan-1".to_owned(), simulators::IDLE_ATTACHMENT.to_owned()];
    if ask {
        attachments.push(simulators::INFO_REQUEST_ATTACHMENT.to_owned());
    }
    SubmitApplication {
        application_id: Uuid::new_v4(),
        procedure_code: "2.19".into(),
        session_token: session.clone(),
        form: form.as_object().cloned().unwrap_or_default(),
        attachments,
        delivery: Default::default(),
    }
}

/// Today in Minsk (UTC+3 all year), as the hub counts terms.
fn minsk_today() -> NaiveDate {
    (Utc::now() + chrono::Duration::hours(3)).date_naive()
}

/// The latest day before `today` with exactly `n` working days after it up to `today`.
fn working_days_back(calendar: &Calendar, today: NaiveDate, n: u32) -> NaiveDate {
    let mut day = today;
    while calendar.working_days_between(day, today) < n {
        day = day.pred_opt().unwrap_or(NaiveDate::MIN);
    }
    day
}

impl Play {
    /// Plays a journey of the person's side on the stage's database `pool` (where the lab moves
    /// the clock); returns its outcome and what the lab did to the clock.
    pub(crate) async fn person_side(
        &self,
        journey: Journey,
        identifier: &str,
        pool: &PgPool,
    ) -> anyhow::Result<(String, String)> {
        let session = self.session(identifier).await?;
        let calendar = Calendar::belarus()?;
        match journey {
            Journey::InfoAnswered => self.info_answered(&session, &calendar, pool).await,
            Journey::OverdueInaction => self.overdue_inaction(&session, &calendar, pool).await,
            other => anyhow::bail!("{other:?} is not a journey of the person's side"),
        }
    }

    /// The authority asks; [`WAITED_WORKING_DAYS`] pass; the person answers; the term moves by
    /// them; the authority decides.
    async fn info_answered(
        &self,
        session: &SessionToken,
        calendar: &Calendar,
        pool: &PgPool,
    ) -> anyhow::Result<(String, String)> {
        let app = idle_application(session, true);
        let key = app.application_id.to_string();
        self.send(&app).await?;
        let _: ApplicationAccepted = self.desk.wait(&key).await?;
        let registered: ApplicationRegistered = self.desk.wait(&key).await?;
        let _: InfoRequested = self.desk.wait(&key).await?;
        // The lab moves the clock: the request was made WAITED_WORKING_DAYS working days ago,
        // and its period runs from then.
        let today = minsk_today();
        let asked_on = working_days_back(calendar, today, WAITED_WORKING_DAYS);
        let answer_by = calendar.add_working_days(asked_on, simulators::INFO_PERIOD_WORKING_DAYS);
        let moved = sqlx::query(
            "UPDATE sagas SET state = jsonb_set(jsonb_set(state, '{info_request,requested_on}', \
             to_jsonb($2::text)), '{info_request,answer_by}', to_jsonb($3::text)) \
             WHERE id = $1 AND state->'info_request' IS NOT NULL",
        )
        .bind(ProcedureSaga::key(app.application_id).id)
        .bind(asked_on.to_string())
        .bind(answer_by.to_string())
        .execute(pool)
        .await?
        .rows_affected();
        anyhow::ensure!(moved == 1, "no information request to date back");
        let clock = format!(
            "the lab moves the clock: {WAITED_WORKING_DAYS} working days pass (the information \
             request dated back to {asked_on})"
        );
        self.send(&ProvideInfo {
            application_id: app.application_id,
            session_token: session.clone(),
            form: json!({"lease_number": "L-7"})
                .as_object()
                .cloned()
                .unwrap_or_default(),
            attachments: vec!["att-lease".into()],
        })
        .await?;
        let provided: InfoProvided = self.desk.wait(&key).await?;
        let due = calendar.add_working_days(registered.decision_due, WAITED_WORKING_DAYS);
        if provided.suspended_working_days != WAITED_WORKING_DAYS || provided.decision_due != due {
            let outcome = format!(
                "term moved by {} working days to {}, not by {WAITED_WORKING_DAYS} to {due}",
                provided.suspended_working_days, provided.decision_due
            );
            return Ok((outcome, clock));
        }
        let decided: ApplicationDecided = self.desk.wait(&key).await?;
        let outcome = match decided.verdict {
            Verdict::Granted => Journey::InfoAnswered.expected().to_owned(),
            Verdict::Refused => "information given, term moved, refused".to_owned(),
        };
        Ok((outcome, clock))
    }

    /// The term passes with no decision; the person is told, complains of the inaction, and
    /// the superior body decides.
    async fn overdue_inaction(
        &self,
        session: &SessionToken,
        calendar: &Calendar,
        pool: &PgPool,
    ) -> anyhow::Result<(String, String)> {
        let app = idle_application(session, false);
        let key = app.application_id.to_string();
        self.send(&app).await?;
        let _: ApplicationAccepted = self.desk.wait(&key).await?;
        let registered: ApplicationRegistered = self.desk.wait(&key).await?;
        // The lab moves the clock: the term's days pass, so the overdue timer is due now (it is
        // set when the application reaches the authority; wait for it).
        let saga = ProcedureSaga::key(app.application_id).id;
        let deadline = Instant::now() + STEP_TIMEOUT;
        loop {
            let moved = sqlx::query(
                "UPDATE timers SET due_at = now() WHERE saga_id = $1 AND name = 'overdue'",
            )
            .bind(saga)
            .execute(pool)
            .await?
            .rows_affected();
            if moved == 1 {
                break;
            }
            anyhow::ensure!(Instant::now() < deadline, "no overdue timer to move");
            // The saga sets it in its next step: poll the table for it.
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        let days = calendar.working_days_between(minsk_today(), registered.decision_due);
        let clock = format!(
            "the lab moves the clock: {days} working days pass (the term ends {})",
            registered.decision_due
        );
        let overdue: ApplicationOverdue = self.desk.wait(&key).await?;
        anyhow::ensure!(
            overdue.decision_due == registered.decision_due,
            "overdue on {}, the term ended {}",
            overdue.decision_due,
            registered.decision_due
        );
        let complaint = SubmitComplaint {
            complaint_id: Uuid::new_v4(),
            application_id: app.application_id,
            session_token: session.clone(),
            text: "No decision within the term.".into(),
            kind: ComplaintKind::Inaction,
        };
        let complaint_key = complaint.complaint_id.to_string();
        self.send(&complaint).await?;
        let heard: ComplaintAccepted = self.desk.wait(&complaint_key).await?;
        let decided: ComplaintDecided = self.desk.wait(&complaint_key).await?;
        let verdict = match decided.verdict {
            ComplaintVerdict::Upheld => "upheld",
            ComplaintVerdict::Dismissed => "dismissed",
        };
        let outcome = format!(
            "overdue, inaction complaint {verdict} by {}",
            if heard.authority == FSZN_SUPERIOR {
                "the superior body"
            } else {
                heard.authority.as_str()
            }
        );
        Ok((outcome, clock))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_day_back_has_exactly_the_working_days_asked() {
        let calendar = Calendar::belarus().expect("calendar");
        // Monday 7 December 2026: three working days back is Wednesday 2 December.
        let monday = NaiveDate::from_ymd_opt(2026, 12, 7).expect("a day");
        let back = working_days_back(&calendar, monday, 3);
        assert_eq!(back, NaiveDate::from_ymd_opt(2026, 12, 2).expect("a day"));
        assert_eq!(calendar.working_days_between(back, monday), 3);
        assert_eq!(working_days_back(&calendar, monday, 0), monday);
    }
}
