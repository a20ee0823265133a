import { Logger } from '@nestjs/common';
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Fernet, InvalidTokenError } from './fernet';

/** Names of fields that hold secrets wherever they appear in an agent (llm, condenser.llm, …); and the values of mcp_config servers' env and headers. */
const SECRET_FIELDS = new Set(['api_key', 'aws_access_key_id', 'aws_secret_access_key', 'aws_session_token']);

export type StoredSecret =
  | { kind: 'StaticSecret'; value: string | null; description?: string | null }
  | { kind: 'LookupSecret'; url: string; headers: Record<string, string>; description?: string | null };

export type SecretInput =
  | string
  | { value: string; description?: string | null }
  | { kind: 'StaticSecret'; value: string | null; description?: string | null }
  | { kind: 'LookupSecret'; url: string; headers: Record<string, string>; description?: string | null };

export class SecretDecryptError extends Error {}

/** Maps of an MCP server (in an agent's `mcp_config`) whose every value may be a credential. */
const MCP_SECRET_MAPS = ['env', 'headers'];

/** `redact`: the maps are left out, as OpenHands leaves them out of its answers. */
function mapMcpSecrets(config: Record<string, unknown>, fn: (v: string) => string | null, redact: boolean): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [name, server] of Object.entries(config)) {
    if (!server || typeof server !== 'object' || Array.isArray(server)) {
      out[name] = server;
      continue;
    }
    const copy: Record<string, unknown> = { ...server };
    for (const field of MCP_SECRET_MAPS) {
      const map = copy[field];
      if (redact) delete copy[field];
      else if (map && typeof map === 'object' && !Array.isArray(map)) {
        copy[field] = Object.fromEntries(Object.entries(map).map(([k, v]) => [k, typeof v === 'string' ? fn(v) : v]));
      }
    }
    out[name] = copy;
  }
  return out;
}

function mapSecretFields(value: unknown, fn: (v: string) => string | null, redact = false): unknown {
  if (Array.isArray(value)) return value.map((v) => mapSecretFields(v, fn, redact));
  if (value && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) {
      if (k === 'mcp_config' && v && typeof v === 'object' && !Array.isArray(v)) out[k] = mapMcpSecrets(v as Record<string, unknown>, fn, redact);
      else out[k] = SECRET_FIELDS.has(k) && typeof v === 'string' ? fn(v) : mapSecretFields(v, fn, redact);
    }
    return out;
  }
  return value;
}

/** What `SecretVault.reseal` found a stored token to be. */
export type TokenState = 'current' | 'rekeyed' | 'unreadable';

/** A stored JSON value (or string) after `resealTokens`: the tokens counted by what they were. */
export interface Resealed<T> {
  value: T;
  rekeyed: number;
  unreadable: number;
}

/**
 * Encrypts the secrets a conversation carries (LLM keys, conversation secrets) with OH_SECRET_KEY
 * before they are stored, and redacts them from everything Berth sends back. Earlier keys
 * (OH_PREVIOUS_SECRET_KEYS) still open what they sealed, as MultiFernet: the current key is tried
 * first and is the only one that encrypts.
 */
export class SecretVault {
  private readonly current: Fernet;
  private readonly previous: Fernet[];

  constructor(secretKey: string | null, dataDir: string, previousKeys: string[] = []) {
    const key = secretKey ?? SecretVault.localKey(dataDir);
    this.current = new Fernet(key);
    this.previous = [...new Set(previousKeys)].filter((k) => k.trim() !== '' && k !== key).map((k) => new Fernet(k));
  }

  /** Whether keys other than the current one are configured (a re-encryption pass has work to look for). */
  get hasPreviousKeys(): boolean {
    return this.previous.length > 0;
  }

  /**
   * Without OH_SECRET_KEY a single-process install still keeps secrets across restarts: a random key
   * is kept in the data directory (mode 0600). Several replicas must share OH_SECRET_KEY instead.
   */
  private static localKey(dataDir: string): string {
    const file = join(dataDir, '.secret_key');
    if (existsSync(file)) return readFileSync(file, 'utf8').trim();
    mkdirSync(dataDir, { recursive: true });
    const key = randomBytes(32).toString('base64url');
    writeFileSync(file, key, { mode: 0o600 });
    chmodSync(file, 0o600);
    new Logger('SecretVault').warn(`OH_SECRET_KEY is not set: secrets are encrypted with a key kept in ${file}`);
    return key;
  }

  encrypt(plain: string): string {
    return this.current.encrypt(plain);
  }

  /**
   * Throws SecretDecryptError when no configured key made the token; `what` names the secret in
   * its message (a client is told which one to set again).
   */
  decrypt(token: string, what = 'a secret'): string {
    for (const fernet of [this.current, ...this.previous]) {
      try {
        return fernet.decrypt(token);
      } catch (err) {
        if (!(err instanceof InvalidTokenError)) throw err;
      }
    }
    throw new SecretDecryptError(
      `${what} is encrypted with a key this server does not have: set it again, or configure the key it was stored under ` +
        '(OH_SECRET_KEY, or one of OH_PREVIOUS_SECRET_KEYS)',
    );
  }

  /** A stored token under the current key: kept as it is, re-encrypted from a previous key, or opened by none. */
  reseal(token: string): { token: string; state: TokenState } {
    if (this.current.opens(token)) return { token, state: 'current' };
    const previous = this.previous.find((f) => f.opens(token));
    if (!previous) return { token, state: 'unreadable' };
    return { token: this.current.encrypt(previous.decrypt(token)), state: 'rekeyed' };
  }

  /**
   * Every Fernet token anywhere in a stored value (a string column, or JSON at any depth) resealed
   * under the current key; the value is returned unchanged (the same object) when nothing was re-keyed.
   */
  resealTokens<T>(value: T): Resealed<T> {
    const found = { rekeyed: 0, unreadable: 0 };
    const walk = (v: unknown): unknown => {
      if (typeof v === 'string') {
        if (!Fernet.isToken(v)) return v;
        const { token, state } = this.reseal(v);
        if (state !== 'current') found[state]++;
        return token;
      }
      if (Array.isArray(v)) return v.map(walk);
      if (v && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, walk(x)]));
      return v;
    };
    const walked = walk(value) as T;
    return { value: found.rekeyed ? walked : value, ...found };
  }

  /** Agent JSON for storage: every secret field encrypted (already-encrypted input is checked, kept). */
  sealAgent<T>(agent: T, alreadyEncrypted = false): T {
    return mapSecretFields(agent, (v) => (alreadyEncrypted ? (this.decrypt(v), v) : this.encrypt(v))) as T;
  }

  /** Agent JSON with clear-text secrets, for the worker's LLM calls only. */
  openAgent<T>(agent: T): T {
    return mapSecretFields(agent, (v) => (Fernet.looksEncrypted(v) ? this.decrypt(v) : v)) as T;
  }

  /** Agent JSON as responses show it: secrets null (ConversationInfo) or masked (full_state). */
  static redactAgent<T>(agent: T, mask: string | null = null): T {
    return mapSecretFields(agent, () => mask, true) as T;
  }

  sealSecrets(secrets: Record<string, SecretInput>, alreadyEncrypted = false): Record<string, StoredSecret> {
    const seal = (v: string) => (alreadyEncrypted ? (this.decrypt(v), v) : this.encrypt(v));
    const out: Record<string, StoredSecret> = {};
    for (const [name, input] of Object.entries(secrets)) {
      if (typeof input === 'string') out[name] = { kind: 'StaticSecret', value: seal(input) };
      else if ('kind' in input && input.kind === 'LookupSecret') {
        out[name] = {
          kind: 'LookupSecret',
          url: input.url,
          headers: Object.fromEntries(Object.entries(input.headers).map(([h, v]) => [h, seal(v)])),
          description: input.description ?? null,
        };
      } else {
        out[name] = { kind: 'StaticSecret', value: input.value === null ? null : seal(input.value), description: input.description ?? null };
      }
    }
    return out;
  }

  /** `secret_registry.secret_sources` as responses show it. */
  static redactSecrets(secrets: Record<string, StoredSecret>, mask: string | null = null): Record<string, unknown> {
    const out: Record<string, unknown> = {};
    for (const [name, s] of Object.entries(secrets)) {
      out[name] =
        s.kind === 'LookupSecret'
          ? { description: s.description ?? null, url: s.url, headers: Object.fromEntries(Object.keys(s.headers).map((h) => [h, mask])), kind: s.kind }
          : { description: s.description ?? null, value: s.value === null ? null : mask, kind: s.kind };
    }
    return out;
  }
}
