//! The demo's third act: registration on the portal. Some people register by e-mail (the
//! activation link read from the simulated mailbox) and log in at level `basic`; some register
//! with their EDS (a challenge signed by their key at the GosSUOK simulator, as their token
//! would) and log in at level `high`; one certificate is revoked at the CA and its logins are
//! refused once the hub's kept OCSP answer about it ages out (`HUB_OCSP_CACHE`, 10 s in the lab).

use std::time::{Duration, Instant};

use anyhow::Context;
use contracts::cabinet::CabinetOutcome;
use contracts::registration::{
    ActivateEmail, EdsProof, LogInByEds, LogInByEmail, RegisterByEds, RegisterByEmail,
    RequestEdsChallenge,
};
use serde_json::{Value, json};

use super::{Play, STEP_TIMEOUT};

/// What a person does to register.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Signup {
    /// Form, activation link from the mailbox, login with the password.
    Email,
    /// EDS registration, then an EDS login.
    Eds,
    /// EDS registration; the CA revokes the certificate; an EDS login after it is refused.
    EdsRevoked,
}

impl Signup {
    /// The outcome it must come to.
    pub(super) fn expected(self) -> &'static str {
        match self {
            Signup::Email => "e-mail: activated, logged in (basic)",
            Signup::Eds => "EDS: registered, logged in (high)",
            Signup::EdsRevoked => "EDS: revoked certificate refused",
        }
    }

    /// The sign-ups for `n` people: one revocation, the rest half by e-mail, half by EDS.
    pub(super) fn deal(n: usize) -> Vec<Signup> {
        (0..n)
            .map(|i| match i {
                0 if n > 2 => Signup::EdsRevoked,
                i if i % 2 == 0 => Signup::Eds,
                _ => Signup::Email,
            })
            .collect()
    }
}

fn level(outcome: &CabinetOutcome) -> Option<&str> {
    match outcome {
        CabinetOutcome::Ok {
            assurance_level, ..
        } => Some(assurance_level),
        _ => None,
    }
}

impl Play {
    /// Plays one sign-up for the person with `identifier`; returns its outcome and time.
    pub(super) async fn signup(
        &self,
        signup: Signup,
        identifier: &str,
        n: usize,
    ) -> anyhow::Result<(String, Duration)> {
        let started = Instant::now();
        let outcome = match signup {
            Signup::Email => self.email_signup(n).await?,
            Signup::Eds | Signup::EdsRevoked => {
                let proof = self.proof(identifier).await?;
                let registered = self.ask(&RegisterByEds { proof }).await?;
                anyhow::ensure!(
                    level(&registered) == Some("high"),
                    "EDS registration: {registered:?}"
                );
                if signup == Signup::EdsRevoked {
                    self.revoke(identifier).await?;
                    self.refused_after_revocation(identifier).await?
                } else {
                    let proof = self.proof(identifier).await?;
                    match self.ask(&LogInByEds { proof }).await? {
                        o if level(&o) == Some("high") => Signup::Eds.expected().to_owned(),
                        o => format!("EDS login: {o:?}"),
                    }
                }
            }
        };
        Ok((outcome, started.elapsed()))
    }

    async fn email_signup(&self, n: usize) -> anyhow::Result<String> {
        let email = format!(
            "demo{n}.{}@mail.example.by",
            &uuid::Uuid::new_v4().simple().to_string()[..6]
        );
        let password = format!("Demo{n}pass2026");
        let sent = self
            .ask(&RegisterByEmail {
                email: email.clone(),
                password: password.clone(),
                surname: "Демидова".into(),
                given_name: "Анна".into(),
            })
            .await?;
        anyhow::ensure!(
            sent == CabinetOutcome::ActivationSent,
            "registration: {sent:?}"
        );
        let token = self.activation_token(&email).await?;
        let activated = self.ask(&ActivateEmail { token }).await?;
        anyhow::ensure!(
            level(&activated) == Some("basic"),
            "activation: {activated:?}"
        );
        let login = self.ask(&LogInByEmail { email, password }).await?;
        Ok(match level(&login) {
            Some("basic") => Signup::Email.expected().to_owned(),
            _ => format!("e-mail login: {login:?}"),
        })
    }

    /// The token of the activation link in `email`'s mailbox, waiting for it.
    async fn activation_token(&self, email: &str) -> anyhow::Result<String> {
        let url = self.email.join(&format!("sim/inbox/{email}"))?;
        let deadline = Instant::now() + STEP_TIMEOUT;
        loop {
            let inbox: Value = self.http.get(url.clone()).send().await?.json().await?;
            let link = inbox["messages"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|m| m["text"].as_str())
                .flat_map(str::split_whitespace)
                .find(|w| w.contains("activate?token="))
                .map(str::to_owned);
            if let Some(link) = link {
                return url::Url::parse(&link)?
                    .query_pairs()
                    .find(|(k, _)| k == "token")
                    .map(|(_, v)| v.into_owned())
                    .context("no token in the activation link");
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "no activation e-mail within {STEP_TIMEOUT:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// A challenge from the hub, signed with the person's key at the GosSUOK simulator.
    pub(crate) async fn proof(&self, identifier: &str) -> anyhow::Result<EdsProof> {
        let CabinetOutcome::EdsChallenge { nonce, to_sign, .. } =
            self.ask(&RequestEdsChallenge {}).await?
        else {
            anyhow::bail!("no challenge from the hub");
        };
        let cert: Value = self
            .http
            .get(
                self.gossuok
                    .join(&format!("sim/persons/{identifier}/certificate"))?,
            )
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        let signed: Value = self
            .http
            .post(
                self.gossuok
                    .join(&format!("sim/persons/{identifier}/sign"))?,
            )
            .json(&json!({"data": to_sign}))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        let text = |v: &Value| v.as_str().map(str::to_owned).context("a base64 string");
        Ok(EdsProof {
            certificate: text(&cert["certificate"])?,
            // The intermediate; the root is the hub's trust anchor.
            chain: cert["chain"]
                .as_array()
                .into_iter()
                .flatten()
                .take(1)
                .map(text)
                .collect::<anyhow::Result<_>>()?,
            nonce,
            signature: text(&signed["signature"])?,
        })
    }

    /// The CA revokes the person's certificate (the key was compromised).
    async fn revoke(&self, identifier: &str) -> anyhow::Result<()> {
        let cert: Value = self
            .http
            .get(
                self.gossuok
                    .join(&format!("sim/persons/{identifier}/certificate"))?,
            )
            .send()
            .await?
            .json()
            .await?;
        let serial = cert["serial"].as_str().context("a serial")?;
        self.http
            .post(self.gossuok.join(&format!("sim/revoke/{serial}"))?)
            .json(&json!({"reason": "key_compromise"}))
            .send()
            .await?
            .error_for_status()?;
        Ok(())
    }

    /// Logs in until the hub has the CRL that lists the revocation (it refreshes the CRL when
    /// the cached one passes its `nextUpdate`).
    async fn refused_after_revocation(&self, identifier: &str) -> anyhow::Result<String> {
        let deadline = Instant::now() + STEP_TIMEOUT;
        loop {
            let proof = self.proof(identifier).await?;
            match self.ask(&LogInByEds { proof }).await? {
                CabinetOutcome::EdsRefused { reason } if reason == "revoked" => {
                    return Ok(Signup::EdsRevoked.expected().to_owned());
                }
                o if level(&o) == Some("high") => {}
                o => return Ok(format!("EDS login after revocation: {o:?}")),
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "the revocation was not seen within {STEP_TIMEOUT:?}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}
