//! The portal's plan: the business sagas, the identifier registry, the adapter workers and the
//! callback listener, built from the configuration, with who may send what and the portal's
//! migrations. `hub run` runs it (with the operators' console beside it).

use std::collections::HashMap;
use std::sync::Arc;

use adapters::mvd::MvdClient;
use adapters::sms::{SmsClient, SmsConfig};
use contracts::person::Operator;

use crate::cabinet::{Cabinet, CabinetSettings};
use crate::config::IntegrationConfig;
use crate::external::backoffice::worker::{self as backoffice_worker, BackOfficeWorker};
use crate::external::email::worker::{self as email_worker, EmailWorker};
use crate::external::erip::worker::{self as erip_worker, EripWorker};
use crate::external::mvd::worker::{self as mvd_worker, MvdWorker};
use crate::external::sms::worker::{self as sms_worker, PhoneLimits, SmsWorker};
use crate::procedures::calendar::Calendar;
use crate::procedures::catalogue::{AuthorityChannel, Catalogue};
use crate::procedures::complaint::{self, ApplicationLookup, ComplaintSaga};
use crate::procedures::saga::{
    self as procedure, ProcedureSaga, ProcedureSettings, authority_queue,
};
use crate::registry::{self, Registry};
use crate::sagas::issuance::{self, IssuanceSaga, IssuanceSettings};
use adapters::backoffice::BackOfficeClient;
use adapters::email::{EmailClient, EmailConfig};
use adapters::erip::EripClient;
use adapters::gossuok::{Checker, GosSuokClient, Validator};
use hub_runtime::app::{Background, Plan, Registration};
use hub_runtime::engine::{SagaEngine, ServiceRunner};
use hub_runtime::health::{ExternalSystem, Target};
use hub_runtime::secrets::Sealer;

/// Everything `hub run` runs.
pub fn plan(config: &IntegrationConfig) -> anyhow::Result<Plan> {
    let sealer = Arc::new(Sealer::from_config(config.seal_key.as_deref())?);
    let settings = IssuanceSettings {
        code_ttl: config.phone_code_ttl,
        code_attempts: config.phone_code_attempts,
        temporary_password_ttl: config.temp_password_ttl,
        ..IssuanceSettings::default()
    };
    let saga = IssuanceSaga::new(sealer.clone(), settings);
    let mvd = MvdClient::new(config.mvd_url.clone(), config.http_timeout);
    let sms = SmsClient::new(SmsConfig {
        operators: HashMap::from([
            (Operator::A1, config.sms_a1_url.clone()),
            (Operator::Mts, config.sms_mts_url.clone()),
            (Operator::Life, config.sms_life_url.clone()),
        ]),
        sender: config.sms_sender.clone(),
        timeout: config.http_timeout,
    });
    let callback = Some(config.callback_url.clone());
    let catalogue = Arc::new(Catalogue::embedded()?);
    let calendar = Arc::new(Calendar::belarus()?);
    let procedure_settings = ProcedureSettings {
        payment_ttl: config.payment_ttl,
    };
    let erip = EripClient::new(config.erip_url.clone(), config.http_timeout);
    let erip_notify = config.callback_url.join("callbacks/erip").ok();
    // A queue authority consumes its queue itself; an HTTP one's queue is the bridge's.
    let mut foreign_queues = Vec::new();
    let mut bridges = Vec::new();
    let mut authority_secrets = HashMap::new();
    for a in catalogue.authorities() {
        match &a.channel {
            AuthorityChannel::Queue { .. } => foreign_queues.push(contracts::QueueSpec::new(
                authority_queue(&a.id),
                Vec::<String>::new(),
            )),
            AuthorityChannel::Http {
                base_url_key,
                secret_key,
            } => {
                let (url, secret) = config.backoffice(&a.id, base_url_key, secret_key)?;
                let client = BackOfficeClient::new(
                    format!("the back-office of {}", a.id),
                    url,
                    secret.clone(),
                    config.http_timeout,
                );
                let callback = config
                    .callback_url
                    .join(&backoffice_worker::callback_path(&a.id))?;
                authority_secrets.insert(a.id.clone(), secret);
                bridges.push(Registration {
                    queue: backoffice_worker::queue_spec(&a.id),
                    factory: Box::new(move |ctx| {
                        Arc::new(ServiceRunner::new(
                            BackOfficeWorker::new(
                                client.clone(),
                                callback.clone(),
                                &ctx.broker_user,
                            ),
                            ctx.pool.clone(),
                            ctx.topology.clone(),
                            &ctx.app_id,
                        ))
                    }),
                });
            }
        }
    }
    // One key and one set of limits for the cabinet and the SMS worker: they count one phone.
    let limits = PhoneLimits::new(&config.limits, config.seal_key.as_deref());
    let cabinet = Cabinet::new(
        sealer.clone(),
        CabinetSettings {
            recovery_interval: config.limits.recovery_interval,
            ..CabinetSettings::default()
        },
        limits.clone(),
    );
    let email = EmailClient::new(EmailConfig {
        smtp_url: config.smtp_url.clone(),
        from: config.email_from.clone(),
        timeout: config.http_timeout,
    })
    .map_err(|f| anyhow::anyhow!("HUB_SMTP_URL / HUB_EMAIL_FROM: {}", f.reason))?;
    let portal_url = config.portal_url.clone();
    let roots = config.eds_roots()?;
    let eds = if roots.is_empty() {
        tracing::warn!(
            "no trusted EDS root (HUB_EDS_TRUSTED_ROOTS): EDS logins and registrations are refused"
        );
        None
    } else {
        let validator = Validator::new(&roots)
            .map_err(|f| anyhow::anyhow!("HUB_EDS_TRUSTED_ROOTS: {}", f.reason))?;
        let client = GosSuokClient::new(config.gossuok_url.clone(), config.http_timeout);
        Some(Arc::new(Checker::new(validator, client)))
    };
    let mut registrations = vec![
        Registration {
            queue: crate::registration::queue_spec(),
            factory: Box::new({
                let sealer = sealer.clone();
                move |ctx| {
                    Arc::new(ServiceRunner::new(
                        crate::registration::Registration::new(
                            sealer.clone(),
                            crate::registration::RegistrationSettings::default(),
                            ctx.pool.clone(),
                            eds.clone(),
                        ),
                        ctx.pool.clone(),
                        ctx.topology.clone(),
                        &ctx.app_id,
                    ))
                }
            }),
        },
        Registration {
            queue: email_worker::queue_spec(),
            factory: Box::new({
                let sealer = sealer.clone();
                move |ctx| {
                    Arc::new(ServiceRunner::new(
                        EmailWorker::new(email.clone(), sealer.clone(), portal_url.clone()),
                        ctx.pool.clone(),
                        ctx.topology.clone(),
                        &ctx.app_id,
                    ))
                }
            }),
        },
        Registration {
            queue: complaint::queue_spec(),
            factory: Box::new({
                let catalogue = catalogue.clone();
                move |ctx| {
                    Arc::new(SagaEngine::new(
                        ComplaintSaga::new(
                            catalogue.clone(),
                            ctx.topology.namespace().as_str(),
                            &ctx.broker_user,
                        ),
                        ctx.pool.clone(),
                        ctx.topology.clone(),
                        complaint::QUEUE,
                        &ctx.app_id,
                    ))
                }
            }),
        },
        Registration {
            queue: complaint::lookup_queue_spec(),
            factory: Box::new(|ctx| {
                Arc::new(ServiceRunner::new(
                    ApplicationLookup::new(ctx.pool.clone()),
                    ctx.pool.clone(),
                    ctx.topology.clone(),
                    &ctx.app_id,
                ))
            }),
        },
        Registration {
            queue: procedure::queue_spec(),
            factory: Box::new({
                let catalogue = catalogue.clone();
                move |ctx| {
                    Arc::new(SagaEngine::new(
                        ProcedureSaga::new(
                            catalogue.clone(),
                            calendar.clone(),
                            procedure_settings.clone(),
                            ctx.topology.namespace().as_str(),
                            &ctx.broker_user,
                        ),
                        ctx.pool.clone(),
                        ctx.topology.clone(),
                        procedure::QUEUE,
                        &ctx.app_id,
                    ))
                }
            }),
        },
        Registration {
            queue: erip_worker::queue_spec(),
            factory: Box::new(move |ctx| {
                Arc::new(ServiceRunner::new(
                    EripWorker::new(erip.clone(), ctx.pool.clone(), erip_notify.clone()),
                    ctx.pool.clone(),
                    ctx.topology.clone(),
                    &ctx.app_id,
                ))
            }),
        },
        Registration {
            queue: crate::cabinet::queue_spec(),
            factory: Box::new(move |ctx| {
                Arc::new(ServiceRunner::new(
                    cabinet.clone(),
                    ctx.pool.clone(),
                    ctx.topology.clone(),
                    &ctx.app_id,
                ))
            }),
        },
        Registration {
            queue: issuance::queue_spec(),
            factory: Box::new(move |ctx| {
                Arc::new(SagaEngine::new(
                    saga.clone(),
                    ctx.pool.clone(),
                    ctx.topology.clone(),
                    issuance::QUEUE,
                    &ctx.app_id,
                ))
            }),
        },
        Registration {
            queue: crate::sagas::account::queue_spec(),
            factory: Box::new({
                use crate::sagas::account::{AccountSaga, AccountSettings, QUEUE};
                let saga = AccountSaga::new(
                    sealer.clone(),
                    AccountSettings {
                        code_ttl: config.phone_code_ttl,
                        code_attempts: config.phone_code_attempts,
                        ..AccountSettings::default()
                    },
                );
                move |ctx| {
                    Arc::new(SagaEngine::new(
                        saga.clone(),
                        ctx.pool.clone(),
                        ctx.topology.clone(),
                        QUEUE,
                        &ctx.app_id,
                    ))
                }
            }),
        },
        Registration {
            queue: registry::queue_spec(),
            factory: Box::new(|ctx| {
                Arc::new(ServiceRunner::new(
                    Registry,
                    ctx.pool.clone(),
                    ctx.topology.clone(),
                    &ctx.app_id,
                ))
            }),
        },
        Registration {
            queue: mvd_worker::queue_spec(),
            factory: Box::new(move |ctx| {
                Arc::new(ServiceRunner::new(
                    MvdWorker::new(mvd.clone()),
                    ctx.pool.clone(),
                    ctx.topology.clone(),
                    &ctx.app_id,
                ))
            }),
        },
        Registration {
            queue: sms_worker::queue_spec(),
            factory: Box::new(move |ctx| {
                Arc::new(ServiceRunner::new(
                    SmsWorker::new(
                        sms.clone(),
                        sealer.clone(),
                        ctx.pool.clone(),
                        callback.clone(),
                        limits.clone(),
                    ),
                    ctx.pool.clone(),
                    ctx.topology.clone(),
                    &ctx.app_id,
                ))
            }),
        },
    ];
    registrations.extend(bridges);
    let addr = config.http_addr;
    let erip_secret = config.erip_secret.clone().into_bytes();
    let http: Background = Box::new(move |ctx, running, shutdown| {
        let callbacks = crate::http::Callbacks {
            erip_secret: erip_secret.clone(),
            procedure_queue: ctx.topology.work_queue(procedure::QUEUE),
            bus_exchange: ctx.topology.bus_exchange(),
            bridge_user: ctx.broker_user.clone(),
            authority_secrets: authority_secrets.clone(),
        };
        // The bridge speaks as the hub's broker user: that user must be no authority's own.
        let checked = catalogue.check_bridge_user(&ctx.broker_user);
        let (pool, app_id) = (ctx.pool.clone(), ctx.app_id.clone());
        let readiness = running.readiness.clone();
        Box::pin(async move {
            checked?;
            crate::http::serve(addr, pool, app_id, callbacks, readiness, shutdown).await
        })
    });
    Ok(Plan {
        registrations,
        foreign_queues,
        background: vec![http],
        senders: Some(Arc::new(crate::agency::Senders)),
        migrations: vec![&crate::MIGRATOR],
    })
}

/// Every external system of `config` (what the operators' console probes): MVD, the SMS operators, ERIP, GosSUOK, the mail server,
/// and the back-office of each HTTP authority of `catalogue`.
pub fn external_systems(
    config: &IntegrationConfig,
    catalogue: &Catalogue,
) -> anyhow::Result<Vec<ExternalSystem>> {
    let http = |name: &str, url: &url::Url| ExternalSystem {
        name: name.to_owned(),
        target: Target::Http(url.clone()),
    };
    let mut out = vec![
        http("MVD population registry", &config.mvd_url),
        http("SMS gateway A1", &config.sms_a1_url),
        http("SMS gateway MTS", &config.sms_mts_url),
        http("SMS gateway life:)", &config.sms_life_url),
        http("ERIP", &config.erip_url),
        http("GosSUOK (state PKI)", &config.gossuok_url),
    ];
    let smtp = &config.smtp_url;
    let port = smtp
        .port()
        .unwrap_or(if smtp.scheme() == "smtps" { 465 } else { 25 });
    if let Some(host) = smtp.host_str() {
        out.push(ExternalSystem {
            name: "Mail server (SMTP)".into(),
            target: Target::Tcp {
                host: host.to_owned(),
                port,
            },
        });
    }
    for a in catalogue.authorities() {
        if let AuthorityChannel::Http {
            base_url_key,
            secret_key,
        } = &a.channel
        {
            let (url, _) = config.backoffice(&a.id, base_url_key, secret_key)?;
            out.push(http(&format!("Back-office of {} ({})", a.name, a.id), &url));
        }
    }
    Ok(out)
}
