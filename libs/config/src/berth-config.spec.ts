import { resolve } from 'node:path';
import { ConfigError, isLoopbackHost, loadConfig, parseArgs, readEnvList, readWebhooks } from './berth-config';

describe('loadConfig', () => {
  it('reads LOG_LEVEL in pino\'s names, case-insensitively, with Nest\'s and Python\'s names too; refuses anything else', () => {
    const level = (LOG_LEVEL?: string) => loadConfig(LOG_LEVEL === undefined ? {} : { LOG_LEVEL }, []).logLevel;
    expect([undefined, 'error', 'WARN', 'info', 'log', 'DEBUG', 'verbose', 'trace', 'silent', 'none', 'WARNING', 'CRITICAL', 'fatal'].map(level)).toEqual([
      'info', 'error', 'warn', 'info', 'info', 'debug', 'trace', 'trace', 'silent', 'silent', 'warn', 'fatal', 'fatal',
    ]);
    expect(() => level('loud')).toThrow(ConfigError);
    expect(() => level('loud')).toThrow(/LOG_LEVEL must be one of fatal, error, warn, info, debug, trace, silent, critical, warning, log, verbose, none \(got "loud"\)/);
  });

  it('has OpenHands-compatible defaults', () => {
    const config = loadConfig({}, []);
    expect(config).toMatchObject({
      host: '127.0.0.1',
      port: 8000,
      role: 'all',
      sessionApiKeys: [],
      corsOrigins: [],
      corsOriginRegex: null,
      dockerHostAddr: null,
      databaseUrl: null,
      redisUrl: null,
      queuePrefix: 'berth',
      secretKey: null,
      maxBodyBytes: 10 * 1024 * 1024,
      wsMaxSubscribers: 50,
      maxConcurrentRuns: 10,
      logLevel: 'info',
      debug: false,
    });
    expect(config.dataDir).toBe(resolve('workspace'));
    expect(config.conversationsPath).toBe('workspace/conversations');
  });

  describe('sandbox isolation', () => {
    it('isolates with bwrap, no network and bounded resources by default', () => {
      const config = loadConfig({}, []);
      expect(config).toMatchObject({ sandboxIsolation: 'bwrap', sandboxNetwork: 'none', sandboxUidBase: 100_000 });
      expect(config.sandboxLimits).toEqual({
        memoryBytes: 2048 * 1024 * 1024,
        processes: 512,
        openFiles: 4096,
        cpuSeconds: 3600,
        fileSizeBytes: 2048 * 1024 * 1024,
        diskBytes: 10_240 * 1024 * 1024,
      });
    });

    it('reads the mode, the network, the uid base and the limits (0 = none), and refuses others', () => {
      const config = loadConfig({ BERTH_SANDBOX_ISOLATION: 'none', BERTH_SANDBOX_NETWORK: 'egress', BERTH_SANDBOX_UID_BASE: '200000', BERTH_SANDBOX_MEMORY_MB: '0', BERTH_SANDBOX_PROCESSES: '64' }, []);
      expect(config).toMatchObject({ sandboxIsolation: 'none', sandboxNetwork: 'egress', sandboxUidBase: 200_000 });
      expect(config.sandboxLimits).toMatchObject({ memoryBytes: 0, processes: 64 });
      expect(() => loadConfig({ BERTH_SANDBOX_ISOLATION: 'docker' }, [])).toThrow(ConfigError);
      expect(() => loadConfig({ BERTH_SANDBOX_NETWORK: 'host' }, [])).toThrow(ConfigError);
      expect(() => loadConfig({ BERTH_SANDBOX_UID_BASE: '0' }, [])).toThrow(ConfigError);
      expect(() => loadConfig({ BERTH_SANDBOX_PROCESSES: '-1' }, [])).toThrow(ConfigError);
    });
  });

  describe('logs', () => {
    it('writes JSON lines unless stdout is a terminal, and takes LOG_FORMAT json or pretty only', () => {
      expect(loadConfig({}, []).logFormat).toBe(process.stdout.isTTY ? 'pretty' : 'json');
      expect(loadConfig({ LOG_FORMAT: 'pretty' }, []).logFormat).toBe('pretty');
      expect(loadConfig({ LOG_FORMAT: 'json' }, []).logFormat).toBe('json');
      expect(() => loadConfig({ LOG_FORMAT: 'text' }, [])).toThrow(/LOG_FORMAT must be one of/);
    });
  });

  describe('host and port', () => {
    it('reads --host H --port P', () => {
      const config = loadConfig({}, ['--host', '0.0.0.0', '--port', '9001']);
      expect(config.host).toBe('0.0.0.0');
      expect(config.port).toBe(9001);
    });

    it('reads --port=P and --host=H', () => {
      const config = loadConfig({}, ['--port=8123', '--host=::1']);
      expect(config.port).toBe(8123);
      expect(config.host).toBe('::1');
    });

    it('reads HOST and PORT from the environment, arguments winning', () => {
      expect(loadConfig({ HOST: '10.0.0.5', PORT: '3000' }, [])).toMatchObject({ host: '10.0.0.5', port: 3000 });
      expect(loadConfig({ HOST: '10.0.0.5', PORT: '3000' }, ['--port', '4000'])).toMatchObject({ host: '10.0.0.5', port: 4000 });
      expect(loadConfig({ HOST: '10.0.0.5', PORT: '3000' }, ['--host', 'localhost'])).toMatchObject({ host: 'localhost', port: 3000 });
    });

    it('accepts the port range bounds', () => {
      expect(loadConfig({}, ['--port', '0']).port).toBe(0);
      expect(loadConfig({}, ['--port', '65535']).port).toBe(65535);
    });

    it.each([['abc'], ['65536'], ['-1'], ['80.5'], ['1e9']])('rejects port %j', (port) => {
      expect(() => loadConfig({ PORT: port }, [])).toThrow(ConfigError);
      expect(() => loadConfig({}, [`--port=${port}`])).toThrow(ConfigError);
    });

    it('rejects --port without a value', () => {
      expect(() => loadConfig({}, ['--port'])).toThrow(ConfigError);
      expect(() => loadConfig({}, ['--port', '--host', 'x'])).toThrow(ConfigError);
    });
  });

  describe('role', () => {
    it('reads --role and BERTH_ROLE, arguments winning', () => {
      expect(loadConfig({}, ['--role', 'worker']).role).toBe('worker');
      expect(loadConfig({ BERTH_ROLE: 'gateway' }, []).role).toBe('gateway');
      expect(loadConfig({ BERTH_ROLE: 'gateway' }, ['--role=all']).role).toBe('all');
    });

    it('rejects an unknown role', () => {
      expect(() => loadConfig({}, ['--role', 'admin'])).toThrow(ConfigError);
      expect(() => loadConfig({ BERTH_ROLE: 'Worker' }, [])).toThrow(ConfigError);
    });
  });

  describe('session API keys', () => {
    it('reads OH_SESSION_API_KEYS as a JSON list', () => {
      expect(loadConfig({ OH_SESSION_API_KEYS: '["k1", "k2"]' }, []).sessionApiKeys).toEqual(['k1', 'k2']);
    });

    it('reads OH_SESSION_API_KEYS_0.._N up to the first gap', () => {
      const env = { OH_SESSION_API_KEYS_0: 'a', OH_SESSION_API_KEYS_1: 'b', OH_SESSION_API_KEYS_3: 'after-gap' };
      expect(loadConfig(env, []).sessionApiKeys).toEqual(['a', 'b']);
      expect(loadConfig({ OH_SESSION_API_KEYS_1: 'no-zero' }, []).sessionApiKeys).toEqual([]);
    });

    it('drops empty keys', () => {
      expect(loadConfig({ OH_SESSION_API_KEYS: '["", "k"]' }, []).sessionApiKeys).toEqual(['k']);
      expect(loadConfig({ OH_SESSION_API_KEYS_0: '', OH_SESSION_API_KEYS_1: 'k' }, []).sessionApiKeys).toEqual(['k']);
    });

    it('uses SESSION_API_KEY only when no OH_SESSION_API_KEYS are given', () => {
      expect(loadConfig({ SESSION_API_KEY: 'legacy' }, []).sessionApiKeys).toEqual(['legacy']);
      expect(loadConfig({ SESSION_API_KEY: 'legacy', OH_SESSION_API_KEYS_0: 'new' }, []).sessionApiKeys).toEqual(['new']);
      expect(loadConfig({ SESSION_API_KEY: 'legacy', OH_SESSION_API_KEYS: '["new"]' }, []).sessionApiKeys).toEqual(['new']);
      expect(loadConfig({ SESSION_API_KEY: '' }, []).sessionApiKeys).toEqual([]);
    });

    it.each([['not json'], ['{"a": "b"}'], ['"k"'], ['[1, 2]'], ['["ok", null]']])('rejects OH_SESSION_API_KEYS=%s', (value) => {
      expect(() => loadConfig({ OH_SESSION_API_KEYS: value }, [])).toThrow(ConfigError);
    });
  });

  describe('admin keys and tenant limits', () => {
    it('reads BERTH_ADMIN_API_KEYS as a JSON list (as the Helm chart passes it) or _0.._N', () => {
      expect(loadConfig({ BERTH_ADMIN_API_KEYS: '["a1", "a2"]' }, []).adminApiKeys).toEqual(['a1', 'a2']);
      expect(loadConfig({ BERTH_ADMIN_API_KEYS_0: 'a', BERTH_ADMIN_API_KEYS_1: '', BERTH_ADMIN_API_KEYS_2: 'c' }, []).adminApiKeys).toEqual(['a', 'c']);
      expect(loadConfig({}, []).adminApiKeys).toEqual([]);
      expect(() => loadConfig({ BERTH_ADMIN_API_KEYS: 'nope' }, [])).toThrow(ConfigError);
    });

    it('refuses a key that is both an admin key and a session key', () => {
      expect(() => loadConfig({ BERTH_ADMIN_API_KEYS_0: 'same', OH_SESSION_API_KEYS_0: 'same' }, [])).toThrow(/also a session API key/);
    });

    it('reads the BERTH_TENANT_* defaults, 0 (no limit) when unset', () => {
      expect(loadConfig({}, []).tenantLimits).toEqual({ maxSandboxes: 20, maxRunningConversations: 10, requestsPerMinute: 1200, maxSocketsPerKey: 50 });
      const env = {
        BERTH_TENANT_MAX_SANDBOXES: '3',
        BERTH_TENANT_MAX_RUNNING_CONVERSATIONS: '2',
        BERTH_TENANT_REQUESTS_PER_MINUTE: '600',
        BERTH_TENANT_MAX_SOCKETS_PER_KEY: '10',
      };
      expect(loadConfig(env, []).tenantLimits).toEqual({ maxSandboxes: 3, maxRunningConversations: 2, requestsPerMinute: 600, maxSocketsPerKey: 10 });
      expect(() => loadConfig({ BERTH_TENANT_MAX_SANDBOXES: '-1' }, [])).toThrow(ConfigError);
      expect(loadConfig({}, []).wsMaxPendingPerAddress).toBe(16);
    });
  });

  describe('CORS', () => {
    it('reads OH_ALLOW_CORS_ORIGINS_* and the JSON form', () => {
      const env = { OH_ALLOW_CORS_ORIGINS_0: 'https://a.example', OH_ALLOW_CORS_ORIGINS_1: 'https://b.example' };
      expect(loadConfig(env, []).corsOrigins).toEqual(['https://a.example', 'https://b.example']);
      expect(loadConfig({ OH_ALLOW_CORS_ORIGINS: '["https://c.example"]' }, []).corsOrigins).toEqual(['https://c.example']);
    });

    it('accepts a valid origin regex and rejects an invalid one', () => {
      expect(loadConfig({ OH_ALLOW_CORS_ORIGIN_REGEX: '^https://.*\\.example\\.com$' }, []).corsOriginRegex).toBe(
        '^https://.*\\.example\\.com$',
      );
      expect(() => loadConfig({ OH_ALLOW_CORS_ORIGIN_REGEX: '([a-z' }, [])).toThrow(ConfigError);
      expect(() => loadConfig({ OH_ALLOW_CORS_ORIGINS: '[' }, [])).toThrow(ConfigError);
    });
  });

  describe('secret key', () => {
    it('falls back OH_SECRET_KEY → SESSION_API_KEY → OH_SESSION_API_KEYS_0', () => {
      const all = { OH_SECRET_KEY: 'secret', SESSION_API_KEY: 'session', OH_SESSION_API_KEYS_0: 'first', OH_SESSION_API_KEYS_1: 'second' };
      expect(loadConfig(all, []).secretKey).toBe('secret');
      expect(loadConfig({ ...all, OH_SECRET_KEY: undefined }, []).secretKey).toBe('session');
      expect(loadConfig({ ...all, OH_SECRET_KEY: '', SESSION_API_KEY: '' }, []).secretKey).toBe('first');
      expect(loadConfig({ OH_SESSION_API_KEYS: '["json-first", "x"]' }, []).secretKey).toBe('json-first');
      expect(loadConfig({}, []).secretKey).toBeNull();
    });

    it('says which variable the key came from', () => {
      expect(loadConfig({ OH_SECRET_KEY: 's', SESSION_API_KEY: 'k' }, []).secretKeySource).toBe('OH_SECRET_KEY');
      expect(loadConfig({ SESSION_API_KEY: 'k', OH_SESSION_API_KEYS_0: 'first' }, []).secretKeySource).toBe('SESSION_API_KEY');
      expect(loadConfig({ OH_SESSION_API_KEYS_0: 'first' }, []).secretKeySource).toBe('OH_SESSION_API_KEYS');
      expect(loadConfig({ OH_SESSION_API_KEYS: '["json-first"]' }, []).secretKeySource).toBe('OH_SESSION_API_KEYS');
      expect(loadConfig({}, [])).toMatchObject({ secretKey: null, secretKeySource: 'data-dir' });
    });

    it('reads OH_PREVIOUS_SECRET_KEYS as a JSON list or numbered, blanks dropped', () => {
      expect(loadConfig({}, []).previousSecretKeys).toEqual([]);
      expect(loadConfig({ OH_PREVIOUS_SECRET_KEYS: '["a", " ", "b"]' }, []).previousSecretKeys).toEqual(['a', 'b']);
      expect(loadConfig({ OH_PREVIOUS_SECRET_KEYS_0: 'a', OH_PREVIOUS_SECRET_KEYS_1: 'b' }, []).previousSecretKeys).toEqual(['a', 'b']);
      expect(() => loadConfig({ OH_PREVIOUS_SECRET_KEYS: 'not-json' }, [])).toThrow(ConfigError);
    });

    it('bounds the start-up scan of stored secrets by BERTH_SECRET_SCAN_ROWS', () => {
      expect(loadConfig({}, []).secretScanRows).toBe(10_000);
      expect(loadConfig({ BERTH_SECRET_SCAN_ROWS: '0' }, []).secretScanRows).toBe(0);
      expect(() => loadConfig({ BERTH_SECRET_SCAN_ROWS: '-1' }, [])).toThrow(ConfigError);
    });
  });

  describe('numeric limits and flags', () => {
    it('reads integers within their bounds and rejects the rest', () => {
      expect(loadConfig({ BERTH_MAX_BODY_BYTES: '2048', OH_MAX_CONCURRENT_RUNS: '3' }, [])).toMatchObject({ maxBodyBytes: 2048, maxConcurrentRuns: 3 });
      expect(() => loadConfig({ BERTH_MAX_BODY_BYTES: '100' }, [])).toThrow(ConfigError);
      expect(() => loadConfig({ OH_MAX_CONCURRENT_RUNS: '0' }, [])).toThrow(ConfigError);
      expect(() => loadConfig({ BERTH_WS_MAX_SUBSCRIBERS: 'many' }, [])).toThrow(ConfigError);
    });

    it('keeps the embedded database and the warm pool small until used, and reads their settings', () => {
      expect(loadConfig({}, [])).toMatchObject({ embeddedSharedBuffersMb: 16, warmPoolSize: 2, warmPoolFill: 'demand' });
      expect(loadConfig({ BERTH_EMBEDDED_SHARED_BUFFERS_MB: '128', BERTH_WARM_POOL_FILL: 'start' }, [])).toMatchObject({ embeddedSharedBuffersMb: 128, warmPoolFill: 'start' });
      expect(() => loadConfig({ BERTH_EMBEDDED_SHARED_BUFFERS_MB: '0' }, [])).toThrow(ConfigError);
      expect(() => loadConfig({ BERTH_EMBEDDED_SHARED_BUFFERS_MB: '2048' }, [])).toThrow(ConfigError);
      expect(() => loadConfig({ BERTH_WARM_POOL_FILL: 'eager' }, [])).toThrow(ConfigError);
    });

    it('reads DEBUG as a flag', () => {
      for (const on of ['1', 'true', 'TRUE', 'yes']) expect(loadConfig({ DEBUG: on }, []).debug).toBe(true);
      for (const off of ['0', 'false', '', 'no']) expect(loadConfig({ DEBUG: off }, []).debug).toBe(false);
    });

    it('reads storage, queue and data settings', () => {
      const config = loadConfig(
        {
          DATABASE_URL: 'postgresql://db/berth',
          REDIS_URL: 'redis://cache:6379',
          BERTH_QUEUE_PREFIX: 'staging',
          BERTH_DATA_DIR: '/var/lib/berth',
          OH_CONVERSATIONS_PATH: 'data/convs/',
        },
        [],
      );
      expect(config).toMatchObject({
        databaseUrl: 'postgresql://db/berth',
        redisUrl: 'redis://cache:6379',
        queuePrefix: 'staging',
        dataDir: '/var/lib/berth',
        conversationsPath: 'data/convs',
      });
    });
  });

  describe('metrics and traces', () => {
    it('leaves /metrics open and tracing off by default', () => {
      expect(loadConfig({}, [])).toMatchObject({ metricsToken: null, tracing: null });
      expect(loadConfig({ BERTH_METRICS_TOKEN: 's3cret' }, []).metricsToken).toBe('s3cret');
    });

    it('reads the OTLP traces URL as the exporters do: the signal variable as given, else the base + /v1/traces', () => {
      expect(loadConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318/' }, []).tracing).toEqual({ tracesUrl: 'http://collector:4318/v1/traces', serviceName: null });
      expect(
        loadConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318', OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'https://traces.example/in', OTEL_SERVICE_NAME: 'berth-eu' }, []).tracing,
      ).toEqual({ tracesUrl: 'https://traces.example/in', serviceName: 'berth-eu' });
      expect(() => loadConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: 'collector:4318' }, [])).toThrow(ConfigError);
    });
  });
});

describe('readEnvList', () => {
  it('returns undefined when the list is not configured', () => {
    expect(readEnvList({}, 'LIST')).toBeUndefined();
    expect(readEnvList({ LIST: '   ' }, 'LIST')).toBeUndefined();
    expect(readEnvList({ LIST_1: 'gap' }, 'LIST')).toBeUndefined();
  });

  it('prefers the JSON form over numbered variables', () => {
    expect(readEnvList({ LIST: '["json"]', LIST_0: 'numbered' }, 'LIST')).toEqual(['json']);
    expect(readEnvList({ LIST: '[]', LIST_0: 'numbered' }, 'LIST')).toEqual([]);
  });

  it('reads numbered variables in order, keeping empty strings, and stops at the first gap', () => {
    expect(readEnvList({ LIST_0: 'a', LIST_1: '', LIST_2: 'c', LIST_4: 'e' }, 'LIST')).toEqual(['a', '', 'c']);
    // a blank JSON variable does not hide the numbered form
    expect(readEnvList({ LIST: '', LIST_0: 'a' }, 'LIST')).toEqual(['a']);
  });

  it('does not confuse lists that share a prefix', () => {
    expect(readEnvList({ LIST_EXTRA_0: 'x' }, 'LIST')).toBeUndefined();
  });

  it('throws ConfigError naming the variable for malformed JSON', () => {
    expect(() => readEnvList({ MY_LIST: '[oops' }, 'MY_LIST')).toThrow(/MY_LIST/);
    expect(() => readEnvList({ MY_LIST: '[oops' }, 'MY_LIST')).toThrow(ConfigError);
  });
});

describe('readWebhooks', () => {
  it('is empty by default and has the contract defaults', () => {
    expect(readWebhooks({})).toEqual([]);
    expect(readWebhooks({ OH_WEBHOOKS_0_BASE_URL: 'http://r.example/hooks/' })).toEqual([
      {
        baseUrl: 'http://r.example/hooks',
        headers: {},
        eventBufferSize: 5,
        flushDelayMs: 30_000,
        numRetries: 3,
        retryDelayMs: 5000,
        maxQueueSize: 1000,
        maxBatchBytes: 5 * 1024 * 1024,
      },
    ]);
  });

  it('reads OH_WEBHOOKS_<n>_* up to the first gap, and the JSON list form', () => {
    const indexed = readWebhooks({
      OH_WEBHOOKS_0_BASE_URL: 'http://a',
      OH_WEBHOOKS_0_HEADERS: '{"Authorization":"Bearer t"}',
      OH_WEBHOOKS_0_FLUSH_DELAY: '0.5',
      OH_WEBHOOKS_1_BASE_URL: 'https://b',
      OH_WEBHOOKS_1_NUM_RETRIES: '0',
      OH_WEBHOOKS_3_BASE_URL: 'http://skipped',
    });
    expect(indexed.map((w) => w.baseUrl)).toEqual(['http://a', 'https://b']);
    expect(indexed[0]).toMatchObject({ headers: { Authorization: 'Bearer t' }, flushDelayMs: 500 });
    expect(indexed[1].numRetries).toBe(0);
    const json = readWebhooks({ OH_WEBHOOKS: JSON.stringify([{ base_url: 'http://c', headers: { X: 'y' }, event_buffer_size: 9 }]) });
    expect(json).toMatchObject([{ baseUrl: 'http://c', headers: { X: 'y' }, eventBufferSize: 9 }]);
  });

  it.each([
    [{ OH_WEBHOOKS_0_BASE_URL: 'ftp://x' }, /BASE_URL/],
    [{ OH_WEBHOOKS_0_BASE_URL: 'http://x', OH_WEBHOOKS_0_HEADERS: '{"a":1}' }, /HEADERS/],
    [{ OH_WEBHOOKS_0_BASE_URL: 'http://x', OH_WEBHOOKS_0_EVENT_BUFFER_SIZE: '0' }, /EVENT_BUFFER_SIZE/],
    [{ OH_WEBHOOKS_0_BASE_URL: 'http://x', OH_WEBHOOKS_0_FLUSH_DELAY: '-1' }, /FLUSH_DELAY/],
    [{ OH_WEBHOOKS: '{"base_url":"http://x"}' }, /OH_WEBHOOKS/],
  ])('rejects %j', (env, message) => {
    expect(() => readWebhooks(env)).toThrow(ConfigError);
    expect(() => readWebhooks(env)).toThrow(message);
  });
});

describe('parseArgs', () => {
  it('parses spaced, = and bare flags and ignores positionals', () => {
    expect(parseArgs(['serve', '--host', 'h', '--port=1', '--verbose', '--role', 'worker', 'extra'])).toEqual({
      host: 'h',
      port: '1',
      verbose: 'true',
      role: 'worker',
    });
    expect(parseArgs(['--url=a=b'])).toEqual({ url: 'a=b' });
  });
});

describe('isLoopbackHost', () => {
  it.each([['localhost'], ['127.0.0.1'], ['127.1.2.3'], ['::1'], ['[::1]']])('%s is loopback', (host) => {
    expect(isLoopbackHost(host)).toBe(true);
  });

  it.each([['0.0.0.0'], ['::'], ['10.0.0.1'], ['192.168.1.10'], ['example.com'], ['128.0.0.1'], ['']])('%j is not loopback', (host) => {
    expect(isLoopbackHost(host)).toBe(false);
  });
});
