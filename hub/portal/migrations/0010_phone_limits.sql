-- Per-phone limits against brute force and SMS floods: what happened to a phone number, counted
-- in rolling windows by every hub process alike (SMS sent, recovery codes issued, wrong codes
-- typed). The number is kept only as a keyed hash (HMAC-SHA256 under a key derived from
-- HUB_SEAL_KEY): the table holds every number anyone asked an SMS for, holders or not, and a
-- plain hash of a 12-digit number is reversed by trying them all.

CREATE TABLE phone_events (
    id         bigserial   PRIMARY KEY,
    phone_key  bytea       NOT NULL,                    -- HMAC-SHA256 of +375XXXXXXXXX
    kind       text        NOT NULL CHECK (kind IN ('sms', 'recovery_code', 'wrong_code')),
    message_id uuid,                                    -- the cause: a redelivery counts once
    at         timestamptz NOT NULL DEFAULT now()
);
-- The window counts: this phone's events of one kind, newest first.
CREATE INDEX phone_events_window ON phone_events (phone_key, kind, at);
-- Expired events are swept a few at a time, oldest first.
CREATE INDEX phone_events_expiry ON phone_events (kind, at);
CREATE UNIQUE INDEX phone_events_once ON phone_events (kind, message_id)
    WHERE message_id IS NOT NULL;

-- The phone a recovery code went to, so a wrong code counts against that phone even if the
-- identifier's phone changes meanwhile (NULL for codes sent before this migration).
ALTER TABLE recoveries ADD COLUMN phone_key bytea;
