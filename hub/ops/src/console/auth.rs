//! Who may use the console, and how a browser proves it is still them.
//!
//! - **Login** checks a name and password against the argon2 hashes of `HUB_CONSOLE_USERS`
//!   (off the async threads: a hash takes a while on purpose). Every attempt is audited
//!   (`console.login`, with `result` in its details: `success`, `failure`, `failure_locked`,
//!   or, refused before its password was checked, `locked`, `busy`, `too_many_names`,
//!   `rate_limited`). Every refusal before the check is a 429 with `Retry-After`.
//! - **Lock-out**: [`Limits::max_failures`] failures in a row lock that name for
//!   [`Limits::lockout`], whether the name exists or not (so a lock says nothing about it).
//!   A login takes one of its name's slots before its password is checked, and a name has as
//!   many as it has failures left: guesses sent at once cannot check more passwords than the
//!   lock allows while the hashes run (the others are refused as `busy`).
//!   At most 10,000 names are counted; while the table is full of fresh failures a name not in
//!   it is refused (429) without its password being checked, so filling the table does not
//!   switch the lock-out off.
//! - **Rate**: at most [`Limits::login_rate`] passwords are checked per second over every name
//!   (a token bucket), so spraying many names burns no more CPU than that.
//! - **Sessions** are kept in memory: a random 32-byte id in an `HttpOnly`, `SameSite=Strict`
//!   cookie; a session ends after [`Limits::session_lifetime`], or [`Limits::session_idle`]
//!   without a request, or at logout.
//! - **CSRF**: each session has a random token that every form carries; [`require_session`]
//!   refuses (403) a POST without it before any handler runs. The login form, made before there
//!   is a session, pairs its token with a cookie of its own instead.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use axum::Extension;
use axum::Form;
use axum::body::Body;
use axum::extract::{ConnectInfo, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use rand::RngCore;
use serde::Deserialize;

use super::signed_in::Flash;
pub use super::signed_in::SignedIn;
use super::{Console, internal, layout, login_rate, see_other};
use crate::audit::{self, Action};

/// The session cookie (served without TLS, in development).
pub const SESSION_COOKIE: &str = "hub_console";
/// The login form's own CSRF cookie (served without TLS, in development).
pub const LOGIN_COOKIE: &str = "hub_console_login";
/// The session cookie when the console is served over TLS: the `__Host-` prefix makes a
/// browser take it only with `Secure`, `Path=/` and no `Domain`, so no plain-text page and no
/// other host of the domain can set or overwrite it.
pub const SECURE_SESSION_COOKIE: &str = "__Host-hub_console";
/// The login form's CSRF cookie when the console is served over TLS.
pub const SECURE_LOGIN_COOKIE: &str = "__Host-hub_console_login";

/// The console's cookies: their names and attributes, plain (development, no TLS) or
/// `__Host-` and `Secure` (served over TLS, `HUB_CONSOLE_BEHIND_TLS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cookies {
    /// Served over TLS: `__Host-` names and `Secure`.
    pub secure: bool,
}

impl Cookies {
    /// The session cookie's name.
    pub fn session(self) -> &'static str {
        if self.secure {
            SECURE_SESSION_COOKIE
        } else {
            SESSION_COOKIE
        }
    }

    /// The login form's cookie's name.
    pub fn login(self) -> &'static str {
        if self.secure {
            SECURE_LOGIN_COOKIE
        } else {
            LOGIN_COOKIE
        }
    }

    fn attributes(self) -> &'static str {
        if self.secure {
            "Path=/; Secure; HttpOnly; SameSite=Strict"
        } else {
            "Path=/; HttpOnly; SameSite=Strict"
        }
    }

    /// `Set-Cookie` for `name=value`.
    fn set(self, name: &str, value: &str) -> HeaderValue {
        HeaderValue::from_str(&format!("{name}={value}; {}", self.attributes()))
            .unwrap_or(HeaderValue::from_static(""))
    }

    /// `Set-Cookie` that removes `name`.
    fn expire(self, name: &str) -> HeaderValue {
        HeaderValue::from_str(&format!("{name}=; {}; Max-Age=0", self.attributes()))
            .unwrap_or(HeaderValue::from_static(""))
    }
}
/// The largest form the console reads.
const FORM_LIMIT: usize = 64 * 1024;
/// Sessions kept at most (the oldest idle one goes first).
const MAX_SESSIONS: usize = 10_000;
/// Names whose failed logins are counted at most (a flood of made-up names cannot grow the map
/// without bound).
const MAX_TRACKED_NAMES: usize = 10_000;

/// How long sessions last and how failed logins are limited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// A session ends this long after login, whatever happens.
    pub session_lifetime: Duration,
    /// A session ends after this long without a request.
    pub session_idle: Duration,
    /// Failed logins in a row that lock a name.
    pub max_failures: u32,
    /// How long a lock lasts; failures older than this are forgotten.
    pub lockout: Duration,
    /// Password checks per second at most, over every name (`HUB_CONSOLE_LOGIN_RATE`).
    pub login_rate: u32,
}

impl Default for Limits {
    /// 8 hours, 30 idle minutes; 5 failures lock a name for 15 minutes; 5 password checks a
    /// second.
    fn default() -> Self {
        Self {
            session_lifetime: Duration::from_secs(8 * 3600),
            session_idle: Duration::from_secs(30 * 60),
            max_failures: 5,
            lockout: Duration::from_secs(15 * 60),
            login_rate: crate::config::DEFAULT_LOGIN_RATE,
        }
    }
}

#[derive(Debug)]
struct Session {
    operator: String,
    csrf: String,
    started: Instant,
    seen: Instant,
    flash: Option<Flash>,
}

/// The sessions of this process.
#[derive(Debug)]
pub(super) struct Sessions {
    limits: Limits,
    map: Mutex<HashMap<String, Session>>,
}

impl Sessions {
    pub(super) fn new(limits: Limits) -> Self {
        Self {
            limits,
            map: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Session>> {
        self.map.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn alive(&self, s: &Session, now: Instant) -> bool {
        now.saturating_duration_since(s.started) < self.limits.session_lifetime
            && now.saturating_duration_since(s.seen) < self.limits.session_idle
    }

    /// A new session for `operator`.
    pub(super) fn start(&self, operator: &str, now: Instant) -> SignedIn {
        let mut map = self.lock();
        map.retain(|_, s| self.alive(s, now));
        if map.len() >= MAX_SESSIONS
            && let Some(oldest) = map
                .iter()
                .min_by_key(|(_, s)| s.seen)
                .map(|(id, _)| id.clone())
        {
            map.remove(&oldest);
        }
        let (id, csrf) = (random_token(), random_token());
        map.insert(
            id.clone(),
            Session {
                operator: operator.to_owned(),
                csrf: csrf.clone(),
                started: now,
                seen: now,
                flash: None,
            },
        );
        SignedIn {
            id,
            operator: operator.to_owned(),
            csrf,
        }
    }

    /// The live session `id`, marked as seen now; an ended one is forgotten.
    pub(super) fn resume(&self, id: &str, now: Instant) -> Option<SignedIn> {
        let mut map = self.lock();
        let alive = self.alive(map.get(id)?, now);
        if !alive {
            map.remove(id);
            return None;
        }
        let s = map.get_mut(id)?;
        s.seen = now;
        Some(SignedIn {
            id: id.to_owned(),
            operator: s.operator.clone(),
            csrf: s.csrf.clone(),
        })
    }

    /// Ends session `id`.
    pub(super) fn end(&self, id: &str) {
        self.lock().remove(id);
    }

    /// Keeps `flash` for the next page of session `id`.
    pub(super) fn flash(&self, id: &str, flash: Flash) {
        if let Some(s) = self.lock().get_mut(id) {
            s.flash = Some(flash);
        }
    }

    /// The message kept for this page, once.
    pub(super) fn take_flash(&self, id: &str) -> Option<Flash> {
        self.lock().get_mut(id).and_then(|s| s.flash.take())
    }
}

#[derive(Debug, Clone, Copy)]
struct Attempts {
    /// Failures in a row, the latest at `last`.
    failures: u32,
    /// Logins of this name admitted and not yet decided: their passwords are being checked.
    in_flight: u32,
    last: Instant,
    locked_until: Option<Instant>,
}

impl Attempts {
    fn new(now: Instant) -> Self {
        Attempts {
            failures: 0,
            in_flight: 0,
            last: now,
            locked_until: None,
        }
    }

    /// When this entry may be forgotten: its last failure a lock-out ago, and not locked.
    fn stale_at(&self, lockout: Duration) -> Instant {
        let fresh_until = self.last + lockout;
        self.locked_until
            .map_or(fresh_until, |u| u.max(fresh_until))
    }

    /// Forgettable: stale, and no login of it in flight (its slot must be found when it ends).
    fn stale(&self, now: Instant, lockout: Duration) -> bool {
        self.in_flight == 0 && self.stale_at(lockout) <= now
    }
}

/// Why a login is not checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Refusal {
    /// The name is locked for this much longer.
    Locked(Duration),
    /// The table of failures is full of fresh ones (many names tried at once): no new name is
    /// checked for this long.
    Full(Duration),
    /// As many logins of this name are being checked at once as it has failures left before
    /// its lock: another waits until one of them is decided.
    Busy,
}

/// How a login admitted by [`Limiter::admit`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Decision {
    /// A wrong password (or the login never said: see [`Attempt`]'s drop).
    Failed,
    /// The right password.
    Succeeded,
    /// The password was not checked after all (the console-wide rate refused it).
    Unchecked,
}

/// Failed logins per name. At most [`MAX_TRACKED_NAMES`] names are counted; when the table is
/// full of fresh failures, a name not in it is refused without its password being checked (the
/// lock-out cannot be bypassed by filling the table first).
///
/// A login is admitted into one of its name's slots ([`Attempt`]): a name has as many slots as
/// it has failures left before its lock, so logins checked at once (each hash takes a while)
/// can never together check more passwords than [`Limits::max_failures`] in a row.
#[derive(Debug)]
pub(super) struct Limiter {
    limits: Limits,
    map: Mutex<HashMap<String, Attempts>>,
}

/// One login admitted by [`Limiter::admit`]: it holds a slot of its name until it is decided
/// ([`Self::failed`], [`Self::succeeded`], [`Self::unchecked`]). Dropped undecided (the request
/// was cancelled, or a panic unwound through it) it counts as a failure: its password may have
/// been checked, and every checked password counts.
#[derive(Debug)]
#[must_use = "an attempt dropped undecided counts as a failure"]
pub(super) struct Attempt<'a> {
    limiter: &'a Limiter,
    name: String,
    decided: bool,
}

impl Attempt<'_> {
    /// A wrong password: counted; true when this failure locks the name.
    pub(super) fn failed(mut self, now: Instant) -> bool {
        self.decided = true;
        self.limiter.decide(&self.name, Decision::Failed, now)
    }

    /// The right password: the name's failures and lock are forgotten.
    pub(super) fn succeeded(mut self, now: Instant) {
        self.decided = true;
        self.limiter.decide(&self.name, Decision::Succeeded, now);
    }

    /// Not checked after all: the slot is freed, nothing counted.
    pub(super) fn unchecked(mut self, now: Instant) {
        self.decided = true;
        self.limiter.decide(&self.name, Decision::Unchecked, now);
    }
}

impl Drop for Attempt<'_> {
    fn drop(&mut self) {
        if !self.decided {
            self.limiter
                .decide(&self.name, Decision::Failed, Instant::now());
        }
    }
}

impl Limiter {
    pub(super) fn new(limits: Limits) -> Self {
        Self {
            limits,
            map: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Attempts>> {
        self.map.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// How much longer `name` is locked, if it is.
    #[cfg(test)]
    fn locked_for(&self, name: &str, now: Instant) -> Option<Duration> {
        let until = self.lock().get(name)?.locked_until?;
        (until > now).then(|| until - now)
    }

    /// A slot for a login of `name` now, if its password may be checked: not while the name is
    /// locked; not while its logins in flight already number the failures it has left before
    /// its lock (they could all fail); and not while the table is full of fresh failures and
    /// has no room to count this name's (fail closed: a password is checked only when its
    /// failure will be counted). An admitted name holds its place in the table until its login
    /// succeeds or its failures go stale.
    pub(super) fn admit(&self, name: &str, now: Instant) -> Result<Attempt<'_>, Refusal> {
        let Limits {
            lockout,
            max_failures,
            ..
        } = self.limits;
        let mut map = self.lock();
        if !map.contains_key(name) && map.len() >= MAX_TRACKED_NAMES {
            map.retain(|_, a| !a.stale(now, lockout));
            if map.len() >= MAX_TRACKED_NAMES {
                // Still full of fresh failures: someone is trying many names. Check no name
                // the table cannot count, whoever it is, until the oldest entry goes stale.
                let free_at = map
                    .values()
                    .map(|a| a.stale_at(lockout))
                    .min()
                    .unwrap_or(now + lockout);
                return Err(Refusal::Full(
                    free_at
                        .saturating_duration_since(now)
                        .max(Duration::from_secs(1)),
                ));
            }
        }
        let a = map
            .entry(name.to_owned())
            .or_insert_with(|| Attempts::new(now));
        if let Some(until) = a.locked_until
            && until > now
        {
            return Err(Refusal::Locked(until - now));
        }
        if now.saturating_duration_since(a.last) >= lockout {
            a.failures = 0;
        }
        if a.failures + a.in_flight >= max_failures.max(1) {
            return Err(Refusal::Busy);
        }
        a.in_flight += 1;
        Ok(Attempt {
            limiter: self,
            name: name.to_owned(),
            decided: false,
        })
    }

    /// Frees a slot of `name` and records how its login ended; true when it locked the name. A
    /// failure is always counted: the table may go over its size by the logins in flight, never
    /// forget one.
    fn decide(&self, name: &str, decision: Decision, now: Instant) -> bool {
        let Limits {
            lockout,
            max_failures,
            ..
        } = self.limits;
        let mut map = self.lock();
        let a = map
            .entry(name.to_owned())
            .or_insert_with(|| Attempts::new(now));
        a.in_flight = a.in_flight.saturating_sub(1);
        match decision {
            Decision::Unchecked => false,
            Decision::Succeeded => {
                a.failures = 0;
                a.locked_until = None;
                if a.in_flight == 0 {
                    map.remove(name);
                }
                false
            }
            Decision::Failed => {
                if now.saturating_duration_since(a.last) >= lockout {
                    a.failures = 0;
                }
                a.failures += 1;
                a.last = now;
                if a.failures >= max_failures {
                    a.failures = 0;
                    a.locked_until = Some(now + lockout);
                    return true;
                }
                false
            }
        }
    }
}

/// 32 random bytes from the operating system's generator, as 64 hex digits.
pub(super) fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// Equal, in a time that does not depend on where they differ.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// The value of cookie `name` in the request.
fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
}

/// Where to go after login: a path of this console, else its start page (no open redirect).
pub(super) fn local_path(next: Option<&str>) -> String {
    match next {
        Some(p)
            if p.starts_with('/')
                && !p.starts_with("//")
                && !p.starts_with("/\\")
                && !p.starts_with("/login")
                && !p.chars().any(char::is_control) =>
        {
            p.to_owned()
        }
        _ => "/".to_owned(),
    }
}

/// A name as the audit trail keeps it when it may be anything a stranger typed.
fn printable(name: &str) -> String {
    let cleaned: String = name.chars().filter(|c| !c.is_control()).take(64).collect();
    if cleaned.is_empty() {
        "(empty)".to_owned()
    } else {
        cleaned
    }
}

fn forbidden() -> Response {
    layout::plain_page(
        StatusCode::FORBIDDEN,
        "Refused",
        "This form has expired or did not come from the console: reload the page and try again.",
    )
}

/// Lets a request through only with a live session, and a POST only with the session's CSRF
/// token; puts the [`SignedIn`] operator among the request's extensions. Without a session a
/// page redirects to the login, which comes back to it.
pub(super) async fn require_session(
    State(console): State<Arc<Console>>,
    request: Request,
    next: Next,
) -> Response {
    let signed = cookie(request.headers(), console.cookies.session())
        .and_then(|id| console.sessions.resume(&id, Instant::now()));
    let Some(signed) = signed else {
        let back = if request.method() == Method::GET {
            request
                .uri()
                .path_and_query()
                .map(|p| p.as_str().to_owned())
                .unwrap_or_default()
        } else {
            String::new()
        };
        let location = if back.is_empty() || back == "/" {
            "/login".to_owned()
        } else {
            format!(
                "/login?next={}",
                percent_encoding::utf8_percent_encode(&back, percent_encoding::NON_ALPHANUMERIC)
            )
        };
        return see_other(&location);
    };
    let mut request = if request.method() == Method::POST {
        let (parts, body) = request.into_parts();
        let Ok(bytes) = axum::body::to_bytes(body, FORM_LIMIT).await else {
            return layout::plain_page(
                StatusCode::PAYLOAD_TOO_LARGE,
                "Too large",
                "This form is larger than the console takes.",
            );
        };
        let token = url::form_urlencoded::parse(&bytes)
            .find(|(k, _)| k == "csrf")
            .map(|(_, v)| v.into_owned());
        if !token.is_some_and(|t| same(&t, &signed.csrf)) {
            tracing::warn!(
                operator = %signed.operator,
                path = %parts.uri.path(),
                "console: a POST without the session's CSRF token was refused"
            );
            return forbidden();
        }
        Request::from_parts(parts, Body::from(bytes))
    } else {
        request
    };
    request.extensions_mut().insert(signed);
    next.run(request).await
}

/// The login page's query.
#[derive(Debug, Deserialize)]
pub(super) struct NextQuery {
    next: Option<String>,
}

/// `GET /login`: the form, with a fresh login token (or straight on, when already logged in).
pub(super) async fn login_page(
    State(console): State<Arc<Console>>,
    headers: HeaderMap,
    Query(query): Query<NextQuery>,
) -> Response {
    let next = local_path(query.next.as_deref());
    let signed = cookie(&headers, console.cookies.session())
        .and_then(|id| console.sessions.resume(&id, Instant::now()));
    if signed.is_some() {
        return see_other(&next);
    }
    login_form(console.cookies, StatusCode::OK, &next, None)
}

fn login_form(cookies: Cookies, status: StatusCode, next: &str, error: Option<&str>) -> Response {
    let token = random_token();
    let mut response = (status, layout::login(&token, next, error)).into_response();
    response
        .headers_mut()
        .append(header::SET_COOKIE, cookies.set(cookies.login(), &token));
    response
}

/// The login form.
#[derive(Deserialize)]
pub(super) struct LoginForm {
    name: String,
    password: String,
    csrf: String,
    #[serde(default)]
    next: String,
}

impl std::fmt::Debug for LoginForm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginForm")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// `POST /login`.
pub(super) async fn login(
    State(console): State<Arc<Console>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Response {
    if !cookie(&headers, console.cookies.login()).is_some_and(|t| same(&t, &form.csrf)) {
        return forbidden();
    }
    let next = local_path(Some(&form.next));
    let name = form.name.trim().to_owned();
    let shown = printable(&name);
    let now = Instant::now();
    let attempt = match console.limiter.admit(&name, now) {
        Ok(attempt) => attempt,
        Err(refusal) => {
            let (result, text, wait) = match refusal {
                Refusal::Locked(wait) => (
                    "locked",
                    format!(
                        "Too many failed logins with this name: try again in {}.",
                        minutes(wait)
                    ),
                    wait,
                ),
                Refusal::Full(wait) => (
                    "too_many_names",
                    format!("Too many failed logins: try again in {}.", minutes(wait)),
                    wait,
                ),
                Refusal::Busy => (
                    "busy",
                    "Too many logins with this name at once: try again in a few seconds."
                        .to_owned(),
                    Duration::from_secs(1),
                ),
            };
            return refused(&console, &shown, result, peer, &next, &text, wait).await;
        }
    };
    // Only a login that may be counted takes one of the console's password checks.
    if let Err(wait) = console.login_rate.take(now) {
        attempt.unchecked(now);
        let text = format!(
            "Too many login attempts, try again in {} s.",
            login_rate::whole_seconds(wait)
        );
        return refused(&console, &shown, "rate_limited", peer, &next, &text, wait).await;
    }
    let known = console.users.hash_of(&name).map(str::to_owned);
    let hash = known.clone().unwrap_or_else(|| console.decoy_hash.clone());
    let password = form.password;
    let matches =
        tokio::task::spawn_blocking(move || hub_runtime::secrets::verify_secret(&password, &hash))
            .await
            .unwrap_or(false);
    let now = Instant::now();
    if matches && known.is_some() {
        attempt.succeeded(now);
        if let Err(e) = audit_login(&console, &name, "success", peer).await {
            return internal("Recording the login", &e);
        }
        let signed = console.sessions.start(&name, now);
        tracing::info!(operator = %name, %peer, "console: operator logged in");
        let mut response = see_other(&next);
        let h = response.headers_mut();
        let cookies = console.cookies;
        h.append(
            header::SET_COOKIE,
            cookies.set(cookies.session(), &signed.id),
        );
        h.append(header::SET_COOKIE, cookies.expire(cookies.login()));
        return response;
    }
    let locked = attempt.failed(now);
    let result = if locked { "failure_locked" } else { "failure" };
    if let Err(e) = audit_login(&console, &shown, result, peer).await {
        tracing::warn!(error = %e, "console: a failed login was not audited");
    }
    tracing::warn!(name = %shown, %peer, locked, "console: login refused");
    login_form(
        console.cookies,
        StatusCode::UNAUTHORIZED,
        &next,
        Some("Wrong name or password."),
    )
}

/// "N minutes", rounded up.
fn minutes(wait: Duration) -> String {
    let minutes = wait.as_secs().div_ceil(60).max(1);
    format!("{minutes} minute{}", if minutes == 1 { "" } else { "s" })
}

/// A login refused before its password was checked: audited with `result`, and the form again
/// with `text`, 429 and `Retry-After`.
async fn refused(
    console: &Console,
    shown: &str,
    result: &str,
    peer: SocketAddr,
    next: &str,
    text: &str,
    wait: Duration,
) -> Response {
    if let Err(e) = audit_login(console, shown, result, peer).await {
        tracing::warn!(error = %e, result, "console: a refused login was not audited");
    }
    tracing::warn!(name = %shown, %peer, result, "console: login refused before its password was checked");
    let mut response = login_form(
        console.cookies,
        StatusCode::TOO_MANY_REQUESTS,
        next,
        Some(text),
    );
    response.headers_mut().insert(
        header::RETRY_AFTER,
        HeaderValue::from(login_rate::whole_seconds(wait)),
    );
    response
}

async fn audit_login(
    console: &Console,
    operator: &str,
    result: &str,
    peer: SocketAddr,
) -> Result<i64, sqlx::Error> {
    let mut conn = console.hub.pool.acquire().await?;
    audit::record(
        &mut conn,
        &Action {
            operator,
            action: "console.login",
            target: "console",
            reason: None,
            details: serde_json::json!({"result": result, "peer": peer.ip().to_string()}),
        },
    )
    .await
}

/// `POST /logout`: ends the session (audited as `console.logout`).
pub(super) async fn logout(
    State(console): State<Arc<Console>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Extension(signed): Extension<SignedIn>,
) -> Response {
    console.sessions.end(&signed.id);
    let recorded = async {
        let mut conn = console.hub.pool.acquire().await?;
        audit::record(
            &mut conn,
            &Action {
                operator: &signed.operator,
                action: "console.logout",
                target: "console",
                reason: None,
                details: serde_json::json!({"peer": peer.ip().to_string()}),
            },
        )
        .await
    };
    if let Err(e) = recorded.await {
        tracing::warn!(error = %e, "console: a logout was not audited");
    }
    let mut response = see_other("/login");
    response.headers_mut().append(
        header::SET_COOKIE,
        console.cookies.expire(console.cookies.session()),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits {
        session_lifetime: Duration::from_secs(8 * 3600),
        session_idle: Duration::from_secs(30 * 60),
        max_failures: 3,
        lockout: Duration::from_secs(15 * 60),
        login_rate: 5,
    };

    impl Limiter {
        /// A login of `name` admitted and failed at `now`: true when it locked the name.
        fn fail(&self, name: &str, now: Instant) -> bool {
            self.admit(name, now).expect("admitted").failed(now)
        }
    }

    #[test]
    fn a_session_ends_when_idle_or_old() {
        let sessions = Sessions::new(LIMITS);
        let t0 = Instant::now();
        let s = sessions.start("ivanova", t0);
        assert_eq!(s.id.len(), 64);
        assert_ne!(s.id, s.csrf);
        let minutes = |m: u64| Duration::from_secs(m * 60);
        // Seen every 20 minutes: alive until 8 hours after login.
        let mut t = t0;
        for _ in 0..23 {
            t += minutes(20);
            assert!(sessions.resume(&s.id, t).is_some(), "alive at {t:?}");
        }
        assert!(sessions.resume(&s.id, t0 + minutes(8 * 60)).is_none());
        assert!(sessions.resume(&s.id, t0).is_none(), "forgotten once ended");
        let idle = sessions.start("ivanova", t0);
        assert!(sessions.resume(&idle.id, t0 + minutes(31)).is_none());
        let ended = sessions.start("ivanova", t0);
        sessions.end(&ended.id);
        assert!(sessions.resume(&ended.id, t0).is_none());
        assert!(sessions.resume("made-up", t0).is_none());
    }

    #[test]
    fn a_flash_is_shown_once() {
        let sessions = Sessions::new(LIMITS);
        let s = sessions.start("ivanova", Instant::now());
        sessions.flash(&s.id, Flash::ok("replayed"));
        assert_eq!(sessions.take_flash(&s.id), Some(Flash::ok("replayed")));
        assert_eq!(sessions.take_flash(&s.id), None);
    }

    #[test]
    fn failures_in_a_row_lock_a_name_for_a_while() {
        let limiter = Limiter::new(LIMITS);
        let t0 = Instant::now();
        assert!(!limiter.fail("ivanova", t0));
        assert!(!limiter.fail("ivanova", t0));
        assert_eq!(limiter.locked_for("ivanova", t0), None);
        assert!(limiter.fail("ivanova", t0), "the third locks");
        assert_eq!(limiter.locked_for("ivanova", t0), Some(LIMITS.lockout));
        assert_eq!(limiter.locked_for("petrov", t0), None, "per name");
        assert_eq!(limiter.locked_for("ivanova", t0 + LIMITS.lockout), None);
        // Failures far apart never add up; a success forgets them.
        let limiter = Limiter::new(LIMITS);
        for i in 0..5 {
            assert!(!limiter.fail("petrov", t0 + LIMITS.lockout * i));
        }
        limiter.fail("sidorov", t0);
        limiter.fail("sidorov", t0);
        limiter
            .admit("sidorov", t0)
            .expect("admitted")
            .succeeded(t0);
        assert!(!limiter.fail("sidorov", t0));
    }

    /// One login attempt as `login` makes it: checked only when admitted, and then failed.
    /// True when the password was checked.
    fn guess(limiter: &Limiter, name: &str, now: Instant) -> bool {
        match limiter.admit(name, now) {
            Ok(attempt) => {
                attempt.failed(now);
                true
            }
            Err(_) => false,
        }
    }

    /// Many guesses of one name at once, each taking a while to check (as an argon2 hash does),
    /// on a multi-thread runtime: no more passwords are checked than the failures that lock
    /// the name, the others are refused as busy or locked, and then the name is locked.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_guesses_check_no_more_passwords_than_the_lock_allows() {
        let limiter = Arc::new(Limiter::new(LIMITS));
        let checked = Arc::new(std::sync::atomic::AtomicU32::new(0));
        let start = Arc::new(tokio::sync::Barrier::new(64));
        let guesses: Vec<_> = (0..64)
            .map(|_| {
                let (limiter, checked, start) = (limiter.clone(), checked.clone(), start.clone());
                tokio::spawn(async move {
                    start.wait().await;
                    let attempt = match limiter.admit("ivanova", Instant::now()) {
                        Ok(attempt) => attempt,
                        Err(refusal) => return Err(refusal),
                    };
                    checked.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    // The check of a wrong password, off the async threads.
                    tokio::task::spawn_blocking(|| std::thread::sleep(Duration::from_millis(50)))
                        .await
                        .expect("checked");
                    Ok(attempt.failed(Instant::now()))
                })
            })
            .collect();
        let mut locked_by = 0;
        let mut refused = 0;
        for guess in guesses {
            match guess.await.expect("a guess") {
                Ok(locked) => locked_by += usize::from(locked),
                Err(Refusal::Busy | Refusal::Locked(_)) => refused += 1,
                Err(other) => panic!("refused as {other:?}"),
            }
        }
        let checked = checked.load(std::sync::atomic::Ordering::SeqCst);
        assert_eq!(checked, LIMITS.max_failures, "passwords checked");
        assert_eq!(refused, 64 - checked as usize);
        assert_eq!(locked_by, 1, "the last failure locks");
        let now = Instant::now();
        assert!(matches!(
            limiter.admit("ivanova", now),
            Err(Refusal::Locked(_))
        ));
        assert!(limiter.locked_for("ivanova", now).is_some());
    }

    #[test]
    fn a_name_has_as_many_slots_as_failures_left() {
        let limiter = Limiter::new(LIMITS);
        let t0 = Instant::now();
        assert!(!limiter.fail("ivanova", t0));
        // Two failures left: two logins at once, not a third.
        let a = limiter.admit("ivanova", t0).expect("first");
        let b = limiter.admit("ivanova", t0).expect("second");
        assert_eq!(limiter.admit("ivanova", t0).map(drop), Err(Refusal::Busy));
        // A slot not checked after all is free again, and nothing is counted.
        a.unchecked(t0);
        let a = limiter.admit("ivanova", t0).expect("again");
        // Another name has its own slots.
        drop(limiter.admit("petrov", t0).expect("petrov"));
        // A success forgets the failures, and the other login in flight keeps its slot.
        a.succeeded(t0);
        let c = limiter
            .admit("ivanova", t0)
            .expect("a slot freed by the success");
        let d = limiter
            .admit("ivanova", t0)
            .expect("the failure is forgotten");
        assert_eq!(
            limiter.admit("ivanova", t0).map(drop),
            Err(Refusal::Busy),
            "b, c and d are in flight"
        );
        assert!(!b.failed(t0));
        assert!(!c.failed(t0));
        assert!(d.failed(t0), "the third failure in a row locks");
        assert_eq!(limiter.locked_for("ivanova", t0), Some(LIMITS.lockout));
        // Failures a lock-out old leave their slots free.
        let limiter = Limiter::new(LIMITS);
        limiter.fail("sidorov", t0);
        limiter.fail("sidorov", t0);
        let later = t0 + LIMITS.lockout;
        let slots: Vec<_> = (0..3)
            .map(|_| limiter.admit("sidorov", later).expect("a slot"))
            .collect();
        assert_eq!(slots.len(), 3);
    }

    /// A login whose request is cancelled, or whose handler panics, between admission and its
    /// verdict frees its slot, and counts as a failure: its password may have been checked.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_attempt_dropped_undecided_frees_its_slot_and_counts_as_a_failure() {
        let limiter = Arc::new(Limiter::new(LIMITS));
        let t0 = Instant::now();
        let attempt = limiter.admit("ivanova", t0).expect("admitted");
        drop(attempt);
        // Cancelled while its password is being checked.
        let (held, holding) = tokio::sync::oneshot::channel();
        let waiting = {
            let limiter = limiter.clone();
            tokio::spawn(async move {
                let _attempt = limiter.admit("ivanova", Instant::now()).expect("admitted");
                let _ = held.send(());
                std::future::pending::<()>().await;
            })
        };
        holding.await.expect("the slot is held");
        assert_eq!(in_flight(&limiter, "ivanova"), (1, 1));
        waiting.abort();
        assert!(waiting.await.expect_err("cancelled").is_cancelled());
        assert_eq!(
            in_flight(&limiter, "ivanova"),
            (2, 0),
            "two undecided attempts, two failures, no slot held"
        );
        // A panic unwinding through an attempt.
        let limiter = Arc::new(Limiter::new(LIMITS));
        let panicked = {
            let limiter = limiter.clone();
            tokio::spawn(async move {
                let _attempt = limiter.admit("petrov", Instant::now()).expect("admitted");
                panic!("the handler failed");
            })
        };
        assert!(panicked.await.expect_err("panicked").is_panic());
        assert_eq!(in_flight(&limiter, "petrov"), (1, 0));
    }

    /// The failures and the logins in flight of `name`.
    fn in_flight(limiter: &Limiter, name: &str) -> (u32, u32) {
        let map = limiter.lock();
        let a = map.get(name).expect("counted");
        (a.failures, a.in_flight)
    }

    #[test]
    fn a_table_full_of_fresh_failures_does_not_bypass_the_lock_out() {
        let limiter = Limiter::new(LIMITS);
        let t0 = Instant::now();
        // Petrov fails once before the flood: his entry is in the table.
        assert!(guess(&limiter, "petrov", t0));
        // A flood of made-up names, each failing once, fills the table.
        for i in 0..MAX_TRACKED_NAMES {
            guess(&limiter, &format!("made-up-{i}"), t0);
        }
        // Now a real name is guessed, over and over: at most max_failures guesses in a
        // lock-out are ever checked (none here: the table has no room to count them).
        let t1 = t0 + Duration::from_secs(60);
        let checked = (0..100).filter(|_| guess(&limiter, "ivanova", t1)).count();
        assert!(
            checked <= LIMITS.max_failures as usize,
            "{checked} guesses of ivanova's password were checked"
        );
        assert!(
            matches!(
                limiter.admit("ivanova", t1),
                Err(Refusal::Full(_) | Refusal::Locked(_))
            ),
            "ivanova is refused while the table is full"
        );
        // A name in the table is still counted, and locks.
        assert!(guess(&limiter, "petrov", t1));
        assert!(limiter.fail("petrov", t1), "petrov's third failure locks");
        assert!(matches!(
            limiter.admit("petrov", t1),
            Err(Refusal::Locked(_))
        ));
        // Once the flood's failures are stale, names are counted again: locks are kept.
        let later = t0 + LIMITS.lockout + Duration::from_secs(1);
        assert_eq!(
            limiter.admit("ivanova", later).map(|a| a.unchecked(later)),
            Ok(())
        );
        assert!(matches!(
            limiter.admit("petrov", later),
            Err(Refusal::Locked(_))
        ));
        assert_eq!(
            limiter.locked_for("petrov", later),
            Some(t1 + LIMITS.lockout - later)
        );
    }

    #[test]
    fn tokens_compare_whole_and_cookies_are_found_by_name() {
        assert!(same("abc", "abc"));
        assert!(!same("abc", "abd"));
        assert!(!same("abc", "ab"));
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("other=1; hub_console=abc; hub_console_login=xyz"),
        );
        assert_eq!(cookie(&headers, SESSION_COOKIE).as_deref(), Some("abc"));
        assert_eq!(cookie(&headers, LOGIN_COOKIE).as_deref(), Some("xyz"));
        assert_eq!(cookie(&headers, "missing"), None);
        let plain = Cookies { secure: false };
        let set = plain.set(plain.session(), "abc");
        let set = set.to_str().expect("ASCII");
        assert_eq!(set, "hub_console=abc; Path=/; HttpOnly; SameSite=Strict");
        let tls = Cookies { secure: true };
        let set = tls.set(tls.session(), "abc");
        assert_eq!(
            set.to_str().expect("ASCII"),
            "__Host-hub_console=abc; Path=/; Secure; HttpOnly; SameSite=Strict"
        );
        let gone = tls.expire(tls.login());
        assert_eq!(
            gone.to_str().expect("ASCII"),
            "__Host-hub_console_login=; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age=0"
        );
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("hub_console=plain; __Host-hub_console=tls"),
        );
        assert_eq!(cookie(&headers, tls.session()).as_deref(), Some("tls"));
    }

    #[test]
    fn only_local_paths_are_followed_after_login() {
        assert_eq!(local_path(Some("/sagas/1")), "/sagas/1");
        assert_eq!(local_path(Some("//evil.example/")), "/");
        assert_eq!(local_path(Some("/\\evil.example/")), "/");
        assert_eq!(local_path(Some("https://evil.example/")), "/");
        assert_eq!(local_path(Some("/login?next=/x")), "/");
        assert_eq!(local_path(None), "/");
    }
}
