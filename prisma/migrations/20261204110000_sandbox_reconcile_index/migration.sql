-- The sandbox reconciler reads a driver's running sandboxes and those wanted destroyed, never the
-- stopped ones that pile up.
CREATE INDEX "sandboxes_driver_status_idx" ON "sandboxes"("driver", "status");
CREATE INDEX "sandboxes_driver_desired_state_idx" ON "sandboxes"("driver", "desired_state");
