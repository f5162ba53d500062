//! The console's page frame, its style sheet and the small pieces every page uses (times,
//! JSON, hidden CSRF fields). Values go through maud, which escapes them.

use std::sync::LazyLock;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use chrono::{DateTime, Utc};
use maud::{DOCTYPE, Markup, PreEscaped, html};
use sha2::{Digest, Sha256};

use super::signed_in::{Flash, SignedIn};

/// The one style sheet, inline: no files to serve, and the policy allows exactly it.
const CSS: &str = r#"
:root { --fg: #1d2530; --muted: #5d6b7a; --line: #d8dee6; --bg: #f6f8fa; --accent: #1f5fa8;
        --ok: #1e7d32; --bad: #b3261e; --warn: #9a6700; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
       color: var(--fg); background: var(--bg); }
header { display: flex; align-items: center; gap: 1.5rem; padding: .6rem 1.2rem;
         background: #132338; color: #fff; }
header a { color: #cfe0f5; text-decoration: none; padding: .2rem .4rem; border-radius: 4px; }
header a.active, header a:hover { background: #2a4466; color: #fff; }
header .brand { font-weight: 600; color: #fff; }
header .who { margin-left: auto; display: flex; gap: .6rem; align-items: center; }
main { padding: 1rem 1.2rem 3rem; max-width: 1400px; }
h1 { font-size: 1.35rem; margin: .3rem 0 1rem; }
h2 { font-size: 1.1rem; margin: 1.6rem 0 .5rem; }
table { border-collapse: collapse; width: 100%; background: #fff; margin: .4rem 0 1rem; }
th, td { border: 1px solid var(--line); padding: .3rem .5rem; text-align: left;
         vertical-align: top; }
th { background: #eef2f6; font-weight: 600; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
code, pre { font: 12.5px/1.4 ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; }
pre { background: #fff; border: 1px solid var(--line); padding: .6rem; overflow: auto;
      max-height: 32rem; }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: .25rem 1rem;
           background: #fff; border: 1px solid var(--line); padding: .6rem; }
dl.facts dt { color: var(--muted); }
dl.facts dd { margin: 0; }
form.inline { display: inline-flex; gap: .3rem; align-items: center; margin: .1rem 0; }
input[type=text], input[type=password], input[type=search] {
  padding: .3rem .4rem; border: 1px solid #aab5c2; border-radius: 4px; font: inherit; }
button { padding: .3rem .7rem; border: 1px solid #8796a8; border-radius: 4px; background: #fff;
         font: inherit; cursor: pointer; }
button.primary { background: var(--accent); border-color: var(--accent); color: #fff; }
button.danger { border-color: var(--bad); color: var(--bad); }
header button { background: transparent; color: #cfe0f5; border-color: #4d6482; }
.flash { padding: .5rem .8rem; border-radius: 4px; margin-bottom: 1rem; }
.flash.ok { background: #e4f4e6; border: 1px solid #9fd4a6; }
.flash.error { background: #fbe9e7; border: 1px solid #f0a9a2; }
.muted { color: var(--muted); }
.up { color: var(--ok); font-weight: 600; }
.down { color: var(--bad); font-weight: 600; }
.warn { color: var(--warn); font-weight: 600; }
.tag { display: inline-block; padding: 0 .35rem; border-radius: 3px; background: #e8edf3;
       margin-right: .2rem; font-size: 12px; }
section.group { background: #fff; border: 1px solid var(--line); padding: .6rem .8rem;
                margin-bottom: 1rem; }
section.group h2 { margin-top: 0; }
.login { max-width: 22rem; margin: 4rem auto; background: #fff; border: 1px solid var(--line);
         padding: 1.2rem 1.4rem; }
.login label { display: block; margin: .6rem 0 .2rem; }
.login input { width: 100%; }
.login button { margin-top: 1rem; width: 100%; }
.actions { display: flex; flex-wrap: wrap; gap: 1rem; margin: .6rem 0; }
.charts { display: grid; grid-template-columns: repeat(auto-fill, minmax(340px, 1fr)); gap: 1rem; }
figure.chart { margin: 0; background: #fff; border: 1px solid var(--line); padding: .5rem .6rem; }
figure.chart figcaption { margin-bottom: .3rem; }
figure.chart .no-data { height: 118px; margin: 0; display: flex; align-items: center;
                        justify-content: center; border: 1px dashed var(--line); }
svg.spark { display: block; width: 100%; max-width: 480px; height: auto; }
svg.spark .plot { fill: #fbfcfd; stroke: var(--line); }
svg.spark text { font: 10px system-ui, sans-serif; fill: var(--muted); }
svg.spark .line { fill: none; stroke-width: 1.6; stroke-linejoin: round; stroke-linecap: round; }
svg.spark .line.s1 { stroke: var(--accent); }
svg.spark .line.s2 { stroke: var(--warn); }
svg.spark .dot.s1, svg.spark text.legend.s1 { fill: var(--accent); }
svg.spark .dot.s2, svg.spark text.legend.s2 { fill: var(--warn); }
"#;

/// `Content-Security-Policy` of every page: nothing but this style sheet (by its hash), forms
/// that post here, no frames.
pub(super) fn content_security_policy() -> String {
    static POLICY: LazyLock<String> = LazyLock::new(|| {
        let hash = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(CSS));
        format!(
            "default-src 'none'; style-src 'sha256-{hash}'; img-src 'self'; form-action 'self'; \
             frame-ancestors 'none'; base-uri 'none'"
        )
    });
    POLICY.clone()
}

/// Which part of the console a page belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Section {
    DeadLetters,
    Sagas,
    Health,
    Monitor,
}

fn head(title: &str) -> Markup {
    html! {
        head {
            meta charset="utf-8";
            meta name="viewport" content="width=device-width, initial-scale=1";
            meta name="referrer" content="no-referrer";
            title { (title) " · hub console" }
            style { (PreEscaped(CSS)) }
        }
    }
}

/// A page of a logged-in operator: the navigation, who is logged in, the one-time message,
/// the title and `content`.
pub(super) fn page(
    title: &str,
    section: Section,
    signed: &SignedIn,
    flash: Option<Flash>,
    content: Markup,
) -> Markup {
    let link = |href: &str, name: &str, s: Section| {
        html! { a href=(href) class=[(s == section).then_some("active")] { (name) } }
    };
    html! {
        (DOCTYPE)
        html lang="en" {
            (head(title))
            body {
                header {
                    a.brand href="/" { "Hub console" }
                    nav {
                        (link("/dead-letters", "Dead letters", Section::DeadLetters))
                        " "
                        (link("/sagas", "Sagas", Section::Sagas))
                        " "
                        (link("/health", "Health", Section::Health))
                        " "
                        (link("/monitor", "Monitor", Section::Monitor))
                    }
                    div.who {
                        span { "Signed in as " strong #operator { (signed.operator) } }
                        form.inline method="post" action="/logout" {
                            (csrf(signed))
                            button type="submit" #logout { "Log out" }
                        }
                    }
                }
                main {
                    @if let Some(flash) = flash {
                        div #flash role="status"
                            class={ "flash " (if flash.ok { "ok" } else { "error" }) } {
                            (flash.text)
                        }
                    }
                    h1 { (title) }
                    (content)
                }
            }
        }
    }
}

/// The login page.
pub(super) fn login(token: &str, next: &str, error: Option<&str>) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            (head("Log in"))
            body {
                form.login method="post" action="/login" {
                    h1 { "Hub console" }
                    p.muted { "Operators of the integration hub only. Every login is recorded." }
                    @if let Some(error) = error {
                        div.flash.error #login-error role="alert" { (error) }
                    }
                    input type="hidden" name="csrf" value=(token);
                    input type="hidden" name="next" value=(next);
                    label for="name" { "Name" }
                    input #name type="text" name="name" autocomplete="username" required autofocus;
                    label for="password" { "Password" }
                    input #password type="password" name="password"
                        autocomplete="current-password" required;
                    button.primary type="submit" #login { "Log in" }
                }
            }
        }
    }
}

/// A page with a title and one sentence, for answers outside the normal flow (403, 404, 503).
pub(super) fn plain_page(status: StatusCode, title: &str, text: &str) -> Response {
    let markup = html! {
        (DOCTYPE)
        html lang="en" {
            (head(title))
            body {
                main {
                    h1 { (title) }
                    p { (text) }
                    p { a href="/dead-letters" { "Back to the console" } }
                }
            }
        }
    };
    (status, markup).into_response()
}

/// The hidden field with the session's CSRF token: in every form.
pub(super) fn csrf(signed: &SignedIn) -> Markup {
    html! { input type="hidden" name="csrf" value=(signed.csrf); }
}

/// A point in time, UTC, to the second.
pub(super) fn time(t: DateTime<Utc>) -> Markup {
    html! { time datetime=(t.to_rfc3339()) { (t.format("%Y-%m-%d %H:%M:%S")) } }
}

/// A point in time and how long ago it was.
pub(super) fn time_ago(t: DateTime<Utc>, now: DateTime<Utc>) -> Markup {
    html! {
        (time(t)) " " span.muted { "(" (crate::sagas::age_text(now - t)) " ago)" }
    }
}

/// An optional point in time.
pub(super) fn maybe_time(t: Option<DateTime<Utc>>) -> Markup {
    match t {
        Some(t) => time(t),
        None => html! { span.muted { "—" } },
    }
}

/// JSON, indented.
pub(super) fn json(value: &serde_json::Value) -> Markup {
    let text = serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string());
    html! { pre { (text) } }
}

/// A link to the saga a correlation id names, when it is a saga id.
pub(super) fn saga_link(correlation_id: Option<&str>) -> Markup {
    match correlation_id {
        Some(c) => match uuid::Uuid::parse_str(c) {
            Ok(id) => html! { a href={ "/sagas/" (id) } { code { (c) } } },
            Err(_) => html! { code { (c) } },
        },
        None => html! { span.muted { "—" } },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_escaped_and_the_policy_names_the_style_sheet() {
        let signed = SignedIn {
            id: "id".into(),
            operator: "<script>alert(1)</script>".into(),
            csrf: "t\"oken".into(),
        };
        let html = page(
            "Dead letters",
            Section::DeadLetters,
            &signed,
            Some(Flash::error("<b>no</b>")),
            html! { p { "x" } },
        )
        .into_string();
        assert!(!html.contains("<script>alert"));
        assert!(html.contains("&lt;script&gt;"));
        assert!(html.contains("&lt;b&gt;no&lt;/b&gt;"));
        assert!(html.contains("value=\"t&quot;oken\""));
        let policy = content_security_policy();
        assert!(policy.contains("style-src 'sha256-"));
        assert!(!policy.contains("unsafe"));
    }
}
