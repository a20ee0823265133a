import type { DynamicModule } from '@nestjs/common';
import { BusModule } from '@berth/bus';
import { ConfigModule } from '@berth/config';
import type { BerthConfig } from '@berth/config';
import { CryptoModule } from '@berth/crypto';
import { LoggingModule } from '@berth/logging';
import { TracingModule } from '@berth/metrics';
import { PersistenceModule } from '@berth/persistence';
import { QueueModule } from '@berth/queue';
import { SandboxModule } from '@berth/sandbox';
import { WebhooksModule } from '@berth/webhooks';

/** What every Berth process stands on: configuration, logs, tracing, storage, event bus, run queue, secrets, sandboxes, webhooks. */
export function platformModules(config: BerthConfig): DynamicModule[] {
  return [ConfigModule.forRoot(config), LoggingModule.forRoot(config), TracingModule.forRoot(), PersistenceModule.forRoot(), BusModule.forRoot(), QueueModule.forRoot(), CryptoModule.forRoot(), SandboxModule.forRoot(), WebhooksModule.forRoot()];
}
