import { createCipheriv, createDecipheriv, createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

const VERSION = 0x80;

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
    const raw = Buffer.from(token.replace(/-/g, '+').replace(/_/g, '/'), 'base64');
    if (raw.length < 9 + 16 + 16 + 32 || raw[0] !== VERSION) throw new InvalidTokenError();
    const signed = raw.subarray(0, raw.length - 32);
    const mac = raw.subarray(raw.length - 32);
    const expected = createHmac('sha256', this.signingKey).update(signed).digest();
    if (!timingSafeEqual(mac, expected)) throw new InvalidTokenError();
    const iv = raw.subarray(9, 25);
    try {
      const decipher = createDecipheriv('aes-128-cbc', this.encryptionKey, iv);
      return Buffer.concat([decipher.update(raw.subarray(25, raw.length - 32)), decipher.final()]).toString('utf8');
    } catch {
      throw new InvalidTokenError();
    }
  }

  /** OpenHands treats strings with this prefix as ciphertext. */
  static looksEncrypted(value: string): boolean {
    return value.startsWith('gAAAAA');
  }
}
