-- Administrative procedures: ERIP invoices by order number, and the lookup of an application's
-- saga by its order number (ERIP's notifications name only the order number).

CREATE TABLE erip_invoices (
    order_number   text        PRIMARY KEY,
    invoice_id     text        NOT NULL,
    correlation_id text,
    created_at     timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX sagas_procedure_order_number ON sagas ((state->>'order_number'))
    WHERE saga_type = 'procedure';
