-- The relay claims pending outbox rows oldest first, a batch at a time. An index in that order
-- lets the claim stop after the batch, and lets index scans mark the entries of rows already
-- sent as dead, so a claim stays fast however many sent rows vacuum has not reached yet.
-- Measured with 435,000 sent rows not yet vacuumed: 216 ms per claim with the old
-- (available_at, created_at) index (a bitmap scan over every dead entry, then a sort), 0.05 ms
-- with this one.
DROP INDEX IF EXISTS outbox_pending;
CREATE INDEX outbox_pending ON outbox (created_at) WHERE sent_at IS NULL;

-- Every row is written once and updated once when sent: vacuum it early rather than at a fifth
-- of the table.
ALTER TABLE outbox SET (autovacuum_vacuum_scale_factor = 0.02, autovacuum_analyze_scale_factor = 0.02);
