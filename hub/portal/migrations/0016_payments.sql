-- Payments that match (issue 17): an order number gets several payment notices (short payments
-- that add up, a second payment, a payment after the invoice closed), each with its own ERIP
-- operation number, and refunds and reversals of single payments. A notice is now taken once per
-- (order number, status, operation number), not once per status.
ALTER TABLE erip_notifications DROP CONSTRAINT erip_notifications_pkey;
ALTER TABLE erip_notifications DROP CONSTRAINT erip_notifications_status_check;
ALTER TABLE erip_notifications ADD CONSTRAINT erip_notifications_status_check
    CHECK (status IN ('paid', 'expired', 'cancelled', 'refunded', 'reversed'));
CREATE UNIQUE INDEX erip_notifications_once
    ON erip_notifications (account_number, status, (COALESCE(operation_id, '')));

-- What the hub owes back to people: one row per due-back record of an application (an
-- overpayment, a second payment, a payment after expiry, withdrawal or an operator's cancel,
-- the fee of an application that ended unused), read from the procedure sagas' state, where the
-- saga records it in the same transaction as the step that caused it. `outstanding_kopecks` is
-- what ERIP's refunds and reversals have not settled yet.
CREATE VIEW payments_due_back AS
SELECT s.id                                           AS saga_id,
       s.business_key                                 AS application_id,
       s.state->>'number'                             AS application_number,
       s.state->>'order_number'                       AS order_number,
       s.state_name                                   AS application_state,
       d->>'reason'                                   AS reason,
       (d->>'amount_kopecks')::bigint                 AS amount_kopecks,
       (d->>'settled_kopecks')::bigint                AS settled_kopecks,
       (d->>'amount_kopecks')::bigint - (d->>'settled_kopecks')::bigint AS outstanding_kopecks,
       ARRAY(SELECT jsonb_array_elements_text(d->'operation_ids')) AS operation_ids,
       (d->>'recorded_at')::timestamptz               AS recorded_at
FROM sagas s
CROSS JOIN LATERAL jsonb_array_elements(COALESCE(s.state->'ledger'->'due_back', '[]'::jsonb)) AS d
WHERE s.saga_type = 'procedure';
