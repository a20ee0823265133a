-- A sandbox's network (`none` or `egress`) is chosen when it is made, within its tenant's allowance,
-- and kept for its restarts. Existing sandboxes got the server default (BERTH_SANDBOX_NETWORK) at
-- their first start, which the driver keeps beside their folder: null says so.
ALTER TABLE "sandboxes" ADD COLUMN "network" TEXT;
