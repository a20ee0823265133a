import { NestFactory } from '@nestjs/core';
import { FastifyAdapter, NestFastifyApplication } from '@nestjs/platform-fastify';
import { DocumentBuilder, SwaggerModule } from '@nestjs/swagger';
import cors from '@fastify/cors';
import type { BerthConfig } from '@berth/config';
import { BerthLogger, rootLogger } from '@berth/logging';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { AppModule } from './app.module';
import { installAccessLog } from './common/access-log';
import { addZodComponents, finishOperations, handlerName } from './common/api-docs';
import { corsOriginAllowed } from './common/cors';
import { stripSandboxPrefix } from './common/sandbox-prefix';
import { HttpErrorFilter } from './common/http-error.filter';
import { installRequestTelemetry } from './common/request-telemetry';
import { UnsafeInputInterceptor } from './common/unsafe-input.interceptor';
import { requestIdOf } from './common/request-id';
import { addWorkspaceRoutes } from './workspace/workspace-docs';
import { MalformedJson } from './common/zod-validation.pipe';
import { jsonSyntaxMessage } from '@berth/contracts';
import { OPENHANDS_API_VERSION } from './health/server-info.service';

/** JSON bodies are parsed here and never rejected: auth runs first, then validation answers 422. */
function installJsonParser(fastify: FastifyInstance, bodyLimit: number): void {
  fastify.removeContentTypeParser('application/json');
  fastify.addContentTypeParser('application/json', { parseAs: 'string', bodyLimit }, (_req, body, done) => {
    const text = body as string;
    if (text.trim() === '') return done(null, undefined);
    try {
      done(null, JSON.parse(text));
    } catch (err) {
      const position = Number(/position (\d+)/.exec((err as Error).message)?.[1] ?? 0);
      done(null, new MalformedJson(position, jsonSyntaxMessage((err as Error).message)));
    }
  });
}

/**
 * OpenHands reads some GET request bodies (`GET …/events` takes a JSON list of ids); Fastify never
 * parses bodies of GET requests, so a hook reads them, with the same size limit and JSON handling.
 */
function installGetBodyReader(fastify: FastifyInstance, bodyLimit: number): void {
  fastify.addHook('preValidation', (request, _reply, done) => {
    const length = Number(request.headers['content-length'] ?? 0);
    if (request.method !== 'GET' || request.body !== undefined || (!length && !request.headers['transfer-encoding'])) return done();
    if (length > bodyLimit) return done(Object.assign(new Error('Request body is too large'), { statusCode: 413 }));
    const chunks: Buffer[] = [];
    let size = 0;
    request.raw.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size <= bodyLimit) chunks.push(chunk);
    });
    request.raw.on('error', (err) => done(err));
    request.raw.on('end', () => {
      if (size > bodyLimit) return done(Object.assign(new Error('Request body is too large'), { statusCode: 413 }));
      const text = Buffer.concat(chunks).toString('utf8');
      try {
        request.body = text.trim() === '' ? undefined : JSON.parse(text);
      } catch (err) {
        request.body = new MalformedJson(Number(/position (\d+)/.exec((err as Error).message)?.[1] ?? 0), jsonSyntaxMessage((err as Error).message));
      }
      done();
    });
  });
}

/** Builds the gateway (not yet listening); used by main and by the tests. */
export async function createGatewayApp(config: BerthConfig): Promise<NestFastifyApplication> {
  const adapter = new FastifyAdapter({
    bodyLimit: config.maxBodyBytes,
    routerOptions: { maxParamLength: 512 },
    trustProxy: true,
    rewriteUrl: stripSandboxPrefix,
    genReqId: requestIdOf,
  });
  const app = await NestFactory.create<NestFastifyApplication>(AppModule.forRoot(config), adapter, {
    // Nest's own lines wait for the logger below (LOG_LEVEL, LOG_FORMAT), which LoggingModule configured.
    bufferLogs: true,
    bodyParser: false,
  });
  app.useLogger(app.get(BerthLogger));
  const fastify = app.getHttpAdapter().getInstance() as unknown as FastifyInstance;
  installAccessLog(fastify, rootLogger());
  fastify.addHook('onRequest', (request, reply, done) => {
    reply.header('x-request-id', request.id);
    done();
  });
  installRequestTelemetry(fastify);
  installJsonParser(fastify, config.maxBodyBytes);
  installGetBodyReader(fastify, config.maxBodyBytes);
  // Uploads are streamed to the sandbox untouched (the executor parses and limits them).
  for (const type of ['multipart/form-data', 'application/octet-stream']) {
    fastify.addContentTypeParser(type, (_request, _payload, done) => done(null, undefined));
  }
  // A preflight is answered 200, as Starlette's CORS middleware answers it (OpenHands).
  const corsBase = { credentials: true, methods: ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'], maxAge: 600, optionsSuccessStatus: 200 };
  const corsAllowed = { ...corsBase, origin: true };
  const corsDenied = { ...corsBase, origin: false };
  await app.register(cors as never, {
    delegator: (req: FastifyRequest, cb: (err: Error | null, options: object) => void) => {
      const origin = req.headers.origin;
      cb(null, origin && corsOriginAllowed(config, origin, (req.url ?? '/').split('?')[0]) ? corsAllowed : corsDenied);
    },
  } as never);
  app.useGlobalFilters(new HttpErrorFilter(config.debug));
  app.useGlobalInterceptors(new UnsafeInputInterceptor());
  app.enableShutdownHooks();

  const docConfig = new DocumentBuilder()
    .setTitle('Berth — OpenHands-compatible agent server')
    .setDescription(
      'REST API of Berth. WebSockets (not listed by OpenAPI): `/sockets/events/{conversation_id}` ' +
        '(query: session_api_key, resend_mode=all|since, after_timestamp, after_event_id).',
    )
    .setVersion(OPENHANDS_API_VERSION)
    .setOpenAPIVersion('3.1.0')
    .setLicense('MIT', 'https://opensource.org/license/mit')
    .addServer('/', 'This server')
    .addApiKey({ type: 'apiKey', in: 'header', name: 'X-Session-API-Key' }, 'session-api-key')
    .addApiKey({ type: 'apiKey', in: 'header', name: 'X-Session-API-Key', description: 'a BERTH_ADMIN_API_KEYS key (/api/admin/* only)' }, 'admin-api-key')
    .build();
  // Built on the first request for it (then kept): building it at start holds ~18 MiB more in every idle process.
  const documentFactory = () =>
    finishOperations(addWorkspaceRoutes(addZodComponents(SwaggerModule.createDocument(app, docConfig, { operationIdFactory: handlerName }))));
  SwaggerModule.setup('docs', app, documentFactory, { jsonDocumentUrl: 'openapi.json', yamlDocumentUrl: 'openapi.yaml' });
  return app;
}
