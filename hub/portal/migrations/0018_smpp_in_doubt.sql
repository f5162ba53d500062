-- An SMS over SMPP is recorded before it is submitted, not after: a row without a
-- `provider_message_id` is a send under way, or one whose fate the hub does not know (the
-- process died, or the SMS centre's answer was lost with its connection). A redelivered command
-- that finds such a row sends again, as SMPP allows nothing else, and counts the resend here;
-- a command whose submits the SMS centre answered with a refusal has its row taken out again.
--
-- `resent_in_doubt` is how many `submit_sm` went out again after one the SMS centre may have
-- taken: at most that many copies may show on the phone. `phone_key` is the recipient's
-- HMAC-SHA256, the same pseudonym as `phone_events.phone_key` (never the number), so a repeated
-- SMS on a phone can be matched to the resends that explain it.
ALTER TABLE smpp_sends
    ALTER COLUMN provider_message_id DROP NOT NULL,
    ADD COLUMN phone_key bytea,
    ADD COLUMN resent_in_doubt integer NOT NULL DEFAULT 0;
CREATE INDEX smpp_sends_in_doubt ON smpp_sends (phone_key) WHERE resent_in_doubt > 0;
