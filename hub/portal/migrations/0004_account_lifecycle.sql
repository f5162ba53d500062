-- Account lifecycle by desk application (block, unblock, change of phone). Every change is an
-- account_events row; these columns say which desk application made it and what it changed, so
-- the history explains itself after an unblock (nothing is ever erased).

ALTER TABLE account_events
    ADD COLUMN application text,  -- business key (desk_id/application_number) of a desk's request
    ADD COLUMN detail      jsonb; -- particulars: {"reason": ...} of a block, {"previous_phone": ...}
                                  -- of a change of phone

-- The events one desk application caused (operators search by it).
CREATE INDEX account_events_application ON account_events (application)
    WHERE application IS NOT NULL;
