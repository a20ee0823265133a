-- The newest stored event's timestamp per conversation: an event appended after it never carries an
-- earlier one, so clients that order events by timestamp (the OpenHands SDK does) agree with seq.
ALTER TABLE "conversations" ADD COLUMN "last_event_timestamp" TEXT;
UPDATE "conversations" c
   SET "last_event_timestamp" = (SELECT max(e."timestamp") FROM "events" e WHERE e."conversation_id" = c."id");
