-- The personal cabinet: throttling of password and code attempts, and password recovery.

-- Failures per identifier as typed, whether or not it exists: counting unknown identifiers too
-- is what keeps the lock-out from telling who has an account.
CREATE TABLE login_throttle (
    identifier   text        PRIMARY KEY,
    failures     integer     NOT NULL DEFAULT 0,
    locked_until timestamptz,
    updated_at   timestamptz NOT NULL DEFAULT now()
);

-- A password recovery in progress: the code only as an argon2 hash.
CREATE TABLE recoveries (
    identifier    text        PRIMARY KEY REFERENCES identifiers (identifier),
    code_hash     text        NOT NULL,
    expires_at    timestamptz NOT NULL,
    attempts_left integer     NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now()
);
