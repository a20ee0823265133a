import { execFileSync } from 'node:child_process';
import { Fernet, InvalidTokenError } from './fernet';

/** Made by Python's `cryptography` with Fernet(urlsafe_b64encode(sha256(b'berth-test-secret'))). */
const PYTHON_SECRET = 'berth-test-secret';
const PYTHON_TOKEN = 'gAAAAABrBqrWAbpavw4yAjToqgWLMv5GRi0bzJumHZAtmc5oogs-A5GFf0pABRfa4BjPbMB-6IqcCSX7N-MN4qrS0cbcT_oLcA==';

/** The OpenHands key derivation, done by Python: the only independent implementation we compare with. */
const PY_FERNET = [
  'import sys, base64, hashlib',
  'from cryptography.fernet import Fernet',
  'f = Fernet(base64.urlsafe_b64encode(hashlib.sha256(sys.argv[2].encode()).digest()))',
  'op = sys.argv[1]',
  'if op == "decrypt": sys.stdout.buffer.write(f.decrypt(sys.argv[3].encode()))',
  'else: sys.stdout.buffer.write(f.encrypt(sys.argv[3].encode()))',
].join('\n');

function python(op: 'encrypt' | 'decrypt', secret: string, text: string): string {
  return execFileSync('python3', ['-c', PY_FERNET, op, secret, text], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

const pythonAvailable = (() => {
  try {
    execFileSync('python3', ['-c', 'import cryptography.fernet'], { stdio: 'ignore' });
    return true;
  } catch {
    // eslint-disable-next-line no-console
    console.warn('python3 with the `cryptography` package is not available: skipping the Python interoperability tests');
    return false;
  }
})();
const withPython = pythonAvailable ? it : it.skip;

const b64 = (token: string) => Buffer.from(token.replace(/-/g, '+').replace(/_/g, '/'), 'base64');
const unb64 = (raw: Buffer) => raw.toString('base64').replace(/\+/g, '-').replace(/\//g, '_');

describe('Fernet', () => {
  const fernet = new Fernet('a server secret');

  it('round-trips ASCII, Unicode, empty and long plaintexts', () => {
    for (const plain of ['sk-live-123', '', 'héllo wörld — ключ 🔑', 'x'.repeat(10_000), 'exactly16bytes!!']) {
      const token = fernet.encrypt(plain);
      expect(token).not.toContain(plain || '\u0000');
      expect(fernet.decrypt(token)).toBe(plain);
    }
  });

  it('produces url-safe base64 tokens in the Fernet layout (version 0x80, timestamp in seconds)', () => {
    const now = Date.UTC(2026, 0, 2, 3, 4, 5, 999);
    const token = fernet.encrypt('secret', now);
    expect(token).toMatch(/^[A-Za-z0-9_-]+={0,2}$/);
    expect(Fernet.looksEncrypted(token)).toBe(true);
    const raw = b64(token);
    expect(raw[0]).toBe(0x80);
    expect(raw.readBigUInt64BE(1)).toBe(BigInt(Math.floor(now / 1000)));
    // version + timestamp + IV + one AES block + HMAC
    expect(raw.length).toBe(1 + 8 + 16 + 16 + 32);
  });

  it('uses a fresh IV for every token', () => {
    const a = fernet.encrypt('same');
    const b = fernet.encrypt('same');
    expect(a).not.toBe(b);
    expect(b64(a).subarray(9, 25).equals(b64(b).subarray(9, 25))).toBe(false);
    expect(fernet.decrypt(a)).toBe(fernet.decrypt(b));
  });

  it('rejects a token with any byte changed (version, timestamp, IV, ciphertext, MAC)', () => {
    const token = fernet.encrypt('do not touch');
    const raw = b64(token);
    for (const offset of [0, 3, 12, 30, raw.length - 40, raw.length - 1]) {
      const tampered = Buffer.from(raw);
      tampered[offset] ^= 0x01;
      expect(() => fernet.decrypt(unb64(tampered))).toThrow(InvalidTokenError);
    }
  });

  it('rejects truncated, extended and non-token input', () => {
    const token = fernet.encrypt('value');
    const raw = b64(token);
    for (const bad of [
      unb64(raw.subarray(0, raw.length - 1)),
      unb64(raw.subarray(0, 40)),
      unb64(Buffer.concat([raw, Buffer.from([0])])),
      '',
      'not a token',
      'gAAAAA',
    ]) {
      expect(() => fernet.decrypt(bad)).toThrow(InvalidTokenError);
    }
  });

  it('fails with another key', () => {
    const token = fernet.encrypt('sk-live-123');
    expect(() => new Fernet('another secret').decrypt(token)).toThrow(InvalidTokenError);
    expect(() => new Fernet('a server secret ').decrypt(token)).toThrow(InvalidTokenError);
    expect(new Fernet('a server secret').decrypt(token)).toBe('sk-live-123');
  });

  it('opens checks the MAC only: true for tokens of this key, false for another key or a malformed token', () => {
    const token = fernet.encrypt('x'.repeat(40));
    expect(fernet.opens(token)).toBe(true);
    expect(new Fernet('another secret').opens(token)).toBe(false);
    expect(fernet.opens('gAAAAA')).toBe(false);
    expect(new Fernet(PYTHON_SECRET).opens(PYTHON_TOKEN)).toBe(true);
  });

  it('isToken accepts the Fernet layout under any key and nothing merely starting like it', () => {
    expect(Fernet.isToken(PYTHON_TOKEN)).toBe(true);
    expect(Fernet.isToken(new Fernet('k').encrypt('a longer plaintext than one block'))).toBe(true);
    const raw = b64(fernet.encrypt('value'));
    for (const bad of ['gAAAAA', 'gAAAAAnot-a-token', 'sk-live', unb64(raw.subarray(0, raw.length - 1)), unb64(raw.subarray(0, 40)), `${PYTHON_TOKEN} `]) {
      expect(Fernet.isToken(bad)).toBe(false);
    }
  });

  it('looksEncrypted recognises the OpenHands ciphertext prefix only', () => {
    expect(Fernet.looksEncrypted(PYTHON_TOKEN)).toBe(true);
    expect(Fernet.looksEncrypted('sk-live-123')).toBe(false);
    expect(Fernet.looksEncrypted('')).toBe(false);
  });

  describe('interoperability with Python cryptography (OpenHands key derivation)', () => {
    it('decrypts a token made by Python', () => {
      expect(new Fernet(PYTHON_SECRET).decrypt(PYTHON_TOKEN)).toBe('sk-live-123');
      expect(() => new Fernet('other').decrypt(PYTHON_TOKEN)).toThrow(InvalidTokenError);
    });

    withPython('makes tokens that Python decrypts', () => {
      const ours = new Fernet(PYTHON_SECRET);
      for (const plain of ['sk-live-123', 'héllo — 🔑', 'x'.repeat(100)]) {
        expect(python('decrypt', PYTHON_SECRET, ours.encrypt(plain))).toBe(plain);
      }
    });

    withPython('decrypts fresh Python tokens, Unicode included', () => {
      const ours = new Fernet(PYTHON_SECRET);
      for (const plain of ['ghp_abc', 'pässwörd ✓']) {
        expect(ours.decrypt(python('encrypt', PYTHON_SECRET, plain))).toBe(plain);
      }
    });

    withPython('Python rejects our token under a different secret', () => {
      const token = new Fernet(PYTHON_SECRET).encrypt('sk-live-123');
      expect(() => python('decrypt', 'not-the-secret', token)).toThrow();
    });
  });
});
