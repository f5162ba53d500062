//! The hub's own plan: the business sagas, the identifier registry, the adapter workers and the
//! callback listener, built from the configuration. `hub run` runs this.

use std::collections::HashMap;
use std::sync::Arc;

use adapters::mvd::MvdClient;
use adapters::sms::{SmsClient, SmsConfig};
use contracts::person::Operator;

use crate::app::{Background, Plan, Registration};
use crate::cabinet::{Cabinet, CabinetSettings};
use crate::config::IntegrationConfig;
use crate::engine::{SagaEngine, ServiceRunner};
use crate::registry::{self, Registry};
use crate::sagas::issuance::{self, IssuanceSaga, IssuanceSettings};
use crate::secrets::Sealer;
use crate::workers::mvd::{self as mvd_worker, MvdWorker};
use crate::workers::sms::{self as sms_worker, SmsWorker};

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
    let cabinet = Cabinet::new(sealer.clone(), CabinetSettings::default());
    let registrations = vec![
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
                    SmsWorker::new(sms.clone(), sealer.clone(), callback.clone()),
                    ctx.pool.clone(),
                    ctx.topology.clone(),
                    &ctx.app_id,
                ))
            }),
        },
    ];
    let addr = config.http_addr;
    let http: Background = Box::new(move |ctx, shutdown| {
        Box::pin(crate::http::serve(
            addr,
            ctx.pool.clone(),
            ctx.app_id.clone(),
            shutdown,
        ))
    });
    Ok(Plan {
        registrations,
        background: vec![http],
    })
}
