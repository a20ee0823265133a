import { loadConfig } from '@berth/config';
import { Writable } from 'node:stream';
import { censorSecrets, isSecretKey, redactUrl } from './redact';
import { createLogger, logDestination } from './root-logger';
import { deploymentSummary } from './startup-summary';

/** A logger writing into an array of parsed lines. */
function captured(level: Parameters<typeof createLogger>[1] = 'info') {
  const lines: Record<string, any>[] = [];
  const stream = new Writable({
    write(chunk, _encoding, done) {
      for (const line of String(chunk).split('\n').filter(Boolean)) lines.push(JSON.parse(line));
      done();
    },
  });
  return { logger: createLogger('json', level, stream as never), lines };
}

describe('log redaction', () => {
  it('censors the credential headers of a logged request or header object', () => {
    const { logger, lines } = captured();
    const headers = { 'x-session-api-key': 'key-1', authorization: 'Bearer key-2', cookie: 'c=key-3', accept: 'application/json' };
    logger.info({ req: { method: 'GET', headers }, headers }, 'with headers');
    expect(lines[0].req.headers).toEqual({ 'x-session-api-key': '[Redacted]', authorization: '[Redacted]', cookie: '[Redacted]', accept: 'application/json' });
    expect(lines[0].headers).toEqual(lines[0].req.headers);
    // The caller's object is left as it was.
    expect(headers.authorization).toBe('Bearer key-2');
  });

  it('censors secret-looking keys at any depth, and leaves errors and counts alone', () => {
    const { logger, lines } = captured();
    const err = new Error('boom');
    logger.warn({ llm: { model: 'm', api_key: 'sk-1', apiKey: 'sk-2' }, items: [{ password: 'p', name: 'n' }], secrets: { A: 'x' }, accessToken: 't', usage: { prompt_tokens: 3 }, key_id: 'env:0', err }, 'nested');
    const line = lines[0];
    expect(line.llm).toEqual({ model: 'm', api_key: '[Redacted]', apiKey: '[Redacted]' });
    expect(line.items).toEqual([{ password: '[Redacted]', name: 'n' }]);
    expect(line).toMatchObject({ secrets: '[Redacted]', accessToken: '[Redacted]', usage: { prompt_tokens: 3 }, key_id: 'env:0' });
    expect(line.err).toMatchObject({ type: 'Error', message: 'boom', stack: expect.stringContaining('boom') });
    expect(JSON.stringify(lines)).not.toMatch(/sk-1|sk-2|"p"|"t"/);
  });

  it('names secret keys by their ending, whatever the case and separators', () => {
    for (const key of ['api_key', 'X-Session-API-Key', 'session_api_key', 'secret', 'client_secret', 'OH_SECRET_KEY', 'secretKey', 'private_key', 'PASSWORD', 'refresh_token', 'Authorization', 'set-cookie']) expect({ key, secret: isSecretKey(key) }).toEqual({ key, secret: true });
    for (const key of ['key_id', 'max_tokens', 'prompt_tokens', 'tenant_id', 'secret_lookup_hosts', 'route']) expect({ key, secret: isSecretKey(key) }).toEqual({ key, secret: false });
    expect(censorSecrets('plain')).toBe('plain');
  });

  it('strips session_api_key from URLs', () => {
    expect(redactUrl('/sockets/events/1?session_api_key=abc&resend_mode=all')).toBe('/sockets/events/1?session_api_key=[Redacted]&resend_mode=all');
    expect(redactUrl('/x?resend_mode=all&SESSION_API_KEY=abc')).toBe('/x?resend_mode=all&SESSION_API_KEY=[Redacted]');
    expect(redactUrl('/api/conversations')).toBe('/api/conversations');
  });
});

describe('log format', () => {
  it('writes pretty lines, context first, without colour codes off a terminal', () => {
    let written = '';
    const out = new Writable({
      write(chunk, _encoding, done) {
        written += String(chunk);
        done();
      },
    });
    createLogger('pretty', 'info', logDestination('pretty', out)).info({ context: 'Berth', api_key: 'sk-9' }, 'listening');
    expect(written).toMatch(/INFO.*\[Berth\] listening/);
    expect(written).toContain('api_key: "[Redacted]"');
    expect(written).not.toMatch(/\u001b\[|^\{/);
  });
});

describe('log levels', () => {
  it('filters below the level', () => {
    const { logger, lines } = captured('warn');
    logger.info('hidden');
    logger.warn('shown');
    expect(lines.map((l) => l.msg)).toEqual(['shown']);
  });
});

describe('deployment summary', () => {
  it('names PostgreSQL and Redis by host, port and database, never their credentials', () => {
    const config = loadConfig({ DATABASE_URL: 'postgresql://berth:pa55word@db.internal:6543/berth_prod?sslmode=require', REDIS_URL: 'redis://:r3dispass@cache:6380/2', BERTH_SANDBOX_ISOLATION: 'none', OH_WEBHOOKS_0_BASE_URL: 'https://hooks.example.com' }, []);
    const summary = deploymentSummary(config);
    expect(summary.map((l) => l.msg)).toEqual([
      'storage: PostgreSQL at db.internal:6543/berth_prod',
      'queue and event bus: Redis at cache:6380',
      'sandboxes: local driver, NOT isolated (BERTH_SANDBOX_ISOLATION=none), network none',
      'webhooks: 1',
    ]);
    expect(JSON.stringify(summary)).not.toMatch(/pa55word|r3dispass|berth:/);
  });

  it('names the kubernetes driver and its namespace', () => {
    const config = loadConfig({ BERTH_SANDBOX_DRIVER: 'kubernetes', BERTH_K8S_NAMESPACE: 'sandboxes', BERTH_K8S_EXECUTOR_IMAGE: 'registry/executor:1' }, []);
    expect(deploymentSummary(config)[2]).toMatchObject({ msg: 'sandboxes: kubernetes driver, pods in namespace sandboxes fenced by NetworkPolicies', sandbox_driver: 'kubernetes', namespace: 'sandboxes' });
  });
});
