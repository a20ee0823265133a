import { DynamicModule, Global, Module } from '@nestjs/common';
import { BERTH_CONFIG, BerthConfig } from '@berth/config';
import { EventRecorder } from '@berth/bus';
import { ConversationRepository, Database, EventLog } from '@berth/persistence';
import { measureWebhookLag } from '@berth/metrics';
import { BullJobQueue, InProcessJobQueue, JobQueue } from '@berth/queue';
import { WebhookDispatcher, WebhookJob } from './webhook-dispatcher';

function webhookQueue(config: BerthConfig, name: string): JobQueue<WebhookJob> {
  return config.redisUrl ? new BullJobQueue<WebhookJob>(name, config.redisUrl, config.queuePrefix) : new InProcessJobQueue<WebhookJob>();
}

@Global()
@Module({})
export class WebhooksModule {
  static forRoot(): DynamicModule {
    return {
      module: WebhooksModule,
      providers: [
        {
          provide: WebhookDispatcher,
          inject: [Database, ConversationRepository, EventLog, EventRecorder, BERTH_CONFIG],
          useFactory: (db: Database, conversations: ConversationRepository, log: EventLog, recorder: EventRecorder, config: BerthConfig) => {
            const hooks = config.webhooks.length > 0;
            const dispatcher = new WebhookDispatcher(
              db,
              conversations,
              log,
              // Failed jobs are dropped, their ids freed: the sweep sends again what they did not (the
              // events stay in the log; a snapshot stays owed in webhook_snapshots).
              hooks ? webhookQueue(config, 'berth-webhook-events') : new InProcessJobQueue<WebhookJob>(),
              hooks ? webhookQueue(config, 'berth-webhook-conversations') : new InProcessJobQueue<WebhookJob>(),
              config,
            );
            if (hooks) recorder.onStored((conversationId, seqs) => dispatcher.eventsStored(conversationId, seqs));
            return dispatcher;
          },
        },
        {
          provide: Symbol('webhook delivery'),
          inject: [WebhookDispatcher],
          useFactory: (dispatcher: WebhookDispatcher) => {
            const forgetLag = dispatcher.enabled ? measureWebhookLag(() => dispatcher.deliveryLagSeconds()) : () => undefined;
            return {
              onApplicationBootstrap: () => dispatcher.start(),
              onApplicationShutdown: async () => {
                forgetLag();
                await dispatcher.close();
              },
            };
          },
        },
      ],
      exports: [WebhookDispatcher],
    };
  }
}
