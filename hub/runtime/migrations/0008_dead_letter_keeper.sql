-- The dead-letter keeper (hub/src/ops/keeper.rs) and the operators' workbench (hub/src/ops/dlq.rs).

-- A letter the broker itself dead-lettered (delivery limit, a rejection by an agency) or that was
-- published without a message id or type is still kept, with what is known.
ALTER TABLE dead_letters ALTER COLUMN message_id DROP NOT NULL;
ALTER TABLE dead_letters ALTER COLUMN message_type DROP NOT NULL;

-- What makes one delivery of a dead letter unique: a digest of its queue, properties (less the
-- broker's redelivery count) and body. A redelivery after a crash of the keeper has the same
-- fingerprint and is not kept twice; the same message failing again has a new failure time and
-- so a new fingerprint.
ALTER TABLE dead_letters ADD COLUMN fingerprint text;
CREATE UNIQUE INDEX dead_letters_fingerprint ON dead_letters (fingerprint);

-- `x-hub-replayed` of the letter as it died: how many times an operator had replayed this
-- message before it failed this time (0: never replayed). Shown as a flag; a replay by filter
-- leaves such letters alone unless asked.
ALTER TABLE dead_letters ADD COLUMN replayed_before integer NOT NULL DEFAULT 0;
-- `x-hub-dead-letter-id` of the letter as it died: the row it was last replayed from.
ALTER TABLE dead_letters ADD COLUMN replayed_from bigint;
