import { Logger } from '@nestjs/common';
import { lookup as dnsLookup, LookupAddress } from 'node:dns';
import { IncomingMessage, request as httpRequest, RequestOptions } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { BlockList, isIP, LookupFunction } from 'node:net';
import { ENV_VAR_NAME_RE } from '@berth/contracts';
import { SecretVault, StoredSecret } from '@berth/crypto';

/** What a secret's value becomes in everything Berth stores or sends (the SDK's mask). */
export const SECRET_HIDDEN = '<secret-hidden>';
/** A LookupSecret's URL gets this long to answer (the SDK waits 30 s; a command waits for it). */
export const LOOKUP_TIMEOUT_MS = 10_000;
/** A looked-up value longer than this is refused (it is an environment variable). */
const LOOKUP_MAX_BYTES = 64 * 1024;
/** After a failed lookup, masking does not try that secret again for this long (the SDK's FAILED_LOOKUP_RETRY_SECONDS). */
const FAILED_LOOKUP_RETRY_MS = 60_000;

/** Where a LookupSecret may be fetched from (`BERTH_SECRET_LOOKUP_HOSTS`). */
export type LookupHosts = 'public' | 'any';

/**
 * Addresses a tenant's lookup URL may not reach with `public`: the worker's own loopback, private and
 * link-local networks (cloud metadata at 169.254.169.254, the cluster's services), and the rest that
 * is no one's public address.
 */
const NOT_PUBLIC = new BlockList();
for (const [net, bits] of [
  ['0.0.0.0', 8], ['10.0.0.0', 8], ['100.64.0.0', 10], ['127.0.0.0', 8], ['169.254.0.0', 16], ['172.16.0.0', 12],
  ['192.0.0.0', 24], ['192.168.0.0', 16], ['198.18.0.0', 15], ['224.0.0.0', 4], ['240.0.0.0', 4],
] as const) NOT_PUBLIC.addSubnet(net, bits, 'ipv4');
for (const [net, bits] of [['::', 128], ['::1', 128], ['fc00::', 7], ['fe80::', 10], ['ff00::', 8], ['64:ff9b::', 96]] as const) {
  NOT_PUBLIC.addSubnet(net, bits, 'ipv6');
}

/** Whether `address` (an IP) is one a `public` lookup may connect to; IPv4-mapped IPv6 is judged as IPv4. */
export function isPublicAddress(address: string): boolean {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  if (mapped) return !NOT_PUBLIC.check(mapped[1], 'ipv4');
  const family = isIP(address);
  if (family === 0) return false;
  return !NOT_PUBLIC.check(address, family === 4 ? 'ipv4' : 'ipv6');
}

/**
 * DNS lookup for a `public` lookup's connection: every address a name resolves to is checked at
 * connect time, so a name that resolves to a public address when asked and a private one when
 * connected (rebinding) cannot reach inside.
 */
const publicOnlyLookup: LookupFunction = (hostname, options, callback) => {
  dnsLookup(hostname, { ...options, all: true }, (err, addresses: LookupAddress[]) => {
    if (err) return callback(err, '', 0);
    const refused = addresses.find((a) => !isPublicAddress(a.address));
    if (refused || addresses.length === 0) return callback(Object.assign(new Error('not a public address'), { code: 'EBERTHPRIVATE' }), '', 0);
    if ((options as { all?: boolean }).all) return (callback as unknown as (e: null, a: LookupAddress[]) => void)(null, addresses);
    callback(null, addresses[0].address, addresses[0].family);
  });
};

/**
 * A conversation's secrets as one run of its agent loop uses them (the SDK's SecretRegistry):
 * a terminal command gets, as environment variables, the secrets whose names it mentions
 * (case-insensitive), and every value resolved so far is masked in whatever the loop stores or
 * publishes. Values are resolved here, in the worker (a LookupSecret's URL is fetched by the
 * worker, never by the sandbox), and live only in this object's memory.
 */
export class SecretRegistry {
  private readonly logger = new Logger('SecretRegistry');
  private sources: Record<string, StoredSecret> = {};
  /** The last resolved value of each secret (kept after a rotation until it resolves anew). */
  private readonly values = new Map<string, string>();
  /** Values that were a secret's before it changed: still masked for the rest of the run. */
  private readonly previous = new Set<string>();
  private readonly failedAt = new Map<string, number>();
  private pattern: RegExp | null = null;
  private longest = 0;

  constructor(
    private readonly vault: SecretVault,
    private readonly lookupHosts: LookupHosts = 'public',
    private readonly lookupTimeoutMs = LOOKUP_TIMEOUT_MS,
  ) {}

  /** The conversation's stored secrets as they are now (set again after every read of its row). */
  use(sources: unknown): void {
    this.sources = sources && typeof sources === 'object' && !Array.isArray(sources) ? (sources as Record<string, StoredSecret>) : {};
    for (const name of [...this.values.keys()]) {
      if (!(name in this.sources)) this.forget(name);
    }
  }

  /** The secrets a command names (`get_secrets_as_env_vars`), resolved; names a shell cannot export are skipped. */
  async envFor(command: string): Promise<Record<string, string>> {
    const text = command.toLowerCase();
    const env: Record<string, string> = {};
    for (const name of Object.keys(this.sources)) {
      if (!text.includes(name.toLowerCase())) continue;
      const value = await this.resolve(name);
      if (!value) continue;
      if (!ENV_VAR_NAME_RE.test(name)) this.logger.warn(`Skipping secret with invalid env var name: ${JSON.stringify(name)}`);
      // An environment variable cannot hold a NUL byte (the value is still masked).
      else if (value.includes('\0')) this.logger.warn(`Skipping secret '${name}': its value contains a NUL byte`);
      else env[name] = value;
    }
    return env;
  }

  /**
   * `value` with every secret value replaced by `<secret-hidden>` in every string it holds
   * (`mask_secrets_in_model`); secrets not resolved yet are resolved first, failed lookups retried
   * only after a minute.
   */
  async mask<T>(value: T): Promise<T> {
    await this.resolveAll();
    return this.maskKnown(value);
  }

  /** Resolves the secrets not resolved yet (failed lookups again only after a minute): what maskKnown and streamMask then hide. */
  async resolveAll(): Promise<void> {
    const now = Date.now();
    for (const name of Object.keys(this.sources)) {
      const failed = this.failedAt.get(name);
      if (this.values.has(name) && this.sources[name].kind !== 'StaticSecret') continue;
      if (failed !== undefined && now - failed < FAILED_LOOKUP_RETRY_MS) continue;
      if (!(await this.resolve(name))) this.failedAt.set(name, now);
    }
  }

  /** Masks with the values resolved so far, without resolving anything (streamed text, between steps). */
  maskKnown<T>(value: T): T {
    const pattern = this.pattern;
    if (!pattern) return value;
    const walk = (v: unknown): unknown => {
      if (typeof v === 'string') return v.replace(pattern, SECRET_HIDDEN);
      if (Array.isArray(v)) return v.map(walk);
      if (v && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, item]) => [k, walk(item)]));
      return v;
    };
    return walk(value) as T;
  }

  /** A masker for text that arrives in pieces (the SDK's StreamOutputMask), over the values known now. */
  streamMask(): StreamMask {
    return new StreamMask(this.pattern, this.longest);
  }

  /** The secret's value now; null when it has none or its lookup failed (logged without the value). */
  private async resolve(name: string): Promise<string | null> {
    const source = this.sources[name];
    let value: string | null;
    try {
      value = source.kind === 'LookupSecret' ? await this.lookup(source) : source.value === null ? null : this.open(source.value);
    } catch (err) {
      this.logger.warn(`Could not resolve secret '${name}': ${(err as Error).message}`);
      return null;
    }
    if (value) {
      this.failedAt.delete(name);
      const old = this.values.get(name);
      if (old !== value) {
        if (old) this.previous.add(old);
        this.values.set(name, value);
        this.compile();
      }
    }
    return value || null;
  }

  private open(sealed: string): string {
    return this.vault.decrypt(sealed);
  }

  private async lookup(source: Extract<StoredSecret, { kind: 'LookupSecret' }>): Promise<string> {
    let url: URL;
    try {
      url = new URL(source.url);
    } catch {
      throw new Error('its lookup URL is not an absolute URL');
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new Error(`its lookup URL's scheme ${url.protocol} is not http or https`);
    const headers = Object.fromEntries(Object.entries(source.headers ?? {}).map(([h, v]) => [h, this.open(v)]));
    if (this.lookupHosts === 'public' && isIP(url.hostname.replace(/^\[|\]$/g, '')) && !isPublicAddress(url.hostname.replace(/^\[|\]$/g, ''))) {
      throw new Error('its lookup URL is not a public address (BERTH_SECRET_LOOKUP_HOSTS=public)');
    }
    let response: IncomingMessage;
    try {
      response = await this.get(url, headers);
    } catch (err) {
      const { name, code } = err as { name?: string; code?: string };
      if (code === 'EBERTHPRIVATE') throw new Error('its lookup URL is not a public address (BERTH_SECRET_LOOKUP_HOSTS=public)');
      throw new Error(name === 'TimeoutError' ? `its lookup timed out after ${this.lookupTimeoutMs / 1000} s` : 'its lookup URL could not be reached');
    }
    // No redirects: a 3xx is an answer like any other non-2xx.
    const status = response.statusCode ?? 0;
    if (status < 200 || status > 299) {
      response.destroy();
      throw new Error(`its lookup answered HTTP ${status}`);
    }
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of response) {
      size += (chunk as Buffer).length;
      if (size > LOOKUP_MAX_BYTES) {
        response.destroy();
        throw new Error(`its lookup answered more than ${LOOKUP_MAX_BYTES} bytes`);
      }
      chunks.push(chunk as Buffer);
    }
    return Buffer.concat(chunks).toString('utf8');
  }

  /** One GET of a lookup URL, its connection checked by `publicOnlyLookup` unless any host is allowed. */
  private get(url: URL, headers: Record<string, string>): Promise<IncomingMessage> {
    const options: RequestOptions = {
      method: 'GET',
      headers,
      signal: AbortSignal.timeout(this.lookupTimeoutMs),
      ...(this.lookupHosts === 'public' ? { lookup: publicOnlyLookup } : {}),
    };
    return new Promise((resolve, reject) => {
      const request = (url.protocol === 'https:' ? httpsRequest : httpRequest)(url, options, resolve);
      request.on('error', reject);
      request.end();
    });
  }

  private forget(name: string): void {
    const old = this.values.get(name);
    if (old) this.previous.add(old);
    this.values.delete(name);
    this.failedAt.delete(name);
  }

  /** One pattern over every value, longest first, so a shorter value never leaves half of a longer one. */
  private compile(): void {
    const all = [...new Set([...this.values.values(), ...this.previous])].filter(Boolean).sort((a, b) => b.length - a.length);
    this.pattern = all.length ? new RegExp(all.map(escapeRegExp).join('|'), 'g') : null;
    this.longest = all.length ? all[0].length : 0;
  }
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/**
 * Masks text that arrives in pieces: a value split across two pieces is still masked, because the
 * shortest tail that could grow into one (the longest value's length minus one) is held back.
 */
export class StreamMask {
  private held = '';

  constructor(
    private readonly pattern: RegExp | null,
    private readonly longest: number,
  ) {}

  /** The masked text that is safe to release now. */
  feed(text: string): string {
    if (!this.pattern) return text;
    this.held += text;
    return this.release(Math.max(this.held.length - this.longest + 1, 0));
  }

  /** What is still held back (no more input is coming). */
  flush(): string {
    if (!this.pattern) return '';
    return this.release(this.held.length);
  }

  private release(cut: number): string {
    const out: string[] = [];
    let pos = 0;
    let end = cut;
    this.pattern!.lastIndex = 0;
    for (const match of this.held.matchAll(this.pattern!)) {
      if (match.index >= cut) break;
      out.push(this.held.slice(pos, match.index), SECRET_HIDDEN);
      pos = match.index + match[0].length;
      end = Math.max(end, pos);
    }
    out.push(this.held.slice(pos, end));
    this.held = this.held.slice(end);
    return out.join('');
  }
}
