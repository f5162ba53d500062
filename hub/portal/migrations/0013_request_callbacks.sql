-- The callback URL each request to an external system first went out with, by the request's
-- Idempotency-Key (the command's message id). Every hub process has a HUB_CALLBACK_URL of its own
-- (its own listener; a replica's own address), and ERIP's invoice and the operators' SMS carry it
-- in their body, which the system compares under one key: a command redelivered to another
-- process (the first killed before it acknowledged, or its call timed out and the retry went
-- elsewhere) must send the very request the first one sent, or it is refused as a conflict (409
-- idempotency_conflict). The first process to send writes its URL here, every later attempt sends
-- the one it finds; the worker deletes the row in the transaction that records the answer, so the
-- table holds the requests in flight (and those of commands that were dead-lettered).
CREATE TABLE request_callbacks (
    request_id   uuid        PRIMARY KEY,
    callback_url text,                                 -- none: the request went without one
    created_at   timestamptz NOT NULL DEFAULT now()
);
