import { Attributes, context, Span, SpanStatusCode, trace } from '@opentelemetry/api';

/**
 * Berth's spans. Until startTracing runs (OTEL_EXPORTER_OTLP_ENDPOINT set) the API's no-op tracer
 * answers: spans cost a function call and nothing is exported.
 */
export const tracer = trace.getTracer('berth');

/** Runs `work` inside a span (the parent of spans it starts); an error marks the span and is rethrown. */
export async function inSpan<T>(name: string, attributes: Attributes, work: (span: Span) => Promise<T>): Promise<T> {
  return tracer.startActiveSpan(name, { attributes }, async (span) => {
    try {
      return await work(span);
    } catch (err) {
      span.recordException(err as Error);
      span.setStatus({ code: SpanStatusCode.ERROR, message: (err as Error)?.message });
      throw err;
    } finally {
      span.end();
    }
  });
}

export interface Tracing {
  /** Sends the spans still buffered and stops tracing. */
  shutdown(): Promise<void>;
}

/**
 * Registers the OpenTelemetry SDK (OTLP/HTTP JSON exporter, batched) as the process's tracer
 * provider. Loaded on demand: a process without OTEL_EXPORTER_OTLP_ENDPOINT never loads the SDK.
 */
export async function startTracing(options: { tracesUrl: string; serviceName: string; serviceVersion: string }): Promise<Tracing> {
  const [{ BatchSpanProcessor, TracerProvider }, { OTLPTraceExporter }, { AsyncLocalStorageContextManager }, { resourceFromAttributes }] = await Promise.all([
    import('@opentelemetry/sdk-trace'),
    import('@opentelemetry/exporter-trace-otlp-http'),
    import('@opentelemetry/context-async-hooks'),
    import('@opentelemetry/resources'),
  ]);
  const provider = new TracerProvider({
    resource: resourceFromAttributes({ 'service.name': options.serviceName, 'service.version': options.serviceVersion }),
    spanProcessors: [new BatchSpanProcessor({ exporter: new OTLPTraceExporter({ url: options.tracesUrl }) })],
  });
  // Parent and child spans (a run and its LLM calls) are linked through the async context.
  context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
  trace.setGlobalTracerProvider(provider);
  return {
    async shutdown() {
      await provider.shutdown();
      trace.disable();
      context.disable();
    },
  };
}
