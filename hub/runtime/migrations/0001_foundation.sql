-- The hub's durable core: inbox, outbox, sagas with history, timers.

-- Messages already handled, per consumer: a redelivery or a re-send with the same message_id
-- is skipped. The row is written in the same transaction as the handler's effects.
CREATE TABLE inbox (
    consumer    text        NOT NULL,
    message_id  uuid        NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, message_id)
);
CREATE INDEX inbox_received_at ON inbox (received_at);

-- Messages to publish, written in the transaction that decided them; the relay publishes them
-- with confirms and marks them sent.
CREATE TABLE outbox (
    id           uuid        PRIMARY KEY,          -- the message_id
    exchange     text        NOT NULL,
    routing_key  text        NOT NULL,
    metadata     jsonb       NOT NULL,
    body         bytea       NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    available_at timestamptz NOT NULL DEFAULT now(), -- not before: backoff after a failed publish
    attempts     integer     NOT NULL DEFAULT 0,
    last_error   text,
    sent_at      timestamptz
);
CREATE INDEX outbox_pending ON outbox (available_at, created_at) WHERE sent_at IS NULL;

-- Saga instances: the current state, serialised by SELECT ... FOR UPDATE and a version.
CREATE TABLE sagas (
    id           uuid        PRIMARY KEY,
    saga_type    text        NOT NULL,
    business_key text,
    state_name   text        NOT NULL,
    state        jsonb       NOT NULL,
    terminal     boolean     NOT NULL DEFAULT false,
    version      bigint      NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX sagas_type_state ON sagas (saga_type, state_name, updated_at);
CREATE INDEX sagas_business_key ON sagas (business_key) WHERE business_key IS NOT NULL;

-- Every transition of every saga, in order. Append-only: see the trigger below.
CREATE TABLE saga_history (
    saga_id      uuid        NOT NULL REFERENCES sagas (id),
    version      bigint      NOT NULL,
    message_id   uuid        NOT NULL,
    message_type text        NOT NULL,
    from_state   text,
    to_state     text        NOT NULL,
    outgoing     uuid[]      NOT NULL DEFAULT '{}',
    at           timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (saga_id, version)
);

CREATE FUNCTION saga_history_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'saga_history is append-only';
END $$;
CREATE TRIGGER saga_history_append_only BEFORE UPDATE OR DELETE ON saga_history
    FOR EACH ROW EXECUTE FUNCTION saga_history_append_only();

-- Timeouts a saga asked for. When due, the poller turns a row into an outbox message in one
-- statement, so a timer fires once however many pollers run.
CREATE TABLE timers (
    id          uuid        PRIMARY KEY,            -- the message_id of the fired message
    saga_id     uuid        NOT NULL REFERENCES sagas (id),
    name        text        NOT NULL,
    due_at      timestamptz NOT NULL,
    exchange    text        NOT NULL,
    routing_key text        NOT NULL,
    metadata    jsonb       NOT NULL,
    body        bytea       NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (saga_id, name)
);
CREATE INDEX timers_due ON timers (due_at);
