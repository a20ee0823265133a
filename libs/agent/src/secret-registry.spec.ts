import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SecretVault } from '@berth/crypto';
import { createServer } from 'node:http';
import { AddressInfo } from 'node:net';
import { isPublicAddress, SECRET_HIDDEN, SecretRegistry } from './secret-registry';

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

  it('tells public addresses from the worker\'s own, private, link-local and mapped ones', () => {
    for (const address of ['8.8.8.8', '1.1.1.1', '2606:4700:4700::1111']) expect([address, isPublicAddress(address)]).toEqual([address, true]);
    for (const address of ['127.0.0.1', '10.1.2.3', '172.20.0.1', '192.168.1.1', '169.254.169.254', '100.64.0.1', '0.0.0.0', '::1', '::', 'fe80::1', 'fd00::1', '::ffff:127.0.0.1', '::ffff:169.254.169.254', 'not-an-ip']) {
      expect([address, isPublicAddress(address)]).toEqual([address, false]);
    }
  });

  it('fetches a lookup on the worker\'s own network only when BERTH_SECRET_LOOKUP_HOSTS=any: not by address, not by a name that resolves there', async () => {
    const asked: string[] = [];
    const store = createServer((req, res) => {
      asked.push(req.url ?? '');
      res.end('looked-up-value');
    });
    await new Promise<void>((ok) => store.listen(0, '127.0.0.1', ok));
    const { port } = store.address() as AddressInfo;
    try {
      const sources = (host: string) => vault.sealSecrets({ TOKEN: { kind: 'LookupSecret', url: `http://${host}:${port}/s`, headers: {} } });
      for (const host of ['127.0.0.1', 'localhost', '[::ffff:127.0.0.1]']) {
        const guarded = new SecretRegistry(vault);
        guarded.use(sources(host));
        expect([host, await guarded.envFor('echo $TOKEN')]).toEqual([host, {}]);
      }
      expect(asked).toEqual([]);
      const trusting = new SecretRegistry(vault, 'any');
      trusting.use(sources('127.0.0.1'));
      expect(await trusting.envFor('echo $TOKEN')).toEqual({ TOKEN: 'looked-up-value' });
      expect(asked).toEqual(['/s']);
    } finally {
      await new Promise((ok) => store.close(ok));
    }
  });
});
