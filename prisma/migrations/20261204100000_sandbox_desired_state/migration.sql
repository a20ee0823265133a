-- Desired and observed state, as a control plane keeps them: `desired_state` is what was asked for,
-- `status` what was last seen; every change is a compare-and-set on `state_version`.
ALTER TABLE "sandboxes" ADD COLUMN "desired_state" TEXT NOT NULL DEFAULT 'running';
ALTER TABLE "sandboxes" ADD COLUMN "status_reason" TEXT;
ALTER TABLE "sandboxes" ADD COLUMN "state_version" INTEGER NOT NULL DEFAULT 0;
UPDATE "sandboxes" SET "desired_state" = 'stopped' WHERE "status" IN ('paused', 'stopped');
