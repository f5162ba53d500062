-- Operations: the dead-letter keeper's table and the operators' audit trail.

-- Every dead letter, moved here from its `ns.Q.dead` queue by the keeper (hub/src/ops/keeper.rs).
-- Bodies are kept as they died: a sensitive one was already redacted by the consumer, a secret
-- inside one is sealed.
CREATE TABLE dead_letters (
    id                    bigserial   PRIMARY KEY,
    message_id            uuid        NOT NULL,
    message_type          text        NOT NULL,
    queue                 text        NOT NULL,            -- the work queue it died on (short name)
    original_exchange     text        NOT NULL,
    original_routing_key  text        NOT NULL,
    error_kind            text        NOT NULL,            -- invalid_input, permanent, retries_exhausted, handler_panicked, unrouted
    error                 text        NOT NULL,
    attempts              integer     NOT NULL DEFAULT 0,
    first_failure_at      timestamptz,
    last_failure_at       timestamptz,
    correlation_id        text,                            -- the saga it belongs to, if any
    properties            jsonb       NOT NULL,            -- metadata and headers as received
    body                  bytea       NOT NULL,
    status                text        NOT NULL DEFAULT 'new'
                          CHECK (status IN ('new', 'replayed', 'discarded')),
    replay_count          integer     NOT NULL DEFAULT 0,
    replayed_at           timestamptz,
    discarded_at          timestamptz,
    discard_reason        text,
    received_at           timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX dead_letters_status ON dead_letters (status, received_at);
CREATE INDEX dead_letters_queue ON dead_letters (queue, message_type);
CREATE INDEX dead_letters_correlation ON dead_letters (correlation_id) WHERE correlation_id IS NOT NULL;
CREATE INDEX dead_letters_message ON dead_letters (message_id);

-- What operators did: who, when, what, to what, why. Append-only.
CREATE TABLE ops_audit (
    id        bigserial   PRIMARY KEY,
    at        timestamptz NOT NULL DEFAULT now(),
    operator  text        NOT NULL,
    action    text        NOT NULL,     -- dlq.replay, dlq.discard, dlq.show_unmasked, saga.cancel, saga.retry_step, console.login, ...
    target    text        NOT NULL,     -- dead letter id, saga id, ...
    reason    text,
    details   jsonb       NOT NULL DEFAULT '{}'
);
CREATE INDEX ops_audit_at ON ops_audit (at);

CREATE FUNCTION ops_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'ops_audit is append-only';
END $$;
CREATE TRIGGER ops_audit_append_only BEFORE UPDATE OR DELETE ON ops_audit
    FOR EACH ROW EXECUTE FUNCTION ops_audit_append_only();
