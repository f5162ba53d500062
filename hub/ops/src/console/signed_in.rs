//! Who a request's operator is and the message waiting for them: what the pages show and the
//! sessions keep (the pages' layout and the sign-in both use these, so they live apart from both).

/// The operator of a request, put among its extensions by
/// [`require_session`](super::auth::require_session).
#[derive(Debug, Clone)]
pub struct SignedIn {
    pub(super) id: String,
    /// The operator's name: what the audit rows say.
    pub operator: String,
    /// The session's CSRF token, for the forms of the page.
    pub csrf: String,
}

/// A one-time message shown on the next page (what an action did).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Flash {
    pub(super) ok: bool,
    pub(super) text: String,
}

impl Flash {
    pub(super) fn ok(text: impl Into<String>) -> Self {
        Self {
            ok: true,
            text: text.into(),
        }
    }

    pub(super) fn error(text: impl Into<String>) -> Self {
        Self {
            ok: false,
            text: text.into(),
        }
    }
}
