-- The recipient of each SMS sent on behalf of a saga, as the per-phone limits' key (the HMAC of
-- the number, never the number): a delivery report whose `to` has another key is refused.
-- Rows written before this column existed have none; their reports are not compared.
ALTER TABLE sms_messages ADD COLUMN to_key bytea;

-- Signed delivery reports about a message id the hub does not know (yet): the operator may report
-- before the SMS worker has committed the send. They are answered like any report with nothing
-- to do (so an answer never tells a known id from an unknown one) and kept here; the worker takes
-- its message's reports when it records the send. Reports no send claims are pruned after a day.
CREATE TABLE sms_early_reports (
    operator            text        NOT NULL,
    provider_message_id text        NOT NULL,
    delivered           boolean     NOT NULL,
    to_key              bytea       NOT NULL,
    at                  timestamptz NOT NULL,
    received_at         timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (operator, provider_message_id, delivered)
);
CREATE INDEX sms_early_reports_received ON sms_early_reports (received_at);
