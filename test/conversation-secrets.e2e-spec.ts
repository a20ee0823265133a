import { createHash, randomBytes } from 'node:crypto';
import { createServer, Server } from 'node:http';
import { LlmStub } from '@berth/testing';
import { api, SocketClient, STORAGES, TestServer, startServer, userMessage } from './support/server';

/**
 * Conversation secrets as OpenHands' terminal uses them: a command gets, as environment variables,
 * the secrets whose names it mentions; every secret value is `<secret-hidden>` in what the agent
 * records (and so in what the LLM is sent), and appears in no stored event, socket frame, answer
 * or log line.
 */

const KEY = 'secrets-test-key';
type Json = Record<string, any>;

const sha256 = (text: string) => createHash('sha256').update(text, 'utf8').digest('hex');
const fresh = (label: string) => `${label}-${randomBytes(9).toString('hex')}`;
const terminal = (command: string) => ({ toolCalls: [{ name: 'terminal', arguments: { command } }] });
const finish = (message: string) => ({ toolCalls: [{ name: 'finish', arguments: { message } }] });
const outputOf = (observation: Json) => (observation.observation.content as Json[]).map((c) => c.text).join('');

describe.each(STORAGES)('conversation secrets in terminal commands (%s)', (storage) => {
  const llm = new LlmStub();
  let server: TestServer;
  let lookups: Server;
  let lookupUrl = '';
  const LOOKED_UP = fresh('looked-up');
  const LOOKUP_BEARER = fresh('bearer');
  /** Everything the server process wrote (its log), captured instead of printed. */
  let logged = '';
  const writes = { out: process.stdout.write, err: process.stderr.write };
  const call = (method: string, path: string, body?: unknown, key = KEY) => api(server, method, path, { body, key });

  beforeAll(async () => {
    const capture = (chunk: unknown) => {
      logged += String(chunk);
      return true;
    };
    process.stdout.write = capture as never;
    process.stderr.write = capture as never;
    await llm.start();
    // A secrets store a LookupSecret names: it answers only with the right bearer token.
    lookups = createServer((req, res) => {
      if (req.url === '/secret' && req.headers.authorization === `Bearer ${LOOKUP_BEARER}`) res.writeHead(200).end(LOOKED_UP);
      else res.writeHead(403).end('forbidden');
    });
    await new Promise<void>((resolve) => lookups.listen(0, '127.0.0.1', resolve));
    lookupUrl = `http://127.0.0.1:${(lookups.address() as { port: number }).port}`;
    // The lookup store listens on loopback, which only a trusting deployment lets lookups reach.
    server = await startServer(storage, { OH_SESSION_API_KEYS_0: KEY, BERTH_ROLE: 'all', LOG_LEVEL: 'debug', BERTH_SECRET_LOOKUP_HOSTS: 'any' });
  });
  afterAll(async () => {
    await server.close();
    await llm.stop();
    lookups.closeAllConnections();
    await new Promise((resolve) => lookups.close(resolve));
    process.stdout.write = writes.out;
    process.stderr.write = writes.err;
  });

  const start = async (text: string, secrets: Json) => {
    const res = await call('POST', '/api/conversations', {
      agent: { kind: 'Agent', llm: { model: 'openai/stub-model', api_key: 'sk-stub', base_url: llm.url, num_retries: 0 }, tools: [{ name: 'terminal' }] },
      workspace: { kind: 'LocalWorkspace', working_dir: '/workspace/project' },
      initial_message: userMessage(text),
      secrets,
    });
    expect(res.status).toBe(201);
    return res.body.id as string;
  };
  const events = async (id: string): Promise<Json[]> => (await call('GET', `/api/conversations/${id}/events/search?limit=100`)).body.items;
  const waitStatus = async (id: string, timeoutMs = 60_000) => {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const info = (await call('GET', `/api/conversations/${id}`)).body;
      if (['finished', 'error', 'stuck'].includes(info.execution_status)) return info;
      if (Date.now() > deadline) throw new Error(`status stayed ${info.execution_status}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  };
  const terminalOutputs = async (id: string) => (await events(id)).filter((e) => e.kind === 'ObservationEvent' && e.tool_name === 'terminal').map(outputOf);
  /** Every place a value could leak to: stored events, socket frames, answers, the LLM's requests, the log. */
  const expectNowhere = async (id: string, values: string[], ws: SocketClient, task: string) => {
    const everything = [
      JSON.stringify(await events(id)),
      JSON.stringify(ws.frames),
      JSON.stringify((await call('GET', `/api/conversations/${id}`)).body),
      JSON.stringify((await call('GET', `/api/conversations/search?limit=100`)).body),
      JSON.stringify((await call('GET', `/api/conversations/${id}/events/count`)).body),
      JSON.stringify(llm.requestsFor(task)),
      logged,
    ].join('\n');
    // The log was captured (debug level: the worker's and the gateway's lines are all in it).
    expect(logged.length).toBeGreaterThan(1000);
    for (const value of values) expect(everything).not.toContain(value);
  };

  it('exports the secrets a command names to that command only, and masks every value in what is stored and sent', async () => {
    const deploy = fresh('deploy');
    const other = fresh('other');
    const task = `use the secrets (${storage})`;
    llm.script(task, [
      { text: 'Hashing the deploy token.', ...terminal('printf %s "$DEPLOY_TOKEN" | sha256sum') },
      // Named in any case: the SDK matches names case-insensitively.
      terminal('printenv | grep -i deploy_token | cut -c1-13'),
      // Printed indirectly: the name appears, the value is printed by printenv.
      terminal(': DEPLOY_TOKEN; printenv | grep "_TOKEN=" | sort'),
      // Not named: neither secret is in this command's environment (nothing lingers from the last one).
      terminal('printenv | grep -c "_TOKEN=" ; echo "[${!DEPLOY*}] [${!other*}]"'),
      // A value that reaches the output without its name in the command is masked all the same.
      terminal('echo "$DEPLOY_TOKEN" > token.txt; echo "other=$other_secret"'),
      terminal('cat token.txt; rm token.txt'),
      finish('Done with the secrets.'),
    ]);
    const id = await start(task, { DEPLOY_TOKEN: deploy, other_secret: { value: other, description: 'another one' } });
    const ws = new SocketClient(`${server.wsUrl}/sockets/events/${id}?session_api_key=${KEY}&resend_mode=all`);
    await ws.open();
    expect((await waitStatus(id)).execution_status).toBe('finished');

    const [hashed, named, printed, unnamed, written, catted] = await terminalOutputs(id);
    expect(hashed.split(/\s/)[0]).toBe(sha256(deploy));
    expect(named.split('\n')[0]).toBe('DEPLOY_TOKEN=');
    expect(printed.split('\n')[0]).toBe('DEPLOY_TOKEN=<secret-hidden>');
    expect(unnamed.split('\n').slice(0, 2)).toEqual(['0', '[] []']);
    expect(written.split('\n')[0]).toBe('other=<secret-hidden>');
    expect(catted.split('\n')[0]).toBe('<secret-hidden>');

    await ws.waitFor((frames) => frames.some((f) => f.kind === 'ConversationStateUpdateEvent' && f.key === 'execution_status' && f.value === 'finished'), 10_000);
    await expectNowhere(id, [deploy, other], ws, task);
    // The agent is told the secrets' names (and descriptions) as the SDK's <CUSTOM_SECRETS> block, in the system message.
    const system = String(llm.requestsFor(task)[0].body.messages[0].content);
    expect(system).toContain('<CUSTOM_SECRETS>\n### Credential Access\n');
    expect(system).toContain('You have access to the following environment variables\n\n* **$DEPLOY_TOKEN**\n\n* **$other_secret** - another one\n\n</CUSTOM_SECRETS>');
    const prompt = (await events(id)).find((e) => e.kind === 'SystemPromptEvent')!;
    expect(prompt.dynamic_context).toMatchObject({ type: 'text' });
    expect(prompt.dynamic_context.text).toContain('* **$DEPLOY_TOKEN**');
    // The names stay visible (they are no secret); the values are not.
    const info = (await call('GET', `/api/conversations/${id}`)).body;
    expect(Object.keys(info.secret_registry?.secret_sources ?? {}).sort()).toEqual(['DEPLOY_TOKEN', 'other_secret']);
    ws.close();
  });

  it('uses secrets set mid-conversation from the next command on', async () => {
    const before = fresh('before');
    const after = fresh('after');
    const task = `rotate the secret (${storage})`;
    const rotation: { reply?: Promise<{ status: number }> } = {};
    llm.script(task, (_request, turn) => {
      if (turn === 0) return terminal('printf %s "$ROTATING" | sha256sum');
      if (turn === 1) {
        // Set while the agent thinks about its next command.
        rotation.reply = call('POST', `/api/conversations/${id}/secrets`, { secrets: { ROTATING: after, ADDED_LATER: 'added-later-value-123' } });
        return { delayMs: 1500, ...terminal('printf %s "$ROTATING" | sha256sum; echo "[$ROTATING] [$ADDED_LATER]"') };
      }
      if (turn === 2) return terminal(`echo "old value: ${before}"`);
      return finish('Rotated.');
    });
    const id = await start(task, { ROTATING: before });
    const ws = new SocketClient(`${server.wsUrl}/sockets/events/${id}?session_api_key=${KEY}&resend_mode=all`);
    await ws.open();
    expect((await waitStatus(id)).execution_status).toBe('finished');
    expect((await rotation.reply)?.status).toBe(200);

    const [first, second, third] = await terminalOutputs(id);
    expect(first.split(/\s/)[0]).toBe(sha256(before));
    const lines = second.split('\n');
    expect(lines[0].split(/\s/)[0]).toBe(sha256(after));
    expect(lines[1]).toBe('[<secret-hidden>] [<secret-hidden>]');
    // The value it had before the rotation is still masked for the rest of the run (the SDK keeps it too).
    expect(third.split('\n')[0]).toBe('old value: <secret-hidden>');
    await expectNowhere(id, [after, 'added-later-value-123'], ws, task);
    ws.close();
  });

  it("never gives one conversation's secrets to another's commands", async () => {
    const mine = fresh('a-only');
    const theirs = fresh('b-own');
    const taskA = `conversation A (${storage})`;
    const taskB = `conversation B (${storage})`;
    const taskC = `conversation C (${storage})`;
    const probe = 'printf %s "$SHARED_NAME" | sha256sum; echo "[${SHARED_NAME-unset}]"';
    llm.script(taskA, [terminal(probe), finish('A done.')]);
    llm.script(taskB, [terminal(probe), finish('B done.')]);
    llm.script(taskC, [terminal(probe), finish('C done.')]);
    const a = await start(taskA, { SHARED_NAME: mine });
    expect((await waitStatus(a)).execution_status).toBe('finished');
    // B has no secret of that name: its command sees none, even in the same tenant's sandbox.
    const b = await start(taskB, {});
    // C has its own value under the same name: it gets its own.
    const c = await start(taskC, { SHARED_NAME: theirs });
    expect((await waitStatus(b)).execution_status).toBe('finished');
    expect((await waitStatus(c)).execution_status).toBe('finished');

    expect((await terminalOutputs(a))[0].split(/\s/)[0]).toBe(sha256(mine));
    const [bOut] = await terminalOutputs(b);
    expect(bOut.split(/\s/)[0]).toBe(sha256(''));
    expect(bOut.split('\n')[1]).toBe('[unset]');
    const [cOut] = await terminalOutputs(c);
    expect(cOut.split(/\s/)[0]).toBe(sha256(theirs));
    expect(cOut.split('\n')[1]).toBe('[<secret-hidden>]');
    expect(JSON.stringify(await events(b)) + JSON.stringify(await events(c))).not.toContain(mine);
  });

  it('resolves a LookupSecret in the server (its headers sealed), and runs the command without a lookup that fails', async () => {
    const task = `looked-up secret (${storage})`;
    llm.script(task, [
      terminal('printf %s "$FROM_VAULT" | sha256sum; echo "[$FROM_VAULT] [${DENIED-unset}]"'),
      finish('Looked up.'),
    ]);
    const id = await start(task, {
      FROM_VAULT: { kind: 'LookupSecret', url: `${lookupUrl}/secret`, headers: { Authorization: `Bearer ${LOOKUP_BEARER}` } },
      DENIED: { kind: 'LookupSecret', url: `${lookupUrl}/secret`, headers: { Authorization: 'Bearer wrong' } },
    });
    const ws = new SocketClient(`${server.wsUrl}/sockets/events/${id}?session_api_key=${KEY}&resend_mode=all`);
    await ws.open();
    expect((await waitStatus(id)).execution_status).toBe('finished');
    const [out] = await terminalOutputs(id);
    const lines = out.split('\n');
    expect(lines[0].split(/\s/)[0]).toBe(sha256(LOOKED_UP));
    expect(lines[1]).toBe('[<secret-hidden>] [unset]');
    await expectNowhere(id, [LOOKED_UP, LOOKUP_BEARER], ws, task);
  });
});
