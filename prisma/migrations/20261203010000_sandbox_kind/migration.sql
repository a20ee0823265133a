-- A sandbox says what it was made for. The tenant's home is found by tenant and kind: its id is
-- random and stored, where it used to be a constant (default tenant) or derived from the tenant id.
-- Existing homes keep their files and conversations as ordinary sandboxes of their tenant; the next
-- home call makes a new one.
ALTER TABLE "sandboxes" ADD COLUMN "kind" TEXT NOT NULL DEFAULT 'standalone';

CREATE INDEX "sandboxes_tenant_id_kind_idx" ON "sandboxes"("tenant_id", "kind");

-- A conversation's own sandbox used to be named after the conversation.
UPDATE "sandboxes" s SET "kind" = 'conversation'
 WHERE EXISTS (SELECT 1 FROM "conversations" c WHERE c."id" = s."id" AND c."sandbox_id" = s."id");

-- A conversation attached to another tenant's sandbox (possible before sandboxes were checked
-- against the tenant) loses it; its next tool call makes one of its own.
UPDATE "conversations" c SET "sandbox_id" = NULL
  FROM "sandboxes" s
 WHERE c."sandbox_id" = s."id" AND c."tenant_id" <> s."tenant_id";
