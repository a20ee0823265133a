-- Tenancy: per-tenant quotas, API key expiry and usage, and the audit log of lifecycle actions.

ALTER TABLE "tenants" ADD COLUMN "quotas" JSONB NOT NULL DEFAULT '{}';

ALTER TABLE "api_keys" ADD COLUMN "last_four" TEXT NOT NULL DEFAULT '';
ALTER TABLE "api_keys" ADD COLUMN "last_used_at" TIMESTAMPTZ(3);
ALTER TABLE "api_keys" ADD COLUMN "expires_at" TIMESTAMPTZ(3);

CREATE TABLE "audit_log" (
    "seq" BIGSERIAL NOT NULL,
    "at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "tenant_id" UUID,
    "key_id" TEXT,
    "admin_key_index" INTEGER,
    "action" TEXT NOT NULL,
    "target_type" TEXT NOT NULL,
    "target_id" TEXT NOT NULL,
    "request_id" TEXT,
    CONSTRAINT "audit_log_pkey" PRIMARY KEY ("seq")
);
CREATE INDEX "audit_log_tenant_id_seq_idx" ON "audit_log"("tenant_id", "seq");
