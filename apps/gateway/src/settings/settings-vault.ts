import { Injectable } from '@nestjs/common';
import { SECRET_MASK } from '@berth/contracts';
import { Fernet, SecretDecryptError, SecretVault } from '@berth/crypto';
import { validationError } from '../common/zod-validation.pipe';
import type { SecretExposure } from './expose-secrets.decorator';

/**
 * The LLM api keys of settings and profiles: sealed with OH_SECRET_KEY before they are stored, and
 * shown to a caller as X-Expose-Secrets allows.
 */
@Injectable()
export class SettingsVault {
  constructor(private readonly vault: SecretVault) {}

  /**
   * The stored form of a key a client sent (`loc` names it in a 422): clear text is encrypted; a
   * token this server handed out (`X-Expose-Secrets: encrypted`) is kept; the mask stands for the
   * key already stored; empty means none.
   */
  seal(sent: string | null, stored: string | null, loc: string[]): string | null {
    if (sent === null || sent.trim() === '') return null;
    if (sent === SECRET_MASK) return stored;
    if (!Fernet.looksEncrypted(sent)) return this.vault.encrypt(sent);
    try {
      this.vault.decrypt(sent);
    } catch (err) {
      if (err instanceof SecretDecryptError) throw validationError('body', loc, err.message, 'value_error');
      throw err;
    }
    return sent;
  }

  /** A stored key as the caller may see it: the mask, the token itself, or the key (`what` names it if no key opens it). */
  show(stored: string | null, exposure: SecretExposure, what?: string): string | null {
    if (stored === null) return null;
    if (exposure === 'encrypted') return stored;
    if (exposure === 'plaintext') return this.vault.decrypt(stored, what);
    return SECRET_MASK;
  }

  /** The clear text of a token; SecretDecryptError (naming `what`) when no configured key made it. */
  open(token: string, what?: string): string {
    return this.vault.decrypt(token, what);
  }
}
