import { DynamicModule, Global, Module } from '@nestjs/common';
import { BERTH_CONFIG, BerthConfig } from '@berth/config';
import { EventRecorder } from '@berth/bus';
import { SecretVault } from '@berth/crypto';
import { ConversationRepository, SandboxRepository } from '@berth/persistence';
import { LocalSandboxDriver } from './local-driver';
import { SandboxDriver } from './sandbox-driver';
import { SandboxManager } from './sandbox-manager';
import { SandboxReaper } from './sandbox-reaper';
import { SandboxReconciler } from './sandbox-reconciler';

/** The driver for this deployment (BERTH_SANDBOX_DRIVER): child processes of this host, or pods of a cluster. */
export function createSandboxDriver(config: BerthConfig): SandboxDriver {
  if (config.sandboxDriver === 'kubernetes' && config.kubernetes) {
    // Loaded only here: the Kubernetes client is ~24 MiB of JavaScript, kept in memory as source once loaded.
    const { KubernetesSandboxDriver } = require('./kubernetes/kubernetes-driver') as typeof import('./kubernetes/kubernetes-driver');
    return new KubernetesSandboxDriver({ config: config.kubernetes, defaultNetwork: config.sandboxNetwork });
  }
  return new LocalSandboxDriver({
    dataDir: config.dataDir,
    warmPoolSize: config.warmPoolSize,
    warmPoolFill: config.warmPoolFill,
    isolation: config.sandboxIsolation,
    network: config.sandboxNetwork,
    uidBase: config.sandboxUidBase,
    limits: config.sandboxLimits,
  });
}

@Global()
@Module({})
export class SandboxModule {
  static forRoot(): DynamicModule {
    return {
      module: SandboxModule,
      providers: [
        { provide: SandboxDriver, inject: [BERTH_CONFIG], useFactory: createSandboxDriver },
        {
          provide: SandboxManager,
          inject: [SandboxRepository, ConversationRepository, SandboxDriver, SecretVault, EventRecorder, BERTH_CONFIG],
          useFactory: (rows: SandboxRepository, conversations: ConversationRepository, driver: SandboxDriver, vault: SecretVault, recorder: EventRecorder, config: BerthConfig) => {
            const manager = new SandboxManager(rows, conversations, driver, vault, config.sandboxNetwork);
            // Every stored event keeps its conversation's sandbox from looking idle.
            recorder.onStored((conversationId) => manager.conversationActive(conversationId));
            return manager;
          },
        },
        SandboxReaper,
        SandboxReconciler,
        // The warm pool fills once the process is up (BERTH_WARM_POOL_FILL=start) or from its first new sandbox on; executors are its children:
        // none outlives it but those of runs handed to another worker at stop.
        {
          provide: Symbol('sandbox driver lifecycle'),
          inject: [SandboxDriver, SandboxManager],
          useFactory: (driver: SandboxDriver, manager: SandboxManager) => ({ onApplicationBootstrap: () => driver.warm(), onApplicationShutdown: () => driver.close(manager.handedOver) }),
        },
      ],
      exports: [SandboxDriver, SandboxManager, SandboxReaper, SandboxReconciler],
    };
  }
}
