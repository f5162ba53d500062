//! The portal's plan: the business sagas, the identifier registry, the adapter workers and the
//! callback listener, built from the configuration, with who may send what and the portal's
//! migrations. `hub run` runs it (with the operators' console beside it).
//!
//! [`plan`] puts together the groups built by the functions below it: the identity services
//! (`identity`: registration, cabinet, issuance, account, registry), the procedures
//! (`procedures`), the workers of the external systems (`adapter_workers`), the bridges to the
//! HTTP authorities (`bridges`), the callback listener (`callback_listener`) and the internal
//! listener of health and metrics (`ops_listener`).

use std::collections::HashMap;
use std::sync::Arc;

use adapters::backoffice::BackOfficeClient;
use adapters::email::{EmailClient, EmailConfig};
use adapters::erip::EripClient;
use adapters::gossuok::{Checker, GosSuokClient, Validator};
use adapters::mvd::MvdClient;
use adapters::sms::{SmsClient, SmsConfig};
use anyhow::Context as _;
use contracts::person::Operator;

use crate::cabinet::{Cabinet, CabinetSettings};
use crate::config::IntegrationConfig;
use crate::external::backoffice::worker::{self as backoffice_worker, BackOfficeWorker};
use crate::external::email::worker::{self as email_worker, EmailWorker};
use crate::external::erip::worker::{self as erip_worker, EripWorker};
use crate::external::mvd::worker::{self as mvd_worker, MvdWorker};
use crate::external::sms::smpp::{Receipts, SmppOperators};
use crate::external::sms::worker::{self as sms_worker, PhoneLimits, SmsWorker};
use crate::procedures::calendar::Calendar;
use crate::procedures::catalogue::{AuthorityChannel, Catalogue};
use crate::procedures::complaint::{self, ApplicationLookup, ComplaintSaga};
use crate::procedures::saga::{
    self as procedure, ProcedureSaga, ProcedureSettings, authority_queue,
};
use crate::registry::{self, Registry};
use crate::sagas::account::{self, AccountSaga, AccountSettings};
use crate::sagas::issuance::{self, IssuanceSaga, IssuanceSettings};
use hub_runtime::app::{Background, HubContext, Plan, QueueTask, Registration};
use hub_runtime::engine::{Command, Saga, SagaEngine, Service, ServiceRunner};
use hub_runtime::health::{ExternalSystem, Target};
use hub_runtime::secrets::Sealer;

/// Everything `hub run` runs.
///
/// Errors: a configuration the portal cannot start with (a seal key, an authority's URL or
/// secret, the mail server, the EDS roots), or an adapter whose HTTP client cannot be built.
pub fn plan(config: &IntegrationConfig) -> anyhow::Result<Plan> {
    // The portal's counters show at `GET /metrics` from the start, not from their first event.
    crate::metrics::portal_metrics();
    let sealer = Arc::new(Sealer::from_config(config.seal_key.as_deref())?);
    let catalogue = Arc::new(Catalogue::embedded()?);
    let parties = crate::parties::Parties::declare(&config.portal_user, &config.desks, &catalogue)
        .map_err(|e| anyhow::anyhow!("the parties on the bus: {e}"))?;
    // One key and one set of limits for the cabinet and the SMS worker: they count one phone.
    let limits = PhoneLimits::new(&config.limits, config.seal_key.as_deref());
    // One checker for EDS logins and signed decisions: one set of caches (verified signatures,
    // OCSP answers, CRLs), so the intermediate's status is asked once for both.
    let eds = eds_checker(config)?;
    let procedures = procedures(config, &catalogue, eds.clone())?;
    let bridges = bridges(config, &catalogue)?;
    let workers = adapter_workers(config, &sealer, &limits)?;
    let identity = identity(config, &sealer, &limits, eds)?;
    // The order in which consumers start and `hub topology` lists the queues: kept as it was.
    let mut registrations = vec![
        identity.registration,
        procedures.session_gate,
        procedures.decision_gate,
        workers.email,
        procedures.complaint,
        procedures.application_lookup,
        procedures.procedure,
        workers.erip,
        identity.cabinet,
        identity.issuance,
        identity.account,
        identity.registry,
        workers.mvd,
        workers.sms,
    ];
    registrations.extend(bridges.workers);
    let listener = callback_listener(config, catalogue, bridges.authority_secrets);
    let background = vec![listener, ops_listener(config)];
    // The SMS worker's binds are drained where the worker runs, also in a `--queues` process.
    let mut queue_tasks = Vec::new();
    if !workers.smpp.is_empty() {
        queue_tasks.push(QueueTask {
            queue: crate::external::sms::worker::QUEUE.to_owned(),
            task: smpp_drain(workers.smpp.clone()),
        });
    }
    // The portal's and the desks' queues: the hub declares them, they consume them.
    let mut foreign_queues = parties.queues();
    foreign_queues.extend(bridges.foreign_queues);
    Ok(Plan {
        registrations,
        foreign_queues,
        background,
        queue_tasks,
        senders: Some(Arc::new(crate::parties::Policy::new(parties))),
        migrations: vec![&crate::MIGRATOR],
    })
}

/// The identity services: registration (by e-mail or EDS), the personal cabinet, the
/// issuance and account sagas, and the identifier registry.
struct Identity {
    registration: Registration,
    cabinet: Registration,
    issuance: Registration,
    account: Registration,
    registry: Registration,
}

fn identity(
    config: &IntegrationConfig,
    sealer: &Arc<Sealer>,
    limits: &PhoneLimits,
    eds: Option<Arc<Checker>>,
) -> anyhow::Result<Identity> {
    let session_ttl = config.session_ttl;
    let registration = service_on(crate::registration::queue_spec(), {
        let sealer = sealer.clone();
        move |ctx| {
            crate::registration::Registration::new(
                sealer.clone(),
                crate::registration::RegistrationSettings {
                    session_ttl,
                    ..crate::registration::RegistrationSettings::default()
                },
                ctx.pool.clone(),
                eds.clone(),
            )
        }
    });
    let cabinet = Cabinet::new(
        sealer.clone(),
        CabinetSettings {
            recovery_interval: config.limits.recovery_interval,
            session_ttl,
            ..CabinetSettings::default()
        },
        limits.clone(),
    );
    let issuance_saga = IssuanceSaga::new(
        sealer.clone(),
        IssuanceSettings {
            code_ttl: config.phone_code_ttl,
            code_attempts: config.phone_code_attempts,
            temporary_password_ttl: config.temp_password_ttl,
            ..IssuanceSettings::default()
        },
    );
    let account_saga = AccountSaga::new(
        sealer.clone(),
        AccountSettings {
            code_ttl: config.phone_code_ttl,
            code_attempts: config.phone_code_attempts,
            ..AccountSettings::default()
        },
    );
    Ok(Identity {
        registration,
        cabinet: service_on(crate::cabinet::queue_spec(), move |_| cabinet.clone()),
        issuance: saga_on(issuance::queue_spec(), issuance::QUEUE, move |_| {
            issuance_saga.clone()
        }),
        account: saga_on(account::queue_spec(), account::QUEUE, move |_| {
            account_saga.clone()
        }),
        registry: service_on(registry::queue_spec(), |_| Registry),
    })
}

/// The checker of EDS certificates, when the configuration trusts a root; `None` refuses EDS
/// logins and registrations.
fn eds_checker(config: &IntegrationConfig) -> anyhow::Result<Option<Arc<Checker>>> {
    let roots = config.eds_roots()?;
    if roots.is_empty() {
        tracing::warn!(
            "no trusted EDS root (HUB_EDS_TRUSTED_ROOTS): EDS logins and registrations are refused"
        );
        return Ok(None);
    }
    let validator = Validator::new(&roots)
        .map_err(|f| anyhow::anyhow!("HUB_EDS_TRUSTED_ROOTS: {}", f.reason))?;
    let tls = config.client_tls("HUB_GOSSUOK")?;
    let client = GosSuokClient::new(config.gossuok_url.clone(), config.http_timeout)
        .and_then(|c| c.with_tls(&tls))
        .context("starting the EDS checker (HUB_GOSSUOK_URL)")?;
    Ok(Some(Arc::new(Checker::new(
        validator,
        client,
        config.ocsp_cache,
    ))))
}

/// The administrative procedures: the session gate in front of them, the procedure and
/// complaint sagas, and the lookup the complaint saga asks about an application.
struct Procedures {
    session_gate: Registration,
    decision_gate: Registration,
    complaint: Registration,
    application_lookup: Registration,
    procedure: Registration,
}

fn procedures(
    config: &IntegrationConfig,
    catalogue: &Arc<Catalogue>,
    checker: Option<Arc<Checker>>,
) -> anyhow::Result<Procedures> {
    let calendar = Arc::new(Calendar::belarus()?);
    let settings = ProcedureSettings {
        payment_ttl: config.payment_ttl,
        unsigned_decisions: config.unsigned_decisions,
    };
    let unsigned_decisions = config.unsigned_decisions;
    let complaint_saga = saga_on(complaint::queue_spec(), complaint::QUEUE, {
        let catalogue = catalogue.clone();
        move |ctx| {
            ComplaintSaga::new(
                catalogue.clone(),
                ctx.topology.namespace().as_str(),
                &ctx.broker_user,
            )
            .with_unsigned_decisions(unsigned_decisions)
        }
    });
    let procedure_saga = saga_on(procedure::queue_spec(), procedure::QUEUE, {
        let catalogue = catalogue.clone();
        move |ctx| {
            ProcedureSaga::new(
                catalogue.clone(),
                calendar.clone(),
                settings.clone(),
                ctx.topology.namespace().as_str(),
                &ctx.broker_user,
            )
        }
    });
    Ok(Procedures {
        // The portal's requests: their sessions looked up, then forwarded to the sagas.
        session_gate: service_on(crate::sessions::gate_queue_spec(), {
            let catalogue = catalogue.clone();
            move |ctx| {
                crate::sessions::SessionGate::new(
                    ctx.topology.work_queue(procedure::QUEUE),
                    ctx.topology.work_queue(complaint::QUEUE),
                    catalogue.clone(),
                )
            }
        }),
        // The authorities' signed decisions: checked (OCSP / CRL), then forwarded to the saga.
        decision_gate: service_on(crate::procedures::decision::gate_queue_spec(), {
            move |ctx| {
                crate::procedures::decision::DecisionGate::new(
                    ctx.topology.work_queue(procedure::QUEUE),
                    ctx.topology.work_queue(complaint::QUEUE),
                    checker.clone(),
                )
            }
        }),
        complaint: complaint_saga,
        application_lookup: service_on(complaint::lookup_queue_spec(), |ctx| {
            ApplicationLookup::new(ctx.pool.clone())
        }),
        procedure: procedure_saga,
    })
}

/// The workers of the external systems the portal calls itself: the mail server, ERIP, MVD
/// and the SMS gateways.
struct AdapterWorkers {
    email: Registration,
    erip: Registration,
    mvd: Registration,
    sms: Registration,
    /// The operators on SMPP: their clients start with the SMS worker and drain at shutdown.
    smpp: Arc<SmppOperators>,
}

fn adapter_workers(
    config: &IntegrationConfig,
    sealer: &Arc<Sealer>,
    limits: &PhoneLimits,
) -> anyhow::Result<AdapterWorkers> {
    let email = EmailClient::new(EmailConfig {
        smtp_url: config.smtp_url.clone(),
        from: config.email_from.clone(),
        timeout: config.http_timeout,
    })
    .map_err(|f| anyhow::anyhow!("HUB_SMTP_URL / HUB_EMAIL_FROM: {}", f.reason))?;
    let erip_tls = config.client_tls("HUB_ERIP")?;
    let erip = EripClient::new(config.erip_url.clone(), config.http_timeout)
        .and_then(|c| c.with_tls(&erip_tls))
        .context("starting the ERIP worker (HUB_ERIP_URL)")?;
    let erip_notify = config.callback_url.join("callbacks/erip").ok();
    let mvd_tls = config.client_tls("HUB_MVD")?;
    let mvd = MvdClient::new(config.mvd_url.clone(), config.http_timeout)
        .and_then(|c| c.with_tls(&mvd_tls))
        .context("starting the MVD worker (HUB_MVD_URL)")?;
    let sms_tls = [
        (Operator::A1, config.client_tls("HUB_SMS_A1")?),
        (Operator::Mts, config.client_tls("HUB_SMS_MTS")?),
        (Operator::Life, config.client_tls("HUB_SMS_LIFE")?),
    ];
    let sms = SmsClient::new(SmsConfig {
        operators: HashMap::from([
            (Operator::A1, config.sms_a1_url.clone()),
            (Operator::Mts, config.sms_mts_url.clone()),
            (Operator::Life, config.sms_life_url.clone()),
        ]),
        sender: config.sms_sender.clone(),
        timeout: config.http_timeout,
    })
    .and_then(|c| {
        sms_tls
            .iter()
            .try_fold(c, |c, (operator, tls)| c.with_tls(*operator, tls))
    })
    .context("starting the SMS worker (HUB_SMS_A1_URL, HUB_SMS_MTS_URL, HUB_SMS_LIFE_URL)")?;
    let smpp = Arc::new(SmppOperators::from_config(config).context("the operators on SMPP")?);
    let portal_url = config.portal_url.clone();
    let sms_callback = Some(config.callback_url.clone());
    let (sealer, limits) = (sealer.clone(), limits.clone());
    Ok(AdapterWorkers {
        email: service_on(email_worker::queue_spec(), {
            let sealer = sealer.clone();
            move |_| EmailWorker::new(email.clone(), sealer.clone(), portal_url.clone())
        }),
        erip: service_on(erip_worker::queue_spec(), move |ctx| {
            EripWorker::new(erip.clone(), ctx.pool.clone(), erip_notify.clone())
        }),
        mvd: service_on(mvd_worker::queue_spec(), move |_| {
            MvdWorker::new(mvd.clone())
        }),
        smpp: smpp.clone(),
        sms: service_on(sms_worker::queue_spec(), move |ctx| {
            let receipts = Receipts {
                pool: ctx.pool.clone(),
                app_id: ctx.app_id.clone(),
                limits: limits.clone(),
            };
            SmsWorker::new(
                sms.clone(),
                sealer.clone(),
                ctx.pool.clone(),
                sms_callback.clone(),
                limits.clone(),
            )
            .with_smpp(smpp.clone(), &receipts)
        }),
    })
}

/// The catalogue's authorities as the hub sees them: a queue authority consumes its queue
/// itself (the hub only declares it); an HTTP authority's queue is consumed by a bridge worker,
/// and its back-office answers on the callback listener, signed with its secret.
struct Bridges {
    foreign_queues: Vec<contracts::QueueSpec>,
    workers: Vec<Registration>,
    authority_secrets: HashMap<String, Vec<u8>>,
}

fn bridges(config: &IntegrationConfig, catalogue: &Catalogue) -> anyhow::Result<Bridges> {
    let mut bridges = Bridges {
        foreign_queues: Vec::new(),
        workers: Vec::new(),
        authority_secrets: HashMap::new(),
    };
    for a in catalogue.authorities() {
        let (base_url_key, secret_key) = match &a.channel {
            AuthorityChannel::Queue { .. } => {
                bridges.foreign_queues.push(contracts::QueueSpec::new(
                    authority_queue(&a.id),
                    Vec::<String>::new(),
                ));
                continue;
            }
            AuthorityChannel::Http {
                base_url_key,
                secret_key,
            } => (base_url_key, secret_key),
        };
        let (url, secret) = config.backoffice(&a.id, base_url_key, secret_key)?;
        let tls = config.client_tls(crate::config::tls_prefix(base_url_key))?;
        let client = BackOfficeClient::new(
            format!("the back-office of {}", a.id),
            url,
            secret.clone(),
            config.http_timeout,
        )
        .and_then(|c| c.with_tls(&tls))
        .with_context(|| format!("starting the bridge to {} ({base_url_key})", a.id))?;
        let callback = config
            .callback_url
            .join(&backoffice_worker::callback_path(&a.id))?;
        bridges.authority_secrets.insert(a.id.clone(), secret);
        bridges.workers.push(service_on(
            backoffice_worker::queue_spec(&a.id),
            move |ctx| BackOfficeWorker::new(client.clone(), callback.clone(), &ctx.broker_user),
        ));
    }
    Ok(bridges)
}

/// The HTTP listener on `HUB_HTTP_ADDR`: the external systems' callbacks ([`crate::http`]). It
/// refuses to start when the hub's broker user is an authority's own (the bridge speaks as that
/// user).
fn callback_listener(
    config: &IntegrationConfig,
    catalogue: Arc<Catalogue>,
    authority_secrets: HashMap<String, Vec<u8>>,
) -> Background {
    let addr = config.http_addr;
    let erip_secret = config.erip_secret.clone().into_bytes();
    let callback_url = config.callback_url.clone();
    let backoffice_window = config.backoffice_callback_window;
    let sms_secrets: HashMap<_, _> = contracts::person::Operator::ALL
        .into_iter()
        .map(|o| (o, config.sms_secret(o).as_bytes().to_vec()))
        .collect();
    let phone_limits = PhoneLimits::new(&config.limits, config.seal_key.as_deref());
    Box::new(move |ctx, _running, shutdown| {
        let callbacks = crate::http::Callbacks {
            erip_secret: erip_secret.clone(),
            sms_secrets: sms_secrets.clone(),
            phone_limits: phone_limits.clone(),
            procedure_queue: ctx.topology.work_queue(procedure::QUEUE),
            bus_exchange: ctx.topology.bus_exchange(),
            bridge_user: ctx.broker_user.clone(),
            authority_secrets: authority_secrets.clone(),
            callback_url: callback_url.clone(),
            backoffice_window,
        };
        // The bridge speaks as the hub's broker user: that user must be no authority's own.
        let checked = catalogue.check_bridge_user(&ctx.broker_user);
        let (pool, app_id) = (ctx.pool.clone(), ctx.app_id.clone());
        Box::pin(async move {
            checked?;
            crate::http::serve(addr, pool, app_id, callbacks, shutdown).await
        })
    })
}

/// How long the SMS centres' sends under way are waited for when the hub stops.
const SMPP_DRAIN_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// Drains the SMPP clients when the hub stops: no new send, the ones under way answered (up to
/// [`SMPP_DRAIN_WAIT`]), an `unbind` to each SMS centre; in every process that runs the SMS
/// worker, `hub run --queues adapter.sms` too.
fn smpp_drain(smpp: Arc<SmppOperators>) -> Background {
    Box::new(move |_ctx, _running, shutdown| {
        Box::pin(async move {
            shutdown.cancelled().await;
            smpp.drain(SMPP_DRAIN_WAIT).await;
            Ok(())
        })
    })
}

/// The internal HTTP listener on `HUB_OPS_ADDR`: health and metrics ([`crate::http::serve_ops`]),
/// apart from the callbacks' port that the external systems reach.
fn ops_listener(config: &IntegrationConfig) -> Background {
    let addr = config.ops_addr;
    Box::new(move |ctx, running, shutdown| {
        let (pool, readiness) = (ctx.pool.clone(), running.readiness.clone());
        Box::pin(crate::http::serve_ops(addr, pool, readiness, shutdown))
    })
}

/// `queue`, consumed by a [`ServiceRunner`] of the service `make` builds in each process.
fn service_on<S: Service>(
    queue: contracts::QueueSpec,
    make: impl Fn(&HubContext) -> S + Send + Sync + 'static,
) -> Registration {
    Registration {
        queue,
        factory: Box::new(move |ctx| {
            Arc::new(
                ServiceRunner::new(
                    Addressed(make(ctx)),
                    ctx.pool.clone(),
                    ctx.topology.clone(),
                    &ctx.app_id,
                )
                .with_group_commit(ctx.batch),
            )
        }),
    }
}

/// `queue`, consumed by a [`SagaEngine`] of the saga `make` builds in each process; `short`
/// is the queue's short name the engine re-queues to.
fn saga_on<S: Saga>(
    queue: contracts::QueueSpec,
    short: &'static str,
    make: impl Fn(&HubContext) -> S + Send + Sync + 'static,
) -> Registration {
    Registration {
        queue,
        factory: Box::new(move |ctx| {
            Arc::new(SagaEngine::new(
                Addressed(make(ctx)),
                ctx.pool.clone(),
                ctx.topology.clone(),
                short,
                &ctx.app_id,
            ))
        }),
    }
}

/// A saga or a service whose messages for a party go to that party's own queue
/// ([`crate::parties::address`]), whatever it sends them from.
struct Addressed<T>(T);

impl<S: Saga> Saga for Addressed<S> {
    type State = S::State;
    type Input = S::Input;

    fn saga_type(&self) -> &'static str {
        self.0.saga_type()
    }

    fn read(
        &self,
        message: &hub_runtime::broker::Incoming,
    ) -> Result<(hub_runtime::engine::SagaKey, Self::Input), contracts::Failure> {
        self.0.read(message)
    }

    fn transition(
        &self,
        state: Option<&Self::State>,
        input: &Self::Input,
        ctx: &hub_runtime::engine::StepContext<'_>,
    ) -> Result<hub_runtime::engine::Step<Self::State>, contracts::Failure> {
        crate::parties::address_step(self.0.transition(state, input, ctx)?)
    }

    fn fresh_secret(
        &self,
        state: Option<&Self::State>,
        input: &Self::Input,
    ) -> Option<hub_runtime::secrets::SecretKind> {
        self.0.fresh_secret(state, input)
    }

    fn likely_secret(&self, input: &Self::Input) -> Option<hub_runtime::secrets::SecretKind> {
        self.0.likely_secret(input)
    }

    fn state_name(&self, state: &Self::State) -> String {
        self.0.state_name(state)
    }

    fn is_terminal(&self, state: &Self::State) -> bool {
        self.0.is_terminal(state)
    }

    fn cancel(
        &self,
        state: &Self::State,
        request: &contracts::ops::CancelSaga,
        ctx: &hub_runtime::engine::StepContext<'_>,
    ) -> Result<hub_runtime::engine::Step<Self::State>, contracts::Failure> {
        crate::parties::address_step(self.0.cancel(state, request, ctx)?)
    }
}

impl<S: Service> Service for Addressed<S> {
    type Prepared = S::Prepared;

    fn name(&self) -> &'static str {
        self.0.name()
    }

    fn prepare<'a>(
        &'a self,
        message: &'a hub_runtime::broker::Incoming,
    ) -> futures_util::future::BoxFuture<'a, Result<Self::Prepared, contracts::Failure>> {
        self.0.prepare(message)
    }

    fn apply<'a>(
        &'a self,
        conn: &'a mut sqlx::PgConnection,
        message: &'a hub_runtime::broker::Incoming,
        prepared: Self::Prepared,
    ) -> futures_util::future::BoxFuture<'a, Result<Vec<Command>, contracts::Failure>> {
        Box::pin(async move {
            self.0
                .apply(conn, message, prepared)
                .await?
                .into_iter()
                .map(crate::parties::address)
                .collect()
        })
    }
}

/// Every external system of `config` (what the operators' console probes): MVD, the SMS
/// operators, ERIP, GosSUOK, the mail server, and the back-office of each HTTP authority of
/// `catalogue`. Each HTTP system carries the TLS settings its adapter is built with
/// (`<PREFIX>_CA_FILE`, `<PREFIX>_CLIENT_CERT`, `<PREFIX>_CLIENT_KEY`), so that a system with a
/// private CA or one that requires a client certificate is probed as the adapter reaches it,
/// and is probed at its probe path (`<PREFIX>_PROBE_PATH`, [`crate::probes`]).
///
/// Errors: a TLS file that cannot be read or parsed; an authority's URL that is not one; a
/// probe path that makes no URL.
pub fn external_systems(
    config: &IntegrationConfig,
    catalogue: &Catalogue,
) -> anyhow::Result<Vec<ExternalSystem>> {
    let http = |name: &str, url: &url::Url, prefix: &str, probe: &str| {
        let tls = config.client_tls(prefix)?.rustls_config()?;
        Ok::<_, anyhow::Error>(ExternalSystem {
            name: name.to_owned(),
            target: Target::Http(crate::probes::probe_url(config, prefix, url, probe)?),
            tls: Some(Arc::new(tls)),
        })
    };
    use crate::probes::{GOSSUOK_PROBE, SIMULATOR_PROBE};
    let mut out = vec![
        http(
            "MVD population registry",
            &config.mvd_url,
            "HUB_MVD",
            SIMULATOR_PROBE,
        )?,
        http(
            "SMS gateway A1",
            &config.sms_a1_url,
            "HUB_SMS_A1",
            SIMULATOR_PROBE,
        )?,
        http(
            "SMS gateway MTS",
            &config.sms_mts_url,
            "HUB_SMS_MTS",
            SIMULATOR_PROBE,
        )?,
        http(
            "SMS gateway life:)",
            &config.sms_life_url,
            "HUB_SMS_LIFE",
            SIMULATOR_PROBE,
        )?,
        http("ERIP", &config.erip_url, "HUB_ERIP", SIMULATOR_PROBE)?,
        http(
            "GosSUOK (state PKI)",
            &config.gossuok_url,
            "HUB_GOSSUOK",
            GOSSUOK_PROBE,
        )?,
    ];
    let smtp = &config.smtp_url;
    let port = smtp
        .port()
        .unwrap_or(if smtp.scheme() == "smtps" { 465 } else { 25 });
    if let Some(host) = smtp.host_str() {
        // `smtps://` is TLS from the first byte, trusting the OS's roots as the adapter does.
        let tls = if smtp.scheme() == "smtps" {
            let files = adapters::TlsFiles::lookup("HUB_SMTP", |_| None);
            Some(Arc::new(
                adapters::ClientTls::load(&files)?.rustls_config()?,
            ))
        } else {
            None
        };
        out.push(ExternalSystem {
            name: "Mail server (SMTP)".into(),
            target: Target::Tcp {
                host: host.to_owned(),
                port,
            },
            tls,
        });
    }
    for a in catalogue.authorities() {
        if let AuthorityChannel::Http {
            base_url_key,
            secret_key,
        } = &a.channel
        {
            let (url, _) = config.backoffice(&a.id, base_url_key, secret_key)?;
            out.push(http(
                &format!("Back-office of {} ({})", a.name, a.id),
                &url,
                crate::config::tls_prefix(base_url_key),
                crate::probes::BACKOFFICE_PROBE,
            )?);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The console probes each HTTP system with the TLS settings its adapter is built with: a
    /// CA bundle that cannot be read stops the start, naming its variable, as the adapter's.
    #[test]
    fn every_http_system_carries_its_tls_settings() {
        let catalogue = Catalogue::embedded().expect("catalogue");
        let config = crate::config::parsed_for_tests(&[]);
        let systems = external_systems(&config, &catalogue).expect("systems");
        assert!(systems.len() > 6, "{systems:?}");
        for s in &systems {
            match s.target {
                Target::Http(_) => assert!(s.tls.is_some(), "{}", s.name),
                Target::Tcp { .. } => assert!(s.tls.is_none(), "{}", s.name),
            }
        }
        // The mail server over smtps:// is greeted over TLS.
        let mut smtps = config.clone();
        smtps.smtp_url = "smtps://mail.example.by".parse().expect("URL");
        let mail = external_systems(&smtps, &catalogue)
            .expect("systems")
            .into_iter()
            .find(|s| matches!(s.target, Target::Tcp { port: 465, .. }))
            .expect("the mail server on 465");
        assert!(mail.tls.is_some());
        let authority = catalogue
            .authorities()
            .find_map(|a| match &a.channel {
                AuthorityChannel::Http { base_url_key, .. } => Some(base_url_key.clone()),
                AuthorityChannel::Queue { .. } => None,
            })
            .expect("an HTTP authority");
        for prefix in ["HUB_ERIP", crate::config::tls_prefix(&authority)] {
            let variable = format!("{prefix}_CA_FILE");
            let mut config = config.clone();
            config
                .authority_settings
                .insert(variable.clone(), "/nonexistent/ca.pem".to_owned());
            let e = external_systems(&config, &catalogue).expect_err("no such file");
            assert!(
                e.to_string()
                    .starts_with(&format!("{variable}: cannot read /nonexistent/ca.pem")),
                "{e}"
            );
        }
    }

    /// The SMPP binds' drain belongs to the SMS worker's queue: a process that consumes only
    /// that queue runs it (and unbinds at stop); one of other queues does not.
    #[test]
    fn a_process_of_the_sms_queue_drains_the_smpp_binds() {
        let mut config = crate::config::parsed_for_tests(&[]);
        for (k, v) in [
            ("HUB_SMS_A1_PROTOCOL", "smpp"),
            ("HUB_SMS_A1_SMPP_URL", "smpp://127.0.0.1:2775"),
        ] {
            config.authority_settings.insert(k.to_owned(), v.to_owned());
        }
        let queue = crate::external::sms::worker::QUEUE.to_owned();
        let sms_only = hub_runtime::app::only_queues(plan(&config).expect("plan"), &[queue])
            .expect("the SMS queue");
        assert_eq!(sms_only.background.len(), 1, "the drain, and no listener");
        let mvd = crate::external::mvd::worker::QUEUE.to_owned();
        let mvd_only =
            hub_runtime::app::only_queues(plan(&config).expect("plan"), &[mvd]).expect("MVD");
        assert!(mvd_only.background.is_empty());
        // Over HTTP there is nothing to drain.
        let http = crate::config::parsed_for_tests(&[]);
        let all = plan(&http).expect("plan");
        assert!(all.queue_tasks.is_empty());
    }
}
