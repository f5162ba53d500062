-- The SMS the hub sent over SMPP, by the command that asked for it (its message id): SMPP has no
-- idempotency key, so a redelivered `sms.send.v1` or `sms.notify_holder.v1` finds its row here and
-- is answered with the recorded send instead of being sent again. The row is committed as soon as
-- the SMS centre took the SMS, before the command is answered and acked. `provider_message_id` is
-- the SMS centre's message id, which its delivery receipts name (matched through `sms_messages`).
-- Rows older than 30 days are swept by later inserts.
CREATE TABLE smpp_sends (
    message_id          uuid        PRIMARY KEY,
    operator            text        NOT NULL,
    provider_message_id text        NOT NULL,
    sent_at             timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX smpp_sends_sent_at ON smpp_sends (sent_at);
