-- The server-wide run capacity (BERTH_MAX_CONCURRENT_RUNS) counts the running conversations of
-- every tenant at each run start: an index on the status alone keeps that count off a table scan.
CREATE INDEX "conversations_execution_status_idx" ON "conversations"("execution_status");
