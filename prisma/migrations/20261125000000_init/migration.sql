-- Berth initial schema: tenants and their API keys, sandboxes, conversations, the append-only
-- event log (numbered per conversation) and standalone bash events.

CREATE TABLE "tenants" (
    "id" UUID NOT NULL,
    "name" TEXT NOT NULL,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    CONSTRAINT "tenants_pkey" PRIMARY KEY ("id")
);
CREATE UNIQUE INDEX "tenants_name_key" ON "tenants"("name");

CREATE TABLE "api_keys" (
    "id" UUID NOT NULL,
    "tenant_id" UUID NOT NULL,
    "name" TEXT NOT NULL,
    "prefix" TEXT NOT NULL,
    "key_hash" TEXT NOT NULL,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "revoked_at" TIMESTAMPTZ(3),
    CONSTRAINT "api_keys_pkey" PRIMARY KEY ("id")
);
CREATE UNIQUE INDEX "api_keys_key_hash_key" ON "api_keys"("key_hash");
CREATE INDEX "api_keys_tenant_id_idx" ON "api_keys"("tenant_id");

CREATE TABLE "sandboxes" (
    "id" UUID NOT NULL,
    "tenant_id" UUID NOT NULL,
    "driver" TEXT NOT NULL,
    "status" TEXT NOT NULL,
    "url" TEXT,
    "handle" JSONB NOT NULL DEFAULT '{}',
    "env" JSONB NOT NULL DEFAULT '{}',
    "idle_timeout_seconds" INTEGER NOT NULL DEFAULT 1800,
    "ttl_seconds" INTEGER,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updated_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "last_activity_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    CONSTRAINT "sandboxes_pkey" PRIMARY KEY ("id")
);
CREATE INDEX "sandboxes_tenant_id_created_at_idx" ON "sandboxes"("tenant_id", "created_at");
CREATE INDEX "sandboxes_status_last_activity_at_idx" ON "sandboxes"("status", "last_activity_at");

CREATE TABLE "conversations" (
    "id" UUID NOT NULL,
    "tenant_id" UUID NOT NULL,
    "sandbox_id" UUID,
    "title" TEXT,
    "tags" JSONB NOT NULL DEFAULT '{}',
    "execution_status" TEXT NOT NULL DEFAULT 'idle',
    "agent" JSON NOT NULL,
    "workspace" JSON NOT NULL,
    "confirmation_policy" JSON NOT NULL,
    "security_analyzer" JSON,
    "max_iterations" INTEGER NOT NULL DEFAULT 500,
    "stuck_detection" BOOLEAN NOT NULL DEFAULT true,
    "secrets" JSON NOT NULL DEFAULT '{}',
    "stats" JSON NOT NULL DEFAULT '{"usage_to_metrics":{}}',
    "state" JSON NOT NULL DEFAULT '{}',
    "options" JSON NOT NULL DEFAULT '{}',
    "last_user_message_id" TEXT,
    "leaf_event_id" TEXT,
    "last_seq" INTEGER NOT NULL DEFAULT 0,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updated_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    CONSTRAINT "conversations_pkey" PRIMARY KEY ("id")
);
CREATE INDEX "conversations_tenant_id_created_at_idx" ON "conversations"("tenant_id", "created_at");
CREATE INDEX "conversations_tenant_id_updated_at_idx" ON "conversations"("tenant_id", "updated_at");
CREATE INDEX "conversations_tenant_id_execution_status_idx" ON "conversations"("tenant_id", "execution_status");
CREATE INDEX "conversations_sandbox_id_idx" ON "conversations"("sandbox_id");

CREATE TABLE "events" (
    "conversation_id" UUID NOT NULL,
    "seq" INTEGER NOT NULL,
    "id" TEXT NOT NULL,
    "kind" TEXT NOT NULL,
    "source" TEXT NOT NULL,
    "timestamp" TEXT NOT NULL,
    "body" TEXT,
    "payload" JSON NOT NULL,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    CONSTRAINT "events_pkey" PRIMARY KEY ("conversation_id", "seq")
);
CREATE UNIQUE INDEX "events_conversation_id_id_key" ON "events"("conversation_id", "id");
CREATE INDEX "events_conversation_id_kind_seq_idx" ON "events"("conversation_id", "kind", "seq");
CREATE INDEX "events_conversation_id_source_seq_idx" ON "events"("conversation_id", "source", "seq");
CREATE INDEX "events_conversation_id_timestamp_idx" ON "events"("conversation_id", "timestamp");

CREATE TABLE "bash_events" (
    "seq" BIGSERIAL NOT NULL,
    "id" TEXT NOT NULL,
    "sandbox_id" UUID NOT NULL,
    "kind" TEXT NOT NULL,
    "command_id" TEXT,
    "order" INTEGER,
    "timestamp" TEXT NOT NULL,
    "payload" JSON NOT NULL,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    CONSTRAINT "bash_events_pkey" PRIMARY KEY ("seq")
);
CREATE UNIQUE INDEX "bash_events_id_key" ON "bash_events"("id");
CREATE INDEX "bash_events_sandbox_id_seq_idx" ON "bash_events"("sandbox_id", "seq");
CREATE INDEX "bash_events_sandbox_id_command_id_seq_idx" ON "bash_events"("sandbox_id", "command_id", "seq");

ALTER TABLE "api_keys" ADD CONSTRAINT "api_keys_tenant_id_fkey" FOREIGN KEY ("tenant_id") REFERENCES "tenants"("id") ON DELETE CASCADE ON UPDATE CASCADE;
ALTER TABLE "sandboxes" ADD CONSTRAINT "sandboxes_tenant_id_fkey" FOREIGN KEY ("tenant_id") REFERENCES "tenants"("id") ON DELETE CASCADE ON UPDATE CASCADE;
ALTER TABLE "conversations" ADD CONSTRAINT "conversations_tenant_id_fkey" FOREIGN KEY ("tenant_id") REFERENCES "tenants"("id") ON DELETE CASCADE ON UPDATE CASCADE;
ALTER TABLE "conversations" ADD CONSTRAINT "conversations_sandbox_id_fkey" FOREIGN KEY ("sandbox_id") REFERENCES "sandboxes"("id") ON DELETE SET NULL ON UPDATE CASCADE;
ALTER TABLE "events" ADD CONSTRAINT "events_conversation_id_fkey" FOREIGN KEY ("conversation_id") REFERENCES "conversations"("id") ON DELETE CASCADE ON UPDATE CASCADE;
ALTER TABLE "bash_events" ADD CONSTRAINT "bash_events_sandbox_id_fkey" FOREIGN KEY ("sandbox_id") REFERENCES "sandboxes"("id") ON DELETE CASCADE ON UPDATE CASCADE;
