import { isPlainPath, jsonSyntaxMessage, MAX_INPUT_DEPTH, REDACTED, redactSecrets, unsafeInputIssue } from './validation';

describe('request input checks', () => {
  it('isPlainPath: refuses dot segments (encoded or not), encoded slashes and backslashes, NUL, empty segments', () => {
    for (const ok of ['/', '/api/file/home', '/api/bash/bash_events/', '/api/bash/bash_events/abc%20d', '/a/.hidden', '/a/..b']) expect([ok, isPlainPath(ok)]).toEqual([ok, true]);
    for (const bad of ['api/x', '/api/../x', '/api/%2e%2e/x', '/api/%2E./x', '/api/./x', '/api/%2e/x', '/api/a%2fb', '/api/a%2Fb', '/api/a%5cb', '/api/a\\b', '/api/a%00', '//api', '/api//x', '/api/%zz']) {
      expect([bad, isPlainPath(bad)]).toEqual([bad, false]);
    }
  });

  it('unsafeInputIssue: a NUL in any string or key, at any depth, or nesting past the limit; the value never echoed', () => {
    expect(unsafeInputIssue({ a: [1, 'x', { b: null }] }, 'body')).toBeNull();
    expect(unsafeInputIssue({ a: [1, { b: 'se\u0000cret' }] }, 'body')).toEqual({ type: 'value_error', loc: ['body', 'a', 1, 'b'], msg: 'String should not contain NUL characters' });
    expect(unsafeInputIssue({ 'k\u0000': 1 }, 'query')).toMatchObject({ loc: ['query'] });
    let deep: unknown = 1;
    for (let i = 0; i < 5000; i++) deep = [deep];
    expect(unsafeInputIssue(deep, 'body')).toMatchObject({ loc: ['body'], msg: `Input should not be nested deeper than ${MAX_INPUT_DEPTH} levels` });
    let atLimit: unknown = 1;
    for (let i = 0; i < MAX_INPUT_DEPTH; i++) atLimit = { a: atLimit };
    expect(unsafeInputIssue(atLimit, 'body')).toBeNull();
    expect(JSON.stringify(unsafeInputIssue({ s: 'se\u0000cret' }, 'body'))).not.toContain('cret');
  });

  it('redactSecrets: a secret-looking key hides its whole value, objects included', () => {
    expect(redactSecrets({ secrets: { DB_PASS: 'x' }, api_key: { value: 'y' }, name: 'n' })).toEqual({ secrets: REDACTED, api_key: REDACTED, name: 'n' });
  });

  it('jsonSyntaxMessage: no text of the body', () => {
    let message = '';
    try {
      JSON.parse('{"secrets": {"DB_PASS": x-secret}}');
    } catch (err) {
      message = (err as Error).message;
    }
    expect(message).toContain('x-secret');
    expect(jsonSyntaxMessage(message)).not.toContain('secret');
    expect(jsonSyntaxMessage('Unexpected end of JSON input')).toBe('Unexpected end of JSON input');
  });
});
