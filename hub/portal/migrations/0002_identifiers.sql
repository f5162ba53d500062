-- The identifier registry: assigned identifiers, the phone each uses, and the accounts behind
-- them. Uniqueness of identifiers and phones is the database's job, not a lookup's.

CREATE TABLE identifiers (
    identifier  text        PRIMARY KEY,                 -- = the identification number
    phone       text        NOT NULL,
    application text        NOT NULL,                    -- business key of the application
    status      text        NOT NULL CHECK (status IN ('reserved', 'assigned')),
    reserved_at timestamptz NOT NULL DEFAULT now(),
    assigned_at timestamptz
);
-- One phone, one identifier (reserved ones included: two applications race for it).
CREATE UNIQUE INDEX identifiers_phone ON identifiers (phone);

CREATE TABLE accounts (
    identifier            text        PRIMARY KEY REFERENCES identifiers (identifier),
    password_hash         text        NOT NULL,          -- argon2 PHC string, never a password
    must_change_password  boolean     NOT NULL,          -- a temporary password is set
    temporary_expires_at  timestamptz,
    failed_logins         integer     NOT NULL DEFAULT 0,
    locked_until          timestamptz,
    blocked               boolean     NOT NULL DEFAULT false,
    created_at            timestamptz NOT NULL DEFAULT now(),
    updated_at            timestamptz NOT NULL DEFAULT now()
);

-- What happened to an account, kept for ever (blocking and unblocking restore, never erase).
CREATE TABLE account_events (
    id         bigserial   PRIMARY KEY,
    identifier text        NOT NULL REFERENCES identifiers (identifier),
    event      text        NOT NULL,
    at         timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX account_events_identifier ON account_events (identifier, at);

-- SMS sent on behalf of sagas: delivery reports name the operator's message id, and this is how
-- a report finds its saga again.
CREATE TABLE sms_messages (
    provider_message_id text        PRIMARY KEY,
    operator            text        NOT NULL,
    purpose             text        NOT NULL,
    correlation_id      text,
    reply_to            text,
    sent_at             timestamptz NOT NULL DEFAULT now()
);
