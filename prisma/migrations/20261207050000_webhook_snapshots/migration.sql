-- The ConversationInfo snapshots each webhook receiver is owed: every change of a conversation counts
-- `version` up, a delivered snapshot moves `delivered_version` to the change it was taken for. A
-- snapshot job lost with Redis (an outage, a restart that comes back empty) is queued again by the
-- sweep while version > delivered_version.
CREATE TABLE "webhook_snapshots" (
    "webhook_key" TEXT NOT NULL,
    "conversation_id" UUID NOT NULL,
    "version" INTEGER NOT NULL DEFAULT 1,
    "delivered_version" INTEGER NOT NULL DEFAULT 0,
    "changed_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "webhook_snapshots_pkey" PRIMARY KEY ("webhook_key","conversation_id")
);

CREATE INDEX "webhook_snapshots_conversation_id_idx" ON "webhook_snapshots"("conversation_id");

-- The sweep reads only what is owed, oldest change first, every second: not every row ever delivered.
CREATE INDEX "webhook_snapshots_owed_idx" ON "webhook_snapshots"("changed_at") WHERE "delivered_version" < "version";

ALTER TABLE "webhook_snapshots" ADD CONSTRAINT "webhook_snapshots_conversation_id_fkey" FOREIGN KEY ("conversation_id") REFERENCES "conversations"("id") ON DELETE CASCADE ON UPDATE CASCADE;
