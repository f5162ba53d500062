//! The parties the lab and the tests play (the portal, the desks, the bus authorities), each as
//! its own broker user on the local RabbitMQ, with the development password and the least
//! permissions `hub topology --agency-users` prints.

use std::sync::Mutex;

use anyhow::Context;
use hub_portal::agency;

/// The password the lab's and the tests' party users have on a development broker.
pub const PARTY_PASSWORD: &str = agency::DEV_PASSWORD;

/// The broker users this process already made sure of.
static ENSURED: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// `amqp_url` with `user` and [`PARTY_PASSWORD`] as its credentials.
///
/// Errors: a URL that does not parse or takes no user.
pub fn url_as(amqp_url: &str, user: &str) -> anyhow::Result<url::Url> {
    let mut url = url::Url::parse(amqp_url).context("the AMQP URL does not parse")?;
    url.set_username(user)
        .map_err(|()| anyhow::anyhow!("the AMQP URL takes no user"))?;
    url.set_password(Some(PARTY_PASSWORD))
        .map_err(|()| anyhow::anyhow!("the AMQP URL takes no password"))?;
    Ok(url)
}

/// Makes sure party `user` exists on the broker of `amqp_url` with [`PARTY_PASSWORD`]: the
/// portal's `portal_user`, a desk's `desk-<id>`, or a bus authority's user of the catalogue.
/// Once per process, and with `rabbitmqctl` only when the user cannot log in already.
///
/// Errors: the user cannot log in and `rabbitmqctl` could not make it (it must run where it
/// may administer the broker), naming the commands that would.
pub async fn ensure_party_user(
    amqp_url: &str,
    user: &str,
    portal_user: &str,
) -> anyhow::Result<()> {
    if ENSURED
        .lock()
        .map_err(|_| anyhow::anyhow!("lock poisoned"))?
        .iter()
        .any(|u| u == user)
    {
        return Ok(());
    }
    let url = url_as(amqp_url, user)?;
    let can_log_in = match lapin::Connection::connect(
        url.as_str(),
        lapin::ConnectionProperties::default(),
    )
    .await
    {
        Ok(c) => {
            let _ = c.close(200, "checked".into()).await;
            true
        }
        Err(_) => false,
    };
    if !can_log_in {
        let vhost = hub_runtime::broker::vhost(amqp_url);
        let (user, portal_user) = (user.to_owned(), portal_user.to_owned());
        tokio::task::spawn_blocking(move || make_user(&user, &portal_user, &vhost))
            .await
            .context("the rabbitmqctl task")??;
    }
    ENSURED
        .lock()
        .map_err(|_| anyhow::anyhow!("lock poisoned"))?
        .push(user.to_owned());
    Ok(())
}

fn make_user(user: &str, portal_user: &str, vhost: &str) -> anyhow::Result<()> {
    let made = if user == portal_user {
        agency::ensure_portal_user_with_rabbitmqctl(user, PARTY_PASSWORD, vhost)
    } else if let Some(desk) = user.strip_prefix(agency::DESK_USER_PREFIX) {
        agency::ensure_desk_user_with_rabbitmqctl(desk, PARTY_PASSWORD, vhost).map(drop)
    } else {
        let catalogue = hub_portal::procedures::catalogue::Catalogue::embedded()?;
        let authority = catalogue
            .authorities()
            .find(|a| a.broker_user() == Some(user))
            .ok_or_else(|| anyhow::anyhow!("{user:?} is no party the lab plays"))?;
        agency::ensure_user_with_rabbitmqctl(user, PARTY_PASSWORD, &authority.id, vhost)
    };
    made.with_context(|| {
        format!(
            "the broker user {user} could not be made: run where rabbitmqctl may administer the \
             broker (root or the rabbitmq user), or create the users with the commands of \
             `hub topology --agency-users` and the password {PARTY_PASSWORD:?}"
        )
    })
}
