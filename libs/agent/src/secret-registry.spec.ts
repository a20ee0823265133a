import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SecretVault } from '@berth/crypto';
import { SECRET_HIDDEN, SecretRegistry } from './secret-registry';

describe('SecretRegistry', () => {
  const dir = mkdtempSync(join(tmpdir(), 'berth-secret-registry-'));
  const vault = new SecretVault('registry-test-key', dir);
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  const registry = (secrets: Record<string, string | null>) => {
    const r = new SecretRegistry(vault);
    r.use(vault.sealSecrets(Object.fromEntries(Object.entries(secrets).map(([k, v]) => [k, v === null ? { kind: 'StaticSecret' as const, value: null } : v]))));
    return r;
  };

  it('exports the secrets a command names, case-insensitively, and skips names a shell cannot export', async () => {
    const r = registry({ GITHUB_TOKEN: 'ghp-1', 'my-key': 'dash-value', UNUSED: 'u-1', EMPTY: null, NUL_VALUE: 'a\0b' });
    expect(await r.envFor('curl -H "Authorization: $github_token" x')).toEqual({ GITHUB_TOKEN: 'ghp-1' });
    expect(await r.envFor('echo my-key $EMPTY $NUL_VALUE')).toEqual({});
    expect(await r.envFor('ls')).toEqual({});
  });

  it('masks every value in every string of a value, longest first', async () => {
    const r = registry({ SHORT: 'abc', LONG: 'abcdef-long' });
    const masked = await r.mask({ content: [{ type: 'text', text: 'x abcdef-long y abc z' }], n: 3, list: ['abc', null] });
    expect(masked).toEqual({ content: [{ type: 'text', text: `x ${SECRET_HIDDEN} y ${SECRET_HIDDEN} z` }], n: 3, list: [SECRET_HIDDEN, null] });
  });

  it('keeps masking a value after its secret changed or went away', async () => {
    const r = registry({ TOKEN: 'first-value' });
    await r.envFor('echo $TOKEN');
    r.use(vault.sealSecrets({ TOKEN: 'second-value' }));
    expect(await r.mask('first-value second-value')).toBe(`${SECRET_HIDDEN} ${SECRET_HIDDEN}`);
    r.use({});
    expect(await r.mask('first-value second-value')).toBe(`${SECRET_HIDDEN} ${SECRET_HIDDEN}`);
  });

  it('masks a value split across streamed pieces', async () => {
    const r = registry({ TOKEN: 'sekrit-123456' });
    await r.mask('');
    const stream = r.streamMask();
    const pieces = ['the token is sek', 'rit-12', '3456 and ', 'sekrit-123456', ' again', ' tail'];
    const out = pieces.map((p) => stream.feed(p)).join('') + stream.flush();
    expect(out).toBe(`the token is ${SECRET_HIDDEN} and ${SECRET_HIDDEN} again tail`);
    expect(new SecretRegistry(vault).streamMask().feed('as is')).toBe('as is');
  });
});
