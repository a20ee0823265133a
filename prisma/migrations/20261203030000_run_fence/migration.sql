-- A run has one owner at a time: each worker that takes a run bumps the fence, and every write of
-- its loop (events, status, state) applies only while the fence is still its own, so a loop that
-- lost its lease (a frozen Redis, a stalled job handed to another worker) cannot act again.
ALTER TABLE "conversations" ADD COLUMN "run_fence" INTEGER NOT NULL DEFAULT 0;
