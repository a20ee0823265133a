import { SecretVault } from '@berth/crypto';
import { errorBody, loggableError, toHttpError } from './http-error.filter';

/** A Prisma error as the client builds it: the call's arguments and source lines above the reason. */
function prismaLikeError(): Error {
  const err = new Error(
    'Invalid `prisma.conversation.create()` invocation in\n/srv/berth/dist/libs/persistence/src/store.js:42:7\n\n  41 const row = await prisma.conversation.create({\n→ 42   data: { title: "x", secrets: { DB_PASS: "hunter2-secret" } }\n\nInvalid value for argument `title`: unexpected NUL character.',
  );
  err.name = 'PrismaClientValidationError';
  return err;
}

describe('HTTP error bodies', () => {
  it('a 5xx carries no exception text, source lines or paths unless DEBUG is set', () => {
    const body = toHttpError(prismaLikeError()).body;
    expect(Object.keys(body).sort()).toEqual(['detail', 'error_id']);
    expect(body.detail).toBe('Internal Server Error');
    const debug = errorBody(500, undefined, prismaLikeError(), true);
    expect(debug.exception).toContain('prisma.conversation.create');
    expect(debug.traceback).toBeDefined();
  });

  it('the log line keeps the reason and the frames, not the query arguments nor secrets', () => {
    const line = loggableError(prismaLikeError());
    expect(line).toContain('PrismaClientValidationError: Invalid value for argument `title`');
    expect(line).toContain('    at ');
    expect(line).not.toContain('hunter2');
    expect(loggableError(new Error('upstream said api_key=sk-live-123 and Bearer abc.def'))).not.toMatch(/sk-live-123|abc\.def/);
  });

  it('a stored secret no configured key opens answers 409 with the vault\'s detail, not a 500', () => {
    const token = new SecretVault('old-key', '/nonexistent').encrypt('sk-lost');
    let thrown: unknown;
    try {
      new SecretVault('new-key', '/nonexistent').decrypt(token, "secret 'X'");
    } catch (err) {
      thrown = err;
    }
    const { status, body } = toHttpError(thrown);
    expect(status).toBe(409);
    expect(body).toEqual({ detail: expect.stringMatching(/^secret 'X' is encrypted with a key this server does not have/) });
  });

  it('a dependency outage answers 503 with only a detail, recognised by class and code, also when wrapped', () => {
    const named = (name: string, message: string, code?: string) => Object.assign(new Error(message), { name }, code ? { code } : {});
    const outages = [
      named('MaxRetriesPerRequestError', 'Reached the max retries per request limit (which is 3).'),
      new Error('Connection is closed.'),
      named('PrismaClientKnownRequestError', "Can't reach database server at `127.0.0.1:5432`", 'P1001'),
      named('PrismaClientInitializationError', 'Authentication failed against database server at /srv/db'),
      named('DatabaseError', 'terminating connection due to administrator command', '57P01'),
      new Error('query failed', { cause: named('Error', 'connect ECONNREFUSED 127.0.0.1:6379', 'ECONNREFUSED') }),
    ];
    for (const err of outages) {
      const { status, body } = toHttpError(err);
      expect(status).toBe(503);
      expect(Object.keys(body)).toEqual(['detail']);
      expect(JSON.stringify(body)).not.toMatch(/127\.0\.0\.1|\/srv|max retries|ECONN/);
    }
    // A refused write (unique constraint) or a plain bug stays a 500.
    expect(toHttpError(named('PrismaClientKnownRequestError', 'Unique constraint failed', 'P2002')).status).toBe(500);
    expect(toHttpError(new TypeError('x is undefined')).status).toBe(500);
  });
});
