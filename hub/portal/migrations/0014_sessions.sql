-- Portal sessions: a successful login (password, e-mail, EDS) opens one; the portal sends its
-- token with every application, withdrawal, receipt and complaint, and the hub takes the
-- applicant and the assurance level from here, never from the message. Only the SHA-256 of the
-- token is kept (it is 256 random bits, so a plain hash is enough): a database reader cannot
-- act as anyone. A session ends at `expires_at` (HUB_SESSION_TTL after the login), or earlier
-- when its row is deleted: logout, a password change or recovery (all the identifier's
-- sessions), a block of the identifier (all, in the block's transaction).
CREATE TABLE portal_sessions (
    token_hash      text        PRIMARY KEY,          -- hex SHA-256 of the token, never the token
    identifier      text        NOT NULL,             -- the identifier, or `user:<id>` for an e-mail account
    assurance_level text        NOT NULL CHECK (assurance_level IN ('basic', 'substantial', 'high')),
    method          text        NOT NULL CHECK (method IN ('password', 'email', 'eds')),
    created_at      timestamptz NOT NULL DEFAULT now(),
    expires_at      timestamptz NOT NULL
);
CREATE INDEX portal_sessions_identifier ON portal_sessions (identifier);
CREATE INDEX portal_sessions_expires ON portal_sessions (expires_at);
