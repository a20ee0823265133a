-- Per-tenant settings (contract §3.9), the tenant's secrets store and its LLM profiles (§3.11).
-- Secret values and LLM api keys are stored as Fernet tokens (OH_SECRET_KEY).

CREATE TABLE "tenant_settings" (
    "tenant_id" UUID NOT NULL,
    "agent_settings" JSONB NOT NULL DEFAULT '{}',
    "conversation_settings" JSONB NOT NULL DEFAULT '{}',
    "misc_settings" JSONB NOT NULL DEFAULT '{}',
    "active_profile" TEXT,
    "updated_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    CONSTRAINT "tenant_settings_pkey" PRIMARY KEY ("tenant_id")
);

CREATE TABLE "tenant_secrets" (
    "tenant_id" UUID NOT NULL,
    "name" TEXT NOT NULL,
    "value" TEXT NOT NULL,
    "description" TEXT,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updated_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    CONSTRAINT "tenant_secrets_pkey" PRIMARY KEY ("tenant_id", "name")
);

CREATE TABLE "llm_profiles" (
    "tenant_id" UUID NOT NULL,
    "name" TEXT NOT NULL,
    "llm" JSONB NOT NULL,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updated_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    CONSTRAINT "llm_profiles_pkey" PRIMARY KEY ("tenant_id", "name")
);

ALTER TABLE "tenant_settings" ADD CONSTRAINT "tenant_settings_tenant_id_fkey" FOREIGN KEY ("tenant_id") REFERENCES "tenants"("id") ON DELETE CASCADE ON UPDATE CASCADE;
ALTER TABLE "tenant_secrets" ADD CONSTRAINT "tenant_secrets_tenant_id_fkey" FOREIGN KEY ("tenant_id") REFERENCES "tenants"("id") ON DELETE CASCADE ON UPDATE CASCADE;
ALTER TABLE "llm_profiles" ADD CONSTRAINT "llm_profiles_tenant_id_fkey" FOREIGN KEY ("tenant_id") REFERENCES "tenants"("id") ON DELETE CASCADE ON UPDATE CASCADE;
