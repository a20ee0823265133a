export * from './conversation-view';
export * from './database';
export * from './event-log';
export * from './migrations';
export * from './persistence.module';
export { Prisma } from './generated/prisma/client';
export type { Conversation as ConversationRow, Event as EventRow, Sandbox as SandboxRow } from './generated/prisma/client';
