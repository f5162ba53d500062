-- Unblocking in the cabinet (issue 17): the person asks, a code goes to the phone the registry
-- holds, and the code with a new password unblocks. As for a recovery, the code is kept only as
-- an argon2 hash, with the keyed hash of the phone it went to (wrong codes count against it).

CREATE TABLE unblock_codes (
    identifier    text        PRIMARY KEY REFERENCES identifiers (identifier),
    code_hash     text        NOT NULL,
    expires_at    timestamptz NOT NULL,
    attempts_left integer     NOT NULL,
    phone_key     bytea,
    created_at    timestamptz NOT NULL DEFAULT now()
);
