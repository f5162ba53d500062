//! The HTTP back-offices' later answers (`POST /callbacks/authority/{authority}/{type}`): an
//! information request, a decision on an application, a decision on a complaint. The
//! [worker](super::worker) gave the back-office this address with the application; the answer
//! comes back here and goes on the bus as the authority's message, the way a queue authority
//! would publish it.

use axum::Extension;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode};
use contracts::{Message, Metadata};
use uuid::Uuid;

use crate::external::CallbackState;
use hub_runtime::broker::Envelope;
use hub_runtime::store::outbox;
use hub_runtime::trace::TraceContext;

/// An HTTP back-office's later answer (`authority.info_requested.v1`, the signed
/// `authority.decided.v2` or the unsigned `authority.decided.v1`, the signed
/// `authority.complaint_decided.v2` or the unsigned `authority.complaint_decided.v1`): verified by the authority's signature over the method, the
/// path (so over the authority and the answer type it names), the timestamp and the body, and by
/// its timestamp being within the hub's window (a replay is refused once it is old, whatever the
/// inbox still remembers); checked to be about an application (or complaint) of that authority,
/// then put on the bus as the hub's bridge (`user_id` = the hub's broker user), where the saga
/// takes it like a queue authority's answer. Its message id is derived from the authority, the type and the exact body, so a
/// re-sent answer counts once.
pub(crate) async fn answer(
    State(state): State<CallbackState>,
    Path((authority, message_type)): Path<(String, String)>,
    Extension(trace): Extension<TraceContext>,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, String) {
    let Some(secret) = state.callbacks.authority_secrets.get(&authority) else {
        return (
            StatusCode::NOT_FOUND,
            format!("{authority} is not an HTTP authority of this hub"),
        );
    };
    let header = |name| headers.get(name).and_then(|v| v.to_str().ok());
    // The path the back-office was told to post to, made from the hub's own callback URL (not
    // the request's, which a proxy in front of the hub may have rewritten).
    let base = state
        .callbacks
        .callback_url
        .join(&super::worker::callback_path(&authority));
    // The same join succeeded for every HTTP authority when the bridges were built, so this
    // refusal is never taken; it stays a refusal rather than a panic.
    let Ok(base) = base else {
        return (
            StatusCode::NOT_FOUND,
            format!("{authority} is not an HTTP authority of this hub"),
        );
    };
    let path = adapters::backoffice::callback_path(&base, &message_type);
    let callback = adapters::backoffice::ReceivedCallback {
        authority: &authority,
        method: method.as_str(),
        path: &path,
        timestamp: header(adapters::backoffice::AUTHORITY_TIMESTAMP_HEADER),
        signature: header(adapters::backoffice::AUTHORITY_SIGNATURE_HEADER),
        body: &body,
    };
    let window = state.callbacks.backoffice_window;
    if let Err(f) =
        adapters::backoffice::verify_callback(secret, &callback, chrono::Utc::now(), window)
    {
        tracing::warn!(%authority, reason = %f.reason, "back-office callback refused");
        return (StatusCode::UNAUTHORIZED, f.reason);
    }
    let subject = match about(&message_type, &body) {
        Ok(s) => s,
        Err(reason) => return (StatusCode::BAD_REQUEST, reason),
    };
    match record_authority_answer(&state, &authority, &message_type, &body, subject, trace).await {
        Ok(Recorded::Yes) => (StatusCode::OK, "recorded".into()),
        Ok(Recorded::Unknown) => (
            StatusCode::NOT_FOUND,
            format!("no {} {} at this hub", subject.kind(), subject.id()),
        ),
        Ok(Recorded::NotYours(owner)) => {
            tracing::warn!(
                %authority,
                %owner,
                id = %subject.id(),
                "a back-office answered for another authority's case; refused"
            );
            (
                StatusCode::FORBIDDEN,
                format!("{} {} is not {authority}'s", subject.kind(), subject.id()),
            )
        }
        Err(e) => {
            tracing::warn!(error = %e, "back-office answer not recorded; it will retry");
            (StatusCode::SERVICE_UNAVAILABLE, "try again later".into())
        }
    }
}

/// What a back-office answer is about.
#[derive(Debug, Clone, Copy)]
enum Subject {
    Application(Uuid),
    Complaint(Uuid),
}

impl Subject {
    fn kind(self) -> &'static str {
        match self {
            Subject::Application(_) => "application",
            Subject::Complaint(_) => "complaint",
        }
    }

    fn id(self) -> Uuid {
        match self {
            Subject::Application(id) | Subject::Complaint(id) => id,
        }
    }

    /// The saga that handles it.
    fn saga(self) -> (&'static str, Uuid) {
        use crate::procedures::{complaint, saga as procedure};
        match self {
            Subject::Application(id) => {
                (procedure::SAGA_TYPE, procedure::ProcedureSaga::key(id).id)
            }
            Subject::Complaint(id) => (complaint::SAGA_TYPE, complaint::ComplaintSaga::key(id).id),
        }
    }
}

/// Decodes an answer of one of the types a back-office may call back with.
fn about(message_type: &str, body: &[u8]) -> Result<Subject, String> {
    use contracts::procedure::{
        AuthorityComplaintDecided, AuthorityComplaintDecidedSigned, AuthorityDecided,
        AuthorityDecidedSigned, AuthorityInfoRequested,
    };
    let bad = |e: contracts::DecodeError| e.to_string();
    if AuthorityDecided::TYPE.matches(message_type) {
        let m: AuthorityDecided = contracts::decode(message_type, body).map_err(bad)?;
        Ok(Subject::Application(m.application_id))
    } else if AuthorityDecidedSigned::TYPE.matches(message_type) {
        // Its signature is checked by the decision gate, as a queue authority's.
        let m: AuthorityDecidedSigned = contracts::decode(message_type, body).map_err(bad)?;
        Ok(Subject::Application(m.application_id))
    } else if AuthorityInfoRequested::TYPE.matches(message_type) {
        let m: AuthorityInfoRequested = contracts::decode(message_type, body).map_err(bad)?;
        Ok(Subject::Application(m.application_id))
    } else if AuthorityComplaintDecided::TYPE.matches(message_type) {
        let m: AuthorityComplaintDecided = contracts::decode(message_type, body).map_err(bad)?;
        Ok(Subject::Complaint(m.complaint_id))
    } else if AuthorityComplaintDecidedSigned::TYPE.matches(message_type) {
        // Its signature is checked by the decision gate, as a queue authority's.
        let m: AuthorityComplaintDecidedSigned =
            contracts::decode(message_type, body).map_err(bad)?;
        Ok(Subject::Complaint(m.complaint_id))
    } else {
        Err(format!(
            "a back-office may call back with {}, {}, {}, {} or {}, not {message_type:?}",
            AuthorityInfoRequested::TYPE,
            AuthorityDecidedSigned::TYPE,
            AuthorityDecided::TYPE,
            AuthorityComplaintDecidedSigned::TYPE,
            AuthorityComplaintDecided::TYPE
        ))
    }
}

/// What became of a verified answer.
enum Recorded {
    /// The message is in the outbox.
    Yes,
    /// No application (or complaint) of that id.
    Unknown,
    /// The case is another authority's (named).
    NotYours(String),
}

/// Checks that the answer's case is `authority`'s and writes it to the outbox for the bus, in
/// one transaction.
async fn record_authority_answer(
    state: &CallbackState,
    authority: &str,
    message_type: &str,
    body: &[u8],
    subject: Subject,
    trace: TraceContext,
) -> Result<Recorded, sqlx::Error> {
    let (saga_type, saga_id) = subject.saga();
    let mut tx = state.pool.begin().await?;
    let owner: Option<Option<String>> = sqlx::query_scalar(
        "SELECT state->>'authority' FROM sagas WHERE saga_type = $1 AND id = $2",
    )
    .bind(saga_type)
    .bind(saga_id)
    .fetch_optional(&mut *tx)
    .await?;
    let owner = match owner {
        None => return Ok(Recorded::Unknown),
        Some(owner) => owner.unwrap_or_default(),
    };
    if owner != authority {
        return Ok(Recorded::NotYours(owner));
    }
    let mut name = format!("authority/{authority}/{message_type}/").into_bytes();
    name.extend_from_slice(body);
    let mut metadata = Metadata::new(message_type.to_owned(), state.app_id.clone())
        .with_message_id(Uuid::new_v5(&Uuid::NAMESPACE_URL, &name))
        .with_correlation_id(saga_id.to_string());
    metadata.user_id = Some(state.callbacks.bridge_user.clone());
    metadata.traceparent = Some(trace.to_string());
    outbox::insert(
        &mut tx,
        &[Envelope {
            exchange: state.callbacks.bus_exchange.clone(),
            routing_key: message_type.to_owned(),
            metadata,
            body: body.to_vec(),
        }],
    )
    .await?;
    tx.commit().await?;
    Ok(Recorded::Yes)
}
