-- The reaper selects due sandboxes in SQL: running ones past their idle deadline (served by the
-- existing index on status and last activity) and those past their ttl deadline (this one: only
-- rows with a ttl are read).
CREATE INDEX "sandboxes_ttl_seconds_created_at_idx" ON "sandboxes"("ttl_seconds", "created_at");
