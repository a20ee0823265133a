-- A batch is claimed on its cursor before it is POSTed: a retry after a crash or an outage resends
-- exactly that batch under the same Idempotency-Key, and the cursor moves once the receiver took it.
ALTER TABLE "webhook_cursors" ADD COLUMN "sending_seq" INTEGER;
