//! The demo's last act: the ways back into an account (issue 17). New identifier holders, who
//! have formed a static password at their first login, give the identifier up and take it back
//! — one in the cabinet (a code to the phone the registry holds, then a new password), one at a
//! desk (the identity document presented and reconciled with the MVD, a new temporary password by
//! SMS) — and a desk asks for a new temporary password for one who has a static password: refused,
//! "use recovery".

use anyhow::Context;
use contracts::account::{
    BlockIdentifierV2, IdentifierBlocked, IdentifierUnblocked, UnblockIdentifierV2,
};
use contracts::cabinet::{BlockSelf, CabinetOutcome, CompleteUnblock, LogIn, UnblockSelf};
use contracts::issuance::{ApplyForIdentifier, ResendRefused, ResendTemporaryPasswordV2};

use super::{DESK, Play};

/// One journey back into an account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Journey {
    /// Blocked in the cabinet, unblocked in the cabinet.
    CabinetUnblock,
    /// Blocked at a desk, unblocked at a desk with a new temporary password.
    DeskUnblock,
    /// A desk asks for a new temporary password after the person formed a static one.
    ResendAfterStaticPassword,
}

impl Journey {
    /// Every journey, once each.
    pub(super) const ALL: [Journey; 3] = [
        Journey::CabinetUnblock,
        Journey::DeskUnblock,
        Journey::ResendAfterStaticPassword,
    ];

    /// The outcome it must come to.
    pub(super) fn expected(self) -> &'static str {
        match self {
            Journey::CabinetUnblock => "unblocked in the cabinet (SMS code, new password)",
            Journey::DeskUnblock => "unblocked at a desk (MVD check, new temporary password)",
            Journey::ResendAfterStaticPassword => "resend refused: use_recovery",
        }
    }
}

/// An identifier holder of the issuance act: the application (person, document, phone) and the
/// static password set at the first login.
#[derive(Debug, Clone)]
pub(super) struct Holder {
    /// The issuance application's number.
    pub(super) number: String,
    /// The application.
    pub(super) application: ApplyForIdentifier,
    /// The static password.
    pub(super) password: String,
}

impl Play {
    /// Plays `journey` with `holder`; returns what it came to (a step that went otherwise is an
    /// error naming it).
    pub(super) async fn account_journey(
        &self,
        journey: Journey,
        holder: &Holder,
    ) -> anyhow::Result<String> {
        let id = holder.application.person.identification_number.clone();
        let phone = holder.application.phone.clone();
        let done = |outcome: &CabinetOutcome| matches!(outcome, CabinetOutcome::Ok { .. });
        match journey {
            Journey::CabinetUnblock => {
                let blocked = self
                    .ask(&BlockSelf {
                        identifier: id.clone(),
                        password: holder.password.clone(),
                    })
                    .await?;
                anyhow::ensure!(done(&blocked), "cabinet block: {blocked:?}");
                self.expect(
                    &UnblockSelf {
                        identifier: id.clone(),
                        phone: phone.clone(),
                    },
                    &CabinetOutcome::CodeSentIfKnown,
                )
                .await?;
                let text = self.text_containing(&phone, "разблокировки").await?;
                let code = text
                    .split(|c: char| !c.is_ascii_digit())
                    .find(|run| run.len() == 6)
                    .context("no six-digit code in the unblock SMS")?
                    .to_owned();
                let new_password = format!("{}Back1", holder.password);
                let unblocked = self
                    .ask(&CompleteUnblock {
                        identifier: id.clone(),
                        code,
                        new_password: new_password.clone(),
                    })
                    .await?;
                anyhow::ensure!(done(&unblocked), "cabinet unblock: {unblocked:?}");
                let login = self
                    .ask(&LogIn {
                        identifier: id,
                        password: new_password,
                    })
                    .await?;
                let CabinetOutcome::Ok {
                    session_token: Some(session),
                    ..
                } = login
                else {
                    anyhow::bail!("a login after the unblock: {login:?}");
                };
                self.keep_session(&holder.application.person.identification_number, session);
                Ok(Journey::CabinetUnblock.expected().to_owned())
            }
            Journey::DeskUnblock => {
                let a = &holder.application;
                let number = format!("{}-B", holder.number);
                self.send(&BlockIdentifierV2 {
                    desk_id: DESK.into(),
                    application_number: number.clone(),
                    worker_id: "worker-2".into(),
                    person: a.person.clone(),
                    document: a.document.clone(),
                    consent_to_mvd_check: true,
                    reason: Some("gives the identifier up".into()),
                })
                .await?;
                let _: IdentifierBlocked = self.desk.wait(&number).await?;
                let number = format!("{}-U", holder.number);
                self.send(&UnblockIdentifierV2 {
                    desk_id: DESK.into(),
                    application_number: number.clone(),
                    worker_id: "worker-2".into(),
                    person: a.person.clone(),
                    document: a.document.clone(),
                    consent_to_mvd_check: true,
                })
                .await?;
                let _: IdentifierUnblocked = self.desk.wait(&number).await?;
                let text = self.text_containing(&phone, "разблокирован").await?;
                let temporary = text
                    .split("пароль: ")
                    .nth(1)
                    .and_then(|r| r.split('.').next())
                    .context("no temporary password in the unblock SMS")?
                    .to_owned();
                self.expect(
                    &LogIn {
                        identifier: id,
                        password: temporary,
                    },
                    &CabinetOutcome::MustChangePassword,
                )
                .await?;
                Ok(Journey::DeskUnblock.expected().to_owned())
            }
            Journey::ResendAfterStaticPassword => {
                let a = &holder.application;
                self.send(&ResendTemporaryPasswordV2 {
                    desk_id: DESK.into(),
                    application_number: holder.number.clone(),
                    worker_id: "worker-2".into(),
                    person: a.person.clone(),
                    document: a.document.clone(),
                    consent_to_mvd_check: true,
                })
                .await?;
                let refused: ResendRefused = self.desk.wait(&holder.number).await?;
                Ok(format!("resend refused: {}", refused.reason))
            }
        }
    }
}
