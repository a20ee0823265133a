import { createCipheriv, createDecipheriv, createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

const VERSION = 0x80;
/** version + timestamp + IV + one AES block + MAC */
const MIN_TOKEN_BYTES = 1 + 8 + 16 + 16 + 32;
const TOKEN_TEXT = /^gAAAAA[A-Za-z0-9_-]+={0,2}$/;

export class InvalidTokenError extends Error {
  constructor() {
    super('Invalid Fernet token');
  }
}

/**
 * Fernet (AES-128-CBC + HMAC-SHA256) with the OpenHands key derivation: the 32 key bytes are
 * SHA-256 of the configured secret string, so values encrypted by an OpenHands server with the same
 * OH_SECRET_KEY decrypt here and the other way round.
 */
export class Fernet {
  private readonly signingKey: Buffer;
  private readonly encryptionKey: Buffer;

  constructor(secret: string) {
    const key = createHash('sha256').update(secret, 'utf8').digest();
    this.signingKey = key.subarray(0, 16);
    this.encryptionKey = key.subarray(16, 32);
  }

  encrypt(plaintext: string, now = Date.now()): string {
    const iv = randomBytes(16);
    const cipher = createCipheriv('aes-128-cbc', this.encryptionKey, iv);
    const body = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
    const header = Buffer.alloc(9);
    header[0] = VERSION;
    header.writeBigUInt64BE(BigInt(Math.floor(now / 1000)), 1);
    const signed = Buffer.concat([header, iv, body]);
    const mac = createHmac('sha256', this.signingKey).update(signed).digest();
    return Buffer.concat([signed, mac]).toString('base64').replace(/\+/g, '-').replace(/\//g, '_');
  }

  decrypt(token: string): string {
    const raw = this.verified(token);
    if (raw === null) throw new InvalidTokenError();
    const iv = raw.subarray(9, 25);
    try {
      const decipher = createDecipheriv('aes-128-cbc', this.encryptionKey, iv);
      return Buffer.concat([decipher.update(raw.subarray(25, raw.length - 32)), decipher.final()]).toString('utf8');
    } catch {
      throw new InvalidTokenError();
    }
  }

  /** Whether this key made `token` (its MAC checks), without decrypting it: cheap enough to scan stores with. */
  opens(token: string): boolean {
    return this.verified(token) !== null;
  }

  /** The token's bytes when it is well formed and its MAC is this key's; null otherwise. */
  private verified(token: string): Buffer | null {
    const raw = Buffer.from(token.replace(/-/g, '+').replace(/_/g, '/'), 'base64');
    if (raw.length < MIN_TOKEN_BYTES || raw[0] !== VERSION) return null;
    const mac = raw.subarray(raw.length - 32);
    const expected = createHmac('sha256', this.signingKey).update(raw.subarray(0, raw.length - 32)).digest();
    return timingSafeEqual(mac, expected) ? raw : null;
  }

  /**
   * Whether `value` has the layout of a Fernet token (version, timestamp, IV, whole AES blocks,
   * MAC), whichever key made it: a stored string that merely starts like one is not counted as a
   * secret no key opens.
   */
  static isToken(value: string): boolean {
    if (!TOKEN_TEXT.test(value)) return false;
    const raw = Buffer.from(value.replace(/-/g, '+').replace(/_/g, '/'), 'base64');
    return raw.length >= MIN_TOKEN_BYTES && raw[0] === VERSION && (raw.length - 9 - 16 - 32) % 16 === 0;
  }

  /** OpenHands treats strings with this prefix as ciphertext. */
  static looksEncrypted(value: string): boolean {
    return value.startsWith('gAAAAA');
  }
}
