-- Webhook delivery cursors: per receiver and conversation, the last event sent and acknowledged.

CREATE TABLE "webhook_cursors" (
    "webhook_key" TEXT NOT NULL,
    "conversation_id" UUID NOT NULL,
    "delivered_seq" INTEGER NOT NULL,
    "updated_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    CONSTRAINT "webhook_cursors_pkey" PRIMARY KEY ("webhook_key","conversation_id")
);
CREATE INDEX "webhook_cursors_conversation_id_idx" ON "webhook_cursors"("conversation_id");
ALTER TABLE "webhook_cursors" ADD CONSTRAINT "webhook_cursors_conversation_id_fkey"
    FOREIGN KEY ("conversation_id") REFERENCES "conversations"("id") ON DELETE CASCADE ON UPDATE CASCADE;
