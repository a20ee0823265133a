import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Fernet } from './fernet';
import { SecretDecryptError, SecretVault, StoredSecret } from './secret-vault';

const TOKEN_RE = /^gAAAAA[A-Za-z0-9_-]+={0,2}$/;

function agent() {
  return {
    kind: 'Agent',
    llm: { model: 'openai/gpt-4o-mini', api_key: 'sk-main', base_url: null, usage_id: 'agent', aws_secret_access_key: 'aws-secret' },
    condenser: {
      kind: 'LLMSummarizingCondenser',
      max_size: 80,
      llm: { model: 'openai/gpt-4o-mini', api_key: 'sk-condenser', aws_session_token: 'aws-session', usage_id: 'condenser' },
    },
    fallbacks: [{ model: 'anthropic/claude', api_key: 'sk-in-array' }],
    tools: [{ name: 'terminal', params: {} }],
    no_key: { api_key: null },
  };
}

describe('SecretVault', () => {
  const vault = new SecretVault('vault-test-secret', '/nonexistent-data-dir-not-used');
  const other = new SecretVault('some-other-secret', '/nonexistent-data-dir-not-used');

  describe('agents', () => {
    it("seals every value of an mcp_config server's env and headers, opens them back, and leaves them out of answers", () => {
      const plain = { kind: 'Agent', mcp_config: { fx: { command: 'node', args: ['-e', 'x'], env: { TOKEN: 'env-secret' } }, web: { url: 'https://mcp.example', headers: { Authorization: 'Bearer hdr-secret' } } } };
      const sealed = vault.sealAgent(plain);
      expect(sealed.mcp_config.fx.env.TOKEN).toMatch(TOKEN_RE);
      expect(sealed.mcp_config.web.headers.Authorization).toMatch(TOKEN_RE);
      expect(sealed.mcp_config.fx.args).toEqual(['-e', 'x']);
      expect(vault.openAgent(sealed)).toEqual(plain);
      const shown = SecretVault.redactAgent(sealed, '**********');
      expect(shown.mcp_config).toEqual({ fx: { command: 'node', args: ['-e', 'x'] }, web: { url: 'https://mcp.example' } });
      expect(() => other.openAgent(sealed)).toThrow(SecretDecryptError);
    });

    it('sealAgent encrypts every secret field at any depth and leaves the rest alone', () => {
      const plain = agent();
      const sealed = vault.sealAgent(plain);
      for (const [value, original] of [
        [sealed.llm.api_key, 'sk-main'],
        [sealed.llm.aws_secret_access_key, 'aws-secret'],
        [sealed.condenser.llm.api_key, 'sk-condenser'],
        [sealed.condenser.llm.aws_session_token, 'aws-session'],
        [sealed.fallbacks[0].api_key, 'sk-in-array'],
      ] as const) {
        expect(value).toMatch(TOKEN_RE);
        expect(vault.decrypt(value as string)).toBe(original);
      }
      expect(sealed.no_key.api_key).toBeNull();
      expect(sealed.llm.base_url).toBeNull();
      expect(sealed.llm.model).toBe('openai/gpt-4o-mini');
      expect(sealed.condenser.max_size).toBe(80);
      expect(sealed.tools).toEqual([{ name: 'terminal', params: {} }]);
      expect(JSON.stringify(sealed)).not.toMatch(/sk-main|sk-condenser|sk-in-array|aws-secret|aws-session/);
      // the input is not modified
      expect(plain).toEqual(agent());
    });

    it('openAgent restores the clear-text agent', () => {
      expect(vault.openAgent(vault.sealAgent(agent()))).toEqual(agent());
      // values that are not ciphertext pass through
      expect(vault.openAgent({ llm: { api_key: 'plain-key' } })).toEqual({ llm: { api_key: 'plain-key' } });
    });

    it('openAgent refuses ciphertext made with another key', () => {
      expect(() => vault.openAgent(other.sealAgent(agent()))).toThrow(SecretDecryptError);
    });

    it('redactAgent nulls secrets by default and masks them on request', () => {
      const sealed = vault.sealAgent(agent());
      const nulled = SecretVault.redactAgent(sealed);
      expect(nulled.llm.api_key).toBeNull();
      expect(nulled.llm.aws_secret_access_key).toBeNull();
      expect(nulled.condenser.llm.api_key).toBeNull();
      expect(nulled.condenser.llm.aws_session_token).toBeNull();
      expect(nulled.fallbacks[0].api_key).toBeNull();
      expect(nulled.llm.model).toBe('openai/gpt-4o-mini');

      const masked = SecretVault.redactAgent(agent(), '**********');
      expect(masked.llm.api_key).toBe('**********');
      expect(masked.condenser.llm.api_key).toBe('**********');
      // an absent secret stays absent rather than appearing masked
      expect(masked.no_key.api_key).toBeNull();
      expect(JSON.stringify(masked)).not.toMatch(/sk-|aws-secret|aws-session/);
    });

    it('sealAgent(alreadyEncrypted) keeps our ciphertext and rejects foreign or clear-text values', () => {
      const sealed = vault.sealAgent(agent());
      expect(vault.sealAgent(sealed, true)).toEqual(sealed);
      expect(() => vault.sealAgent(other.sealAgent(agent()), true)).toThrow(SecretDecryptError);
      expect(() => vault.sealAgent({ llm: { api_key: 'sk-not-encrypted' } }, true)).toThrow(SecretDecryptError);
    });
  });

  describe('conversation secrets', () => {
    const inputs = {
      PLAIN: 'ghp_plain',
      WRAPPED: { value: 'wrapped-value', description: 'a wrapped secret' },
      STATIC: { kind: 'StaticSecret' as const, value: 'static-value' },
      EMPTY: { kind: 'StaticSecret' as const, value: null, description: 'not set yet' },
      LOOKUP: {
        kind: 'LookupSecret' as const,
        url: 'https://vault.example.com/secret',
        headers: { Authorization: 'Bearer lookup-token', 'X-Team': 'core' },
        description: 'looked up',
      },
    };

    it('sealSecrets encrypts every form of secret and keeps their metadata', () => {
      const sealed = vault.sealSecrets(inputs);
      expect(Object.keys(sealed)).toEqual(['PLAIN', 'WRAPPED', 'STATIC', 'EMPTY', 'LOOKUP']);
      const value = (name: string) => (sealed[name] as Extract<StoredSecret, { kind: 'StaticSecret' }>).value as string;

      expect(sealed.PLAIN.kind).toBe('StaticSecret');
      expect(value('PLAIN')).toMatch(TOKEN_RE);
      expect(vault.decrypt(value('PLAIN'))).toBe('ghp_plain');

      expect(sealed.WRAPPED).toEqual({ kind: 'StaticSecret', value: expect.stringMatching(TOKEN_RE), description: 'a wrapped secret' });
      expect(vault.decrypt(value('WRAPPED'))).toBe('wrapped-value');

      expect(sealed.STATIC).toEqual({ kind: 'StaticSecret', value: expect.stringMatching(TOKEN_RE), description: null });
      expect(vault.decrypt(value('STATIC'))).toBe('static-value');

      expect(sealed.EMPTY).toEqual({ kind: 'StaticSecret', value: null, description: 'not set yet' });

      const lookup = sealed.LOOKUP as Extract<StoredSecret, { kind: 'LookupSecret' }>;
      expect(lookup.kind).toBe('LookupSecret');
      expect(lookup.url).toBe('https://vault.example.com/secret');
      expect(lookup.description).toBe('looked up');
      expect(Object.keys(lookup.headers)).toEqual(['Authorization', 'X-Team']);
      expect(vault.decrypt(lookup.headers.Authorization)).toBe('Bearer lookup-token');
      expect(vault.decrypt(lookup.headers['X-Team'])).toBe('core');

      expect(JSON.stringify(sealed)).not.toMatch(/ghp_plain|wrapped-value|static-value|lookup-token/);
    });

    it('sealSecrets(alreadyEncrypted) accepts our tokens unchanged and rejects foreign ones', () => {
      const ours = vault.encrypt('pre-encrypted');
      const sealed = vault.sealSecrets(
        {
          A: ours,
          B: { kind: 'StaticSecret', value: ours },
          C: { kind: 'LookupSecret', url: 'https://x.example', headers: { Authorization: ours } },
        },
        true,
      );
      expect((sealed.A as { value: string }).value).toBe(ours);
      expect((sealed.B as { value: string }).value).toBe(ours);
      expect((sealed.C as { headers: Record<string, string> }).headers.Authorization).toBe(ours);

      const foreign = other.encrypt('pre-encrypted');
      expect(() => vault.sealSecrets({ A: foreign }, true)).toThrow(SecretDecryptError);
      expect(() => vault.sealSecrets({ A: { value: 'clear text' } }, true)).toThrow(SecretDecryptError);
      expect(() =>
        vault.sealSecrets({ C: { kind: 'LookupSecret', url: 'https://x.example', headers: { Authorization: foreign } } }, true),
      ).toThrow(SecretDecryptError);
    });

    it('redactSecrets shows OpenHands secret sources without values', () => {
      const redacted = SecretVault.redactSecrets(vault.sealSecrets(inputs));
      expect(redacted).toEqual({
        PLAIN: { description: null, value: null, kind: 'StaticSecret' },
        WRAPPED: { description: 'a wrapped secret', value: null, kind: 'StaticSecret' },
        STATIC: { description: null, value: null, kind: 'StaticSecret' },
        EMPTY: { description: 'not set yet', value: null, kind: 'StaticSecret' },
        LOOKUP: {
          description: 'looked up',
          url: 'https://vault.example.com/secret',
          headers: { Authorization: null, 'X-Team': null },
          kind: 'LookupSecret',
        },
      });
      expect(Object.keys(redacted.PLAIN as object)).toEqual(['description', 'value', 'kind']);

      const masked = SecretVault.redactSecrets(vault.sealSecrets(inputs), '**********');
      expect(masked.PLAIN).toEqual({ description: null, value: '**********', kind: 'StaticSecret' });
      expect(masked.EMPTY).toEqual({ description: 'not set yet', value: null, kind: 'StaticSecret' });
      expect((masked.LOOKUP as { headers: unknown }).headers).toEqual({ Authorization: '**********', 'X-Team': '**********' });
      expect(JSON.stringify(masked)).not.toContain('gAAAAA');
    });
  });

  it('decrypt throws SecretDecryptError for tokens of another key and for garbage', () => {
    expect(vault.decrypt(vault.encrypt('x'))).toBe('x');
    expect(() => vault.decrypt(other.encrypt('x'))).toThrow(SecretDecryptError);
    expect(() => vault.decrypt('not-a-token')).toThrow(SecretDecryptError);
  });

  it('uses the OpenHands key derivation for a configured key', () => {
    const token = new Fernet('vault-test-secret').encrypt('shared');
    expect(vault.decrypt(token)).toBe('shared');
    expect(new Fernet('vault-test-secret').decrypt(vault.encrypt('back'))).toBe('back');
  });

  describe('local key file (no OH_SECRET_KEY)', () => {
    let root: string;
    beforeAll(() => {
      root = mkdtempSync(join(tmpdir(), 'berth-vault-'));
    });
    afterAll(() => {
      rmSync(root, { recursive: true, force: true });
    });

    it('creates <dataDir>/.secret_key with mode 0600 and reuses it on the next start', () => {
      const dataDir = join(root, 'nested', 'data');
      const first = new SecretVault(null, dataDir);
      const file = join(dataDir, '.secret_key');
      expect(existsSync(file)).toBe(true);
      expect(statSync(file).mode & 0o777).toBe(0o600);
      const key = readFileSync(file, 'utf8');
      expect(key.trim().length).toBeGreaterThanOrEqual(32);

      const token = first.encrypt('survives restarts');
      const second = new SecretVault(null, dataDir);
      expect(second.decrypt(token)).toBe('survives restarts');
      expect(readFileSync(file, 'utf8')).toBe(key);
      // the file holds the Fernet secret itself
      expect(new Fernet(key.trim()).decrypt(token)).toBe('survives restarts');
    });

    it('gives separate data directories separate keys', () => {
      const a = new SecretVault(null, join(root, 'a'));
      const b = new SecretVault(null, join(root, 'b'));
      expect(() => b.decrypt(a.encrypt('mine'))).toThrow(SecretDecryptError);
    });

    it('does not create a key file when a secret key is configured', () => {
      const dataDir = join(root, 'configured');
      new SecretVault('configured-secret', dataDir);
      expect(existsSync(join(dataDir, '.secret_key'))).toBe(false);
    });
  });

  describe('key rotation (OH_PREVIOUS_SECRET_KEYS)', () => {
    const dir = '/nonexistent-data-dir-not-used';
    const keyA = new SecretVault('key-a', dir);
    const rotated = new SecretVault('key-b', dir, ['key-a']);
    const bOnly = new SecretVault('key-b', dir);

    it('opens tokens of the current key and of every previous key, and encrypts with the current one only', () => {
      const three = new SecretVault('key-c', dir, ['key-b', 'key-a']);
      expect(three.decrypt(keyA.encrypt('from-a'))).toBe('from-a');
      expect(three.decrypt(bOnly.encrypt('from-b'))).toBe('from-b');
      const fresh = three.encrypt('new');
      expect(new Fernet('key-c').decrypt(fresh)).toBe('new');
      expect(() => rotated.decrypt(fresh)).toThrow(SecretDecryptError);
      expect(three.openAgent(keyA.sealAgent(agent()))).toEqual(agent());
    });

    it('names the secret no key opens and says what to configure', () => {
      const token = new SecretVault('key-z', dir).encrypt('lost');
      expect(() => rotated.decrypt(token, "secret 'GITHUB_TOKEN'")).toThrow(
        "secret 'GITHUB_TOKEN' is encrypted with a key this server does not have: set it again, or configure the key it was stored under (OH_SECRET_KEY, or one of OH_PREVIOUS_SECRET_KEYS)",
      );
      expect(() => rotated.decrypt(token)).toThrow(/^a secret is encrypted with a key/);
    });

    it('ignores blank previous keys and one equal to the current key', () => {
      expect(new SecretVault('key-b', dir, ['', '  ', 'key-b']).hasPreviousKeys).toBe(false);
      expect(rotated.hasPreviousKeys).toBe(true);
    });

    it('reseal keeps current tokens, re-encrypts previous-key tokens under the current key, and flags the rest', () => {
      const current = bOnly.encrypt('b');
      expect(rotated.reseal(current)).toEqual({ token: current, state: 'current' });
      const old = keyA.encrypt('a');
      const resealed = rotated.reseal(old);
      expect(resealed.state).toBe('rekeyed');
      expect(bOnly.decrypt(resealed.token)).toBe('a');
      const lost = new SecretVault('key-z', dir).encrypt('z');
      expect(rotated.reseal(lost)).toEqual({ token: lost, state: 'unreadable' });
    });

    it('resealTokens re-keys tokens at any depth of a stored value and counts what it found', () => {
      const lost = new SecretVault('key-z', dir).encrypt('z');
      const stored = {
        agent: keyA.sealAgent(agent()),
        secrets: keyA.sealSecrets({ A: 'one', L: { kind: 'LookupSecret', url: 'https://x.example', headers: { H: 'two' } } }),
        kept: bOnly.encrypt('three'),
        lost,
        // starts like a token but is none: neither counted nor touched
        note: 'gAAAAA-not-really-a-token',
      };
      const out = rotated.resealTokens(stored);
      expect(out).toMatchObject({ rekeyed: 7, unreadable: 1 });
      expect(out.value.kept).toBe(stored.kept);
      expect(out.value.lost).toBe(lost);
      expect(out.value.note).toBe(stored.note);
      expect(bOnly.openAgent(out.value.agent)).toEqual(agent());
      expect(bOnly.decrypt((out.value.secrets.A as { value: string }).value)).toBe('one');
      expect(bOnly.decrypt((out.value.secrets.L as { headers: Record<string, string> }).headers.H)).toBe('two');
      // a second pass finds nothing to do and returns the value itself
      const again = bOnly.resealTokens(out.value);
      expect(again).toEqual({ value: out.value, rekeyed: 0, unreadable: 1 });
      expect(again.value).toBe(out.value);
      // a text column is one token
      expect(bOnly.decrypt(rotated.resealTokens(keyA.encrypt('col')).value)).toBe('col');
    });
  });
});
