//! EDS in tests: a person with a certificate at the GosSUOK simulator, a challenge from the
//! hub, and the challenge signed with the person's key at the simulator (as their token would).

use contracts::cabinet::CabinetOutcome;
use contracts::registration::{EdsProof, RequestEdsChallenge};
use serde_json::{Value, json};
use simulators::SimKind;

use crate::portal::Portal;

/// The identification number of the n-th person the GosSUOK simulator has a certificate for.
pub async fn holder(portal: &Portal, n: usize) -> String {
    portal.good_persons().await.remove(n).identification_number
}

/// `id`'s certificate and its intermediate at the GosSUOK simulator (base64 DER).
pub async fn certificate(portal: &Portal, id: &str) -> (String, Vec<String>) {
    let url = portal
        .sims
        .operator_url(SimKind::Gossuok)
        .expect("the GosSUOK simulator")
        .join(&format!("sim/persons/{id}/certificate"))
        .expect("URL");
    let cert: Value = portal
        .http
        .get(url)
        .send()
        .await
        .expect("certificate")
        .json()
        .await
        .expect("JSON");
    let chain = cert["chain"]
        .as_array()
        .expect("a chain")
        .iter()
        .take(1) // the intermediate; the root is the hub's own trust anchor
        .map(|c| c.as_str().expect("base64").to_owned())
        .collect();
    (
        cert["certificate"].as_str().expect("base64").to_owned(),
        chain,
    )
}

/// `to_sign` (base64) signed by `id`'s key at the GosSUOK simulator, as their token would.
pub async fn sign(portal: &Portal, id: &str, to_sign: &str) -> String {
    let url = portal
        .sims
        .operator_url(SimKind::Gossuok)
        .expect("the GosSUOK simulator")
        .join(&format!("sim/persons/{id}/sign"))
        .expect("URL");
    let signed: Value = portal
        .http
        .post(url)
        .json(&json!({"data": to_sign}))
        .send()
        .await
        .expect("signature")
        .json()
        .await
        .expect("JSON");
    signed["signature"].as_str().expect("base64").to_owned()
}

/// A fresh challenge from the hub: (nonce, bytes to sign in base64).
pub async fn challenge(portal: &Portal) -> (String, String) {
    let CabinetOutcome::EdsChallenge { nonce, to_sign, .. } =
        portal.cabinet(&RequestEdsChallenge {}).await
    else {
        panic!("a challenge");
    };
    (nonce, to_sign)
}

/// A fresh challenge signed by `id`.
pub async fn proof(portal: &Portal, id: &str) -> EdsProof {
    let (nonce, to_sign) = challenge(portal).await;
    let (certificate, chain) = certificate(portal, id).await;
    EdsProof {
        certificate,
        chain,
        nonce,
        signature: sign(portal, id, &to_sign).await,
    }
}
