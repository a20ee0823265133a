/// <reference types="jest" />
import { randomUUID } from 'node:crypto';
import { ExecutorClient } from './executor-client';
import { SandboxDriver, SandboxHandle } from './sandbox-driver';

/**
 * A driver under test and the means to look behind it — at the processes or pods it runs — without
 * going through the driver itself.
 */
export interface SandboxDriverFixture {
  driver: SandboxDriver;
  /** Kills the executor abruptly, as a crash would (SIGKILL); resolves once it is gone. */
  crash(handle: SandboxHandle): Promise<void>;
  /** Something that changes whenever the executor is (re)started: the pid, a container id. */
  executorIdentity(handle: SandboxHandle): string;
  /** How many executors run for this sandbox, counted on the platform. */
  countExecutors(handle: SandboxHandle): Promise<number>;
  /** The environment the executor runs with. */
  executorEnv(handle: SandboxHandle): Promise<Record<string, string>>;
  /** Files in the sandbox's workspace, by path relative to it. */
  writeFile(handle: SandboxHandle, path: string, content: string): Promise<void>;
  readFile(handle: SandboxHandle, path: string): Promise<string | undefined>;
  storageExists(handle: SandboxHandle): Promise<boolean>;
  /** Removes what the fixture created (the driver is closed before). */
  dispose(): Promise<void>;
}

/** Parent-process secrets that must never reach a sandbox. */
const PARENT_SECRETS: Record<string, string> = {
  DATABASE_URL: 'postgres://secret@db/berth',
  REDIS_URL: 'redis://:secret@redis:6379',
  OH_SECRET_KEY: 'secret-key-material',
  OH_SESSION_API_KEYS_0: 'secret-session-key',
  OPENAI_API_KEY: 'sk-secret',
};

export interface SandboxDriverContractOptions {
  /**
   * What close() does to running executors: `stop` them (a driver whose executors are its
   * process's children), or `keep` them running (a cluster's pods: another process takes them over).
   */
  onClose?: 'stop' | 'keep';
}

/**
 * The behaviour every `SandboxDriver` shares: lifecycle, restarts, token, isolation of the
 * environment. Each driver's spec calls this with a factory for a fresh driver and fixture.
 */
export function describeSandboxDriverContract(name: string, makeDriver: () => Promise<SandboxDriverFixture>, { onClose = 'stop' }: SandboxDriverContractOptions = {}): void {
  describe(`SandboxDriver contract: ${name}`, () => {
    let fixture: SandboxDriverFixture;
    let driver: SandboxDriver;

    beforeEach(async () => {
      fixture = await makeDriver();
      driver = fixture.driver;
    });

    afterEach(async () => {
      await driver.close();
      await fixture.dispose();
    });

    const health = (handle: SandboxHandle) => new ExecutorClient(handle, { timeoutMs: 5000 }).health();

    it('provisions a running sandbox whose executor answers /health, with a JSON handle', async () => {
      const id = randomUUID();
      const handle = await driver.provision({ id });
      expect(handle).toMatchObject({ driver: driver.kind, id, url: expect.any(String), token: expect.any(String) });
      expect(JSON.parse(JSON.stringify(handle))).toEqual(handle);
      expect(await driver.status(handle)).toBe('running');
      expect(await health(handle)).toEqual({ status: 'ok' });
      expect(await fixture.countExecutors(handle)).toBe(1);
    });

    it('gives each sandbox its own token, which its executor requires', async () => {
      const a = await driver.provision({ id: randomUUID() });
      const b = await driver.provision({ id: randomUUID() });
      expect(a.token).not.toBe(b.token);
      expect(a.token.length).toBeGreaterThanOrEqual(32);
      await expect(new ExecutorClient({ url: a.url, token: '' }).execute({ conversation_id: 'c', working_dir: '.', tool: 'terminal', action: {} })).rejects.toMatchObject({ status: 401 });
      await expect(new ExecutorClient({ url: a.url, token: b.token }).execute({ conversation_id: 'c', working_dir: '.', tool: 'terminal', action: {} })).rejects.toMatchObject({
        name: 'ExecutorError',
        status: 401,
      });
      expect(await new ExecutorClient(a).acceptsToken()).toBe(true);
      expect(await new ExecutorClient({ url: a.url, token: b.token }).acceptsToken()).toBe(false);
    });

    it('reuses a running executor on ensureRunning', async () => {
      const handle = await driver.provision({ id: randomUUID() });
      const again = await driver.ensureRunning(handle);
      expect(fixture.executorIdentity(again)).toBe(fixture.executorIdentity(handle));
      expect(again).toEqual(handle);
      expect(await fixture.countExecutors(handle)).toBe(1);
    });

    it('restarts a crashed executor with the same token and files', async () => {
      const handle = await driver.provision({ id: randomUUID() });
      await fixture.writeFile(handle, 'notes.txt', 'kept');
      await fixture.crash(handle);
      expect(['stopped', 'error']).toContain(await driver.status(handle));

      const restarted = await driver.ensureRunning(handle);
      expect(fixture.executorIdentity(restarted)).not.toBe(fixture.executorIdentity(handle));
      expect(restarted).toMatchObject({ id: handle.id, token: handle.token });
      expect(await driver.status(restarted)).toBe('running');
      expect(await health(restarted)).toEqual({ status: 'ok' });
      expect(await fixture.readFile(restarted, 'notes.txt')).toBe('kept');
      expect(await fixture.countExecutors(restarted)).toBe(1);
    });

    it('starts one executor when ensureRunning is called concurrently', async () => {
      const handle = await driver.provision({ id: randomUUID() });
      await fixture.crash(handle);
      const handles = await Promise.all(Array.from({ length: 5 }, () => driver.ensureRunning(handle)));
      expect(new Set(handles.map((h) => fixture.executorIdentity(h))).size).toBe(1);
      expect(await fixture.countExecutors(handle)).toBe(1);
    });

    it('stops the executor but keeps the files; resume starts it again', async () => {
      const handle = await driver.provision({ id: randomUUID() });
      await fixture.writeFile(handle, 'src/main.py', 'print(1)\n');
      await driver.stop(handle);
      expect(await driver.status(handle)).toBe('stopped');
      expect(await fixture.countExecutors(handle)).toBe(0);
      expect(await fixture.storageExists(handle)).toBe(true);
      expect(await fixture.readFile(handle, 'src/main.py')).toBe('print(1)\n');
      await driver.stop(handle); // stopping a stopped sandbox is a no-op

      const resumed = await driver.resume(handle);
      expect(resumed.token).toBe(handle.token);
      expect(await driver.status(resumed)).toBe('running');
      expect(await health(resumed)).toEqual({ status: 'ok' });
      expect(await fixture.readFile(resumed, 'src/main.py')).toBe('print(1)\n');
    });

    it('destroys the executor and the files', async () => {
      const handle = await driver.provision({ id: randomUUID() });
      await fixture.writeFile(handle, 'notes.txt', 'gone');
      await driver.destroy(handle);
      expect(await fixture.storageExists(handle)).toBe(false);
      expect(await fixture.countExecutors(handle)).toBe(0);
      expect(await driver.status(handle)).toBe('stopped');
      await expect(driver.ensureRunning(handle)).rejects.toThrow();
      await driver.destroy(handle); // destroying twice is a no-op
    });

    it('lists what it holds in its inventory (running, stopped, then nothing), and removes an orphan with everything of it', async () => {
      const kept = await driver.provision({ id: randomUUID() });
      const orphan = await driver.provision({ id: randomUUID() });
      await fixture.writeFile(orphan, 'notes.txt', 'no row names me');
      const stateOf = async (id: string) => (await driver.inventory()).find((r) => r.sandboxId === id)?.state;
      expect(await stateOf(kept.id)).toBe('running');
      await driver.stop(kept);
      expect(await stateOf(kept.id)).toBe('stopped');

      await driver.removeOrphan(orphan.id);
      expect(await stateOf(orphan.id)).toBeUndefined();
      expect(await fixture.countExecutors(orphan)).toBe(0);
      expect(await fixture.storageExists(orphan)).toBe(false);
      expect(await stateOf(kept.id)).toBe('stopped');
      await driver.destroy(kept);
      expect(await stateOf(kept.id)).toBeUndefined();
    });

    it("keeps the parent's environment out of the sandbox and passes the spec's", async () => {
      const saved = Object.fromEntries(Object.keys(PARENT_SECRETS).map((key) => [key, process.env[key]]));
      Object.assign(process.env, PARENT_SECRETS);
      try {
        const handle = await driver.provision({ id: randomUUID(), env: { PROJECT: 'demo', BERTH_SANDBOX_TOKEN: 'chosen-by-spec' } });
        const env = await fixture.executorEnv(handle);
        for (const key of Object.keys(PARENT_SECRETS)) expect(env).not.toHaveProperty(key);
        expect(Object.values(env).join('\n')).not.toContain('secret');
        expect(env).toMatchObject({ PROJECT: 'demo', BERTH_SANDBOX_TOKEN: handle.token });

        // A restart runs with the same spec.
        await fixture.crash(handle);
        const restarted = await driver.ensureRunning(handle);
        expect(await fixture.executorEnv(restarted)).toMatchObject({ PROJECT: 'demo', BERTH_SANDBOX_TOKEN: handle.token });
      } finally {
        for (const [key, value] of Object.entries(saved)) {
          if (value === undefined) delete process.env[key];
          else process.env[key] = value;
        }
      }
    });

    it('refuses an id that is not a uuid', async () => {
      await expect(driver.provision({ id: '../escape' })).rejects.toThrow(/uuid/);
    });

    it(`${onClose === 'stop' ? 'stops every executor' : 'leaves the executors running'} on close and takes no work afterwards`, async () => {
      const a = await driver.provision({ id: randomUUID() });
      const b = await driver.provision({ id: randomUUID() });
      await driver.close();
      const left = onClose === 'stop' ? 0 : 1;
      expect(await fixture.countExecutors(a)).toBe(left);
      expect(await fixture.countExecutors(b)).toBe(left);
      expect(await driver.status(a)).toBe(onClose === 'stop' ? 'stopped' : 'running');
      expect(await fixture.storageExists(a)).toBe(true);
      await expect(driver.provision({ id: randomUUID() })).rejects.toThrow(/closed/);
      await expect(driver.ensureRunning(a)).rejects.toThrow(/closed/);
    });
  });
}
