-- Portal accounts made by registration (DOMAIN.md, "Using the portal", step 1): by e-mail
-- (assurance level basic) or by EDS (level high). Accounts made at an issuance desk live in
-- `accounts`; an EDS registration with the same identification number links to them.

CREATE TABLE portal_users (
    id                    uuid        PRIMARY KEY,
    email                 text        UNIQUE,          -- lower-cased; NULL for an EDS-only account
    password_hash         text,                        -- argon2 PHC string, never a password
    activated_at          timestamptz,                 -- e-mail: when the link was followed
    identification_number text        UNIQUE,          -- EDS: the certificate subject's
    eds_serial            text,                        -- the last certificate used
    linked_identifier     boolean     NOT NULL DEFAULT false, -- an issued identifier exists too
    assurance_level       text        NOT NULL CHECK (assurance_level IN ('basic', 'high')),
    surname               text        NOT NULL,
    given_name            text        NOT NULL,
    created_at            timestamptz NOT NULL DEFAULT now(),
    updated_at            timestamptz NOT NULL DEFAULT now(),
    CHECK (email IS NOT NULL OR identification_number IS NOT NULL)
);

-- Activation links: only the SHA-256 of the token is kept, so a database reader cannot activate.
CREATE TABLE email_activations (
    token_hash text        PRIMARY KEY,
    user_id    uuid        NOT NULL REFERENCES portal_users (id),
    expires_at timestamptz NOT NULL,
    used_at    timestamptz
);
CREATE INDEX email_activations_user ON email_activations (user_id);

-- EDS login and registration challenges: single use, short-lived.
CREATE TABLE eds_challenges (
    nonce      text        PRIMARY KEY,            -- hex
    issued_at  timestamptz NOT NULL,
    expires_at timestamptz NOT NULL,
    used_at    timestamptz
);
CREATE INDEX eds_challenges_expires ON eds_challenges (expires_at);
