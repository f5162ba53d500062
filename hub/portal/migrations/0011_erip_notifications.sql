-- ERIP notifications the hub took: one row per order number (ERIP's account number) and status,
-- written in the transaction that puts the saga's message in the outbox. A copy of a
-- notification (ERIP's own retry, a duplicate, or a captured one re-sent) finds its row and
-- changes nothing; the saga's inbox would also drop its message, whose id is derived from the
-- same pair. Kept as the record of what ERIP said and when (a few rows per paid application).
CREATE TABLE erip_notifications (
    account_number text        NOT NULL,
    status         text        NOT NULL CHECK (status IN ('paid', 'expired', 'cancelled', 'refunded')),
    invoice_id     text        NOT NULL,
    event_id       text        NOT NULL,               -- the first copy's
    operation_id   text,                               -- paid, refunded
    occurred_at    timestamptz NOT NULL,               -- signed by ERIP
    received_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (account_number, status)
);
