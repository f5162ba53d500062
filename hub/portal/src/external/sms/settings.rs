//! Which protocol the hub speaks to each mobile operator, and the SMPP settings when it is SMPP.
//!
//! Each operator has its own settings under its prefix (`HUB_SMS_A1`, `HUB_SMS_MTS`,
//! `HUB_SMS_LIFE`), read from the environment (or, in code, from
//! [`IntegrationConfig::authority_settings`], which the lab and the tests fill), like the
//! per-system TLS files whose pattern they share:
//!
//! | suffix | default | meaning |
//! |---|---|---|
//! | `_PROTOCOL` | `http` | `http` (the JSON gateway at `_URL`) or `smpp` |
//! | `_SMPP_URL` | `smpp://127.0.0.1:2775` (A1), `:2776` (MTS), `:2777` (life:)) | the SMS centre; `smpps://` for TLS, verified with `_CA_FILE` (`_CLIENT_CERT`, `_CLIENT_KEY`) |
//! | `_SYSTEM_ID` | `hub` | the `system_id` of the bind |
//! | `_PASSWORD` | `a1-dev`, `mts-dev`, `life-dev` | the bind's password (the simulator's; refused in production) |
//! | `_SYSTEM_TYPE` | (empty) | the bind's `system_type` |
//! | `_WINDOW` | `10` | `submit_sm` awaiting their answer at once |
//! | `_THROUGHPUT` | `50` | `submit_sm` a second at most |
//! | `_LONG_TEXT` | `segments` | a long text in UDH `segments` or whole in `payload` (`message_payload`) |
//!
//! The subscriber check (which operator serves a number) stays on the HTTP gateway: SMPP has
//! none.

use adapters::smpp::{LongText, SmppConfig};
use contracts::person::Operator;
use hub_runtime::config::Problem;

use crate::config::IntegrationConfig;

/// The SMS centre simulators' development passwords, per operator: refused in production.
pub const DEV_SMPP_PASSWORDS: [(Operator, &str); 3] = [
    (Operator::A1, "a1-dev"),
    (Operator::Mts, "mts-dev"),
    (Operator::Life, "life-dev"),
];

/// The `system_id` the SMS centre simulators take by default.
pub const DEV_SMPP_SYSTEM_ID: &str = "hub";

/// How the hub sends an operator's SMS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmsProtocol {
    /// The operator's JSON gateway (`HUB_SMS_<OPERATOR>_URL`), reports by signed callback.
    Http,
    /// SMPP 3.4 to the operator's SMS centre, receipts over the same bind.
    Smpp,
}

/// The prefix of an operator's settings: `HUB_SMS_A1`.
pub fn prefix(operator: Operator) -> &'static str {
    match operator {
        Operator::A1 => "HUB_SMS_A1",
        Operator::Mts => "HUB_SMS_MTS",
        Operator::Life => "HUB_SMS_LIFE",
    }
}

/// The development password of `operator`'s SMS centre simulator.
pub fn dev_password(operator: Operator) -> &'static str {
    DEV_SMPP_PASSWORDS
        .iter()
        .find(|(o, _)| *o == operator)
        .map_or("", |(_, p)| p)
}

/// The simulator's SMPP port of `operator` (2775, 2776, 2777).
fn dev_port(operator: Operator) -> u16 {
    match operator {
        Operator::A1 => 2775,
        Operator::Mts => 2776,
        Operator::Life => 2777,
    }
}

/// A refused setting: the message names the variable and how to fix it.
fn bad(variable: &str, value: &str, how: &str) -> anyhow::Error {
    anyhow::anyhow!("{variable}={value:?} is not valid; {how}")
}

/// Where an operator's SMS centre is: host, port and whether over TLS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmppAddress {
    /// Host name or address.
    pub host: String,
    /// SMPP port.
    pub port: u16,
    /// `smpps://`: SMPP over TLS.
    pub tls: bool,
}

/// Parses `smpp://host:port` or `smpps://host:port` (the port is required).
///
/// Errors: another scheme, no host or no port, named with `variable`.
pub fn parse_address(variable: &str, value: &str) -> anyhow::Result<SmppAddress> {
    let how = "write smpps://HOST:PORT (SMPP over TLS) or, in development, smpp://HOST:PORT";
    let url = url::Url::parse(value).map_err(|_| bad(variable, value, how))?;
    let tls = match url.scheme() {
        "smpp" => false,
        "smpps" => true,
        _ => return Err(bad(variable, value, how)),
    };
    let (Some(host), Some(port)) = (url.host_str(), url.port()) else {
        return Err(bad(variable, value, how));
    };
    Ok(SmppAddress {
        host: host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned(),
        port,
        tls,
    })
}

impl IntegrationConfig {
    /// The value of `<prefix>_<suffix>` for `operator`, if set and not empty.
    fn sms_setting(&self, operator: Operator, suffix: &str) -> Option<String> {
        self.authority_setting(&format!("{}_{suffix}", prefix(operator)))
    }

    /// Which protocol the hub speaks to `operator` (`HUB_SMS_<OPERATOR>_PROTOCOL`).
    ///
    /// Errors: neither `http` nor `smpp`.
    pub fn sms_protocol(&self, operator: Operator) -> anyhow::Result<SmsProtocol> {
        match self.sms_setting(operator, "PROTOCOL").as_deref() {
            None | Some("http") => Ok(SmsProtocol::Http),
            Some("smpp") => Ok(SmsProtocol::Smpp),
            Some(other) => Err(bad(
                &format!("{}_PROTOCOL", prefix(operator)),
                other,
                "write http (the operator's JSON gateway) or smpp (its SMS centre)",
            )),
        }
    }

    /// The address of `operator`'s SMS centre (`HUB_SMS_<OPERATOR>_SMPP_URL`, else the
    /// simulator's on this machine).
    ///
    /// Errors: as [`parse_address`].
    pub fn smpp_address(&self, operator: Operator) -> anyhow::Result<SmppAddress> {
        let variable = format!("{}_SMPP_URL", prefix(operator));
        match self.sms_setting(operator, "SMPP_URL") {
            Some(v) => parse_address(&variable, &v),
            None => Ok(SmppAddress {
                host: "127.0.0.1".to_owned(),
                port: dev_port(operator),
                tls: false,
            }),
        }
    }

    /// The bind password of `operator`'s SMS centre (`HUB_SMS_<OPERATOR>_PASSWORD`, else the
    /// simulator's development one).
    pub fn smpp_password(&self, operator: Operator) -> String {
        self.sms_setting(operator, "PASSWORD")
            .unwrap_or_else(|| dev_password(operator).to_owned())
    }

    /// The client settings of `operator`'s SMS centre; `None` when the operator is on HTTP.
    ///
    /// Errors: a setting that is not valid (named with its variable and how to write it), or a
    /// TLS file that cannot be read.
    pub fn smpp_config(&self, operator: Operator) -> anyhow::Result<Option<SmppConfig>> {
        if self.sms_protocol(operator)? != SmsProtocol::Smpp {
            return Ok(None);
        }
        let p = prefix(operator);
        let address = self.smpp_address(operator)?;
        let system_id = self
            .sms_setting(operator, "SYSTEM_ID")
            .unwrap_or_else(|| DEV_SMPP_SYSTEM_ID.to_owned());
        let mut config = SmppConfig::new(
            operator,
            address.host,
            address.port,
            system_id,
            self.smpp_password(operator),
        );
        config.sender = self.sms_sender.clone();
        config.response_timeout = self.http_timeout;
        if let Some(t) = self.sms_setting(operator, "SYSTEM_TYPE") {
            config.system_type = t;
        }
        let count = |suffix: &str, default: u32| -> anyhow::Result<u32> {
            match self.sms_setting(operator, suffix) {
                None => Ok(default),
                Some(v) => v.parse::<u32>().ok().filter(|n| *n > 0).ok_or_else(|| {
                    bad(
                        &format!("{p}_{suffix}"),
                        &v,
                        "write a whole number, at least 1",
                    )
                }),
            }
        };
        config.window = usize::try_from(count("WINDOW", 10)?).unwrap_or(10);
        config.throughput = count("THROUGHPUT", 50)?;
        config.long_text = match self.sms_setting(operator, "LONG_TEXT").as_deref() {
            None | Some("segments") => LongText::Segments,
            Some("payload") => LongText::Payload,
            Some(other) => {
                return Err(bad(
                    &format!("{p}_LONG_TEXT"),
                    other,
                    "write segments (concatenated, with UDH) or payload (message_payload)",
                ));
            }
        };
        if address.tls {
            config.tls = Some(self.client_tls(p)?);
        }
        Ok(Some(config))
    }
}

/// What production mode refuses in the SMS centres' settings: for every operator on SMPP, the
/// simulator's development password (or none), and a connection without TLS; and any SMS
/// setting that is not valid.
pub fn production_problems(config: &IntegrationConfig) -> Vec<Problem> {
    let mut problems = Vec::new();
    for operator in Operator::ALL {
        let p = prefix(operator);
        match config.sms_protocol(operator) {
            Ok(SmsProtocol::Http) => continue,
            Ok(SmsProtocol::Smpp) => {}
            Err(e) => {
                problems.push(Problem::new(
                    format!("{p}_PROTOCOL"),
                    e.to_string(),
                    "write http or smpp",
                    false,
                ));
                continue;
            }
        }
        let password = config.sms_setting(operator, "PASSWORD");
        let dev = dev_password(operator);
        let why = match password.as_deref() {
            None => Some(format!(
                "not set: the SMS centre is bound with the simulator's development password {dev:?}"
            )),
            Some(v) if DEV_SMPP_PASSWORDS.iter().any(|(_, d)| *d == v) => Some(format!(
                "a development password of the SMS centre simulators ({v:?}): anyone who read this repository could bind as the hub"
            )),
            Some(_) => None,
        };
        if let Some(why) = why {
            problems.push(Problem::new(
                format!("{p}_PASSWORD"),
                why,
                "set it to the password the operator gave for the hub's system_id (at most 8 characters, SMPP 3.4), from a secret store",
                password.is_none(),
            ));
        }
        match config.smpp_address(operator) {
            Ok(a) if a.tls => {}
            Ok(a) => problems.push(Problem::new(
                format!("{p}_SMPP_URL"),
                format!(
                    "smpp://{}:{} is plain TCP: the bind password, the codes and passwords in the SMS and the receipts cross the network readable",
                    a.host, a.port
                ),
                format!(
                    "give the SMS centre as smpps://HOST:PORT (SMPP over TLS; {p}_CA_FILE for the operator's CA)"
                ),
                config.sms_setting(operator, "SMPP_URL").is_none(),
            )),
            Err(e) => problems.push(Problem::new(
                format!("{p}_SMPP_URL"),
                e.to_string(),
                "write smpps://HOST:PORT",
                false,
            )),
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The portal's settings with every flag at its default and `settings` as the environment.
    fn config(settings: &[(&str, &str)]) -> IntegrationConfig {
        #[derive(clap::Parser)]
        struct Portal {
            #[command(flatten)]
            integrations: IntegrationConfig,
        }
        let mut config = <Portal as clap::Parser>::try_parse_from(["hub"])
            .expect("defaults")
            .integrations;
        // Every operator's settings said here, so the environment running the test adds none.
        for operator in Operator::ALL {
            for suffix in [
                "PROTOCOL",
                "SMPP_URL",
                "SYSTEM_ID",
                "PASSWORD",
                "SYSTEM_TYPE",
                "WINDOW",
                "THROUGHPUT",
                "LONG_TEXT",
                "CA_FILE",
                "CLIENT_CERT",
                "CLIENT_KEY",
            ] {
                config
                    .authority_settings
                    .insert(format!("{}_{suffix}", prefix(operator)), String::new());
            }
        }
        for (k, v) in settings {
            config
                .authority_settings
                .insert((*k).to_owned(), (*v).to_owned());
        }
        config
    }

    fn lines(problems: &[Problem]) -> Vec<String> {
        problems.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn http_is_the_default_and_needs_no_smpp_setting() {
        let c = config(&[]);
        for operator in Operator::ALL {
            assert_eq!(c.sms_protocol(operator).expect("valid"), SmsProtocol::Http);
            assert!(c.smpp_config(operator).expect("valid").is_none());
        }
        assert_eq!(production_problems(&c), Vec::new());
    }

    #[test]
    fn smpp_settings_are_read_per_operator_with_the_simulators_defaults() {
        let c = config(&[
            ("HUB_SMS_A1_PROTOCOL", "smpp"),
            ("HUB_SMS_MTS_PROTOCOL", "smpp"),
            ("HUB_SMS_MTS_SMPP_URL", "smpp://smsc.mts.example:3775"),
            ("HUB_SMS_MTS_SYSTEM_ID", "portal"),
            ("HUB_SMS_MTS_SYSTEM_TYPE", "GOV"),
            ("HUB_SMS_MTS_WINDOW", "4"),
            ("HUB_SMS_MTS_THROUGHPUT", "20"),
            ("HUB_SMS_MTS_LONG_TEXT", "payload"),
        ]);
        let a1 = c.smpp_config(Operator::A1).expect("valid").expect("smpp");
        assert_eq!((a1.host.as_str(), a1.port), ("127.0.0.1", 2775));
        assert_eq!(a1.system_id, DEV_SMPP_SYSTEM_ID);
        assert_eq!(a1.password, "a1-dev");
        assert_eq!((a1.window, a1.throughput), (10, 50));
        assert_eq!(a1.long_text, LongText::Segments);
        assert!(a1.tls.is_none());
        let mts = c.smpp_config(Operator::Mts).expect("valid").expect("smpp");
        assert_eq!((mts.host.as_str(), mts.port), ("smsc.mts.example", 3775));
        assert_eq!(
            (mts.system_id.as_str(), mts.system_type.as_str()),
            ("portal", "GOV")
        );
        assert_eq!((mts.window, mts.throughput), (4, 20));
        assert_eq!(mts.long_text, LongText::Payload);
        assert!(c.smpp_config(Operator::Life).expect("valid").is_none());
    }

    #[test]
    fn a_setting_that_is_not_valid_is_refused_naming_its_variable() {
        for (variable, value) in [
            ("HUB_SMS_LIFE_PROTOCOL", "smtp"),
            ("HUB_SMS_LIFE_SMPP_URL", "http://smsc.life.example:2775"),
            ("HUB_SMS_LIFE_SMPP_URL", "smpp://smsc.life.example"),
            ("HUB_SMS_LIFE_WINDOW", "0"),
            ("HUB_SMS_LIFE_THROUGHPUT", "many"),
            ("HUB_SMS_LIFE_LONG_TEXT", "udh"),
        ] {
            let c = config(&[("HUB_SMS_LIFE_PROTOCOL", "smpp"), (variable, value)]);
            let e = c
                .smpp_config(Operator::Life)
                .expect_err(variable)
                .to_string();
            assert!(e.starts_with(&format!("{variable}=")), "{e}");
            assert!(e.contains("; write "), "says how: {e}");
        }
    }

    #[test]
    fn production_refuses_the_simulators_passwords_and_smpp_without_tls() {
        let c = config(&[
            ("HUB_SMS_A1_PROTOCOL", "smpp"),
            ("HUB_SMS_MTS_PROTOCOL", "smpp"),
            ("HUB_SMS_MTS_PASSWORD", "mts-dev"),
            ("HUB_SMS_LIFE_PROTOCOL", "smpp"),
            // Another operator's development password is refused too.
            ("HUB_SMS_LIFE_PASSWORD", "a1-dev"),
            ("HUB_SMS_LIFE_SMPP_URL", "smpps://smsc.life.example:3550"),
        ]);
        let lines = lines(&production_problems(&c));
        let named = |v: &str| {
            lines
                .iter()
                .filter(|l| l.starts_with(&format!("{v}: ")))
                .count()
        };
        for v in [
            "HUB_SMS_A1_PASSWORD",
            "HUB_SMS_MTS_PASSWORD",
            "HUB_SMS_LIFE_PASSWORD",
            "HUB_SMS_A1_SMPP_URL",
            "HUB_SMS_MTS_SMPP_URL",
        ] {
            assert_eq!(named(v), 1, "{v} once in {lines:#?}");
        }
        assert_eq!(named("HUB_SMS_LIFE_SMPP_URL"), 0, "over TLS: {lines:#?}");
        assert_eq!(lines.len(), 5, "{lines:#?}");
        assert!(
            lines.iter().all(|l| l.split("; ").count() >= 2),
            "each says why and how: {lines:#?}"
        );
        assert!(
            lines
                .iter()
                .filter(|l| l.contains("_PASSWORD: "))
                .all(|l| l.contains("from a secret store")),
            "each says how: {lines:#?}"
        );
        assert!(
            lines
                .iter()
                .filter(|l| l.contains("_SMPP_URL: "))
                .all(|l| l.contains("smpps://HOST:PORT")),
            "each says how: {lines:#?}"
        );

        // Real passwords over TLS: nothing refused.
        let c = config(&[
            ("HUB_SMS_A1_PROTOCOL", "smpp"),
            ("HUB_SMS_A1_PASSWORD", "Xk29pQ7z"),
            ("HUB_SMS_A1_SMPP_URL", "smpps://smsc.a1.example:3550"),
        ]);
        assert_eq!(production_problems(&c), Vec::new());
    }
}
