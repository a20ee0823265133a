import { randomUUID } from 'node:crypto';
import { DEFAULT_TENANT_ID } from '@berth/persistence';
import { compareSequences, compareShapes, compareValues, describeDifference, Difference, judge } from './compare';
import type { StubRequest, StubTurn } from '@berth/testing';
import { allEvents, RecordingSocket, send, SocketTranscript, startTargets, Target, Targets, waitStatus } from './targets';

/**
 * The same run on both servers, with the same scripted LLM — create with an initial message (a
 * terminal command, then finish), a second turn — compared by the order of event kinds, the shapes
 * of the events, and what `/sockets/events/{id}` sends: auth by header, by query key and by first
 * frame, refused auth, an unknown conversation, replay (resend_mode all / since), live frames.
 */

jest.setTimeout(240_000);

const FIRST = 'run: echo conformance-$((40+2))';
const ADMIN_KEY = 'conformance-admin-key';
const SECOND = 'say hello';
const label = (e: Record<string, any>) => (e.kind === 'ConversationStateUpdateEvent' ? `${e.kind}:${e.key}` : String(e.kind));
/**
 * The order of event kinds, without the `stats` state updates: the reference also calls its LLM for
 * a title, concurrently with the run, and that call's stats update lands wherever it finishes.
 * Whether stats updates come at all is compared separately.
 */
const STATS = 'ConversationStateUpdateEvent:stats';
const orderOf = (events: Record<string, any>[]) => events.map(label).filter((l) => l !== STATS);
const hasStats = (events: Record<string, any>[]) => events.some((e) => label(e) === STATS);

interface Run {
  t: Target;
  id: string;
  create: { status: number; json: unknown };
}

function agentOf(t: Target) {
  return {
    kind: 'Agent',
    llm: { model: 'openai/gpt-4o-mini', api_key: 'sk-conformance', base_url: t.llmUrl, num_retries: 0 },
    tools: [{ name: 'terminal' }, { name: 'file_editor' }, { name: 'task_tracker' }],
  };
}

async function startRun(t: Target): Promise<Run> {
  const id = randomUUID();
  const res = await send(t, {
    method: 'POST',
    path: '/api/conversations',
    body: {
      conversation_id: id,
      agent: agentOf(t),
      workspace: { kind: 'LocalWorkspace', working_dir: t.workingDir(`run-${id.slice(0, 8)}`) },
      initial_message: { role: 'user', content: [{ type: 'text', text: FIRST }] },
    },
  });
  if (res.status !== 201) throw new Error(`${t.name}: create answered ${res.status}: ${res.text}`);
  return { t, id, create: { status: res.status, json: res.json } };
}

const socketUrl = (t: Target, id: string, query = '') => `${t.wsUrl}/sockets/events/${id}${query ? `?${query}` : ''}`;

/** A socket's transcript, reduced to what is compared: handshake, frame kinds, close. */
const summary = (s: SocketTranscript) => ({ handshake: s.handshake, frames: orderOf(s.frames), closeCode: s.closeCode, closeReason: s.closeReason });

function compareTranscripts(scenario: string, ref: SocketTranscript, berth: SocketTranscript): Difference[] {
  const a = summary(ref);
  const b = summary(berth);
  return [
    ...compareValues(scenario, 'frames', 'handshake', a.handshake, b.handshake),
    ...compareSequences(scenario, 'frames', 'kinds', a.frames, b.frames),
    ...compareValues(scenario, 'frames', 'close', a.closeCode === null ? null : `${a.closeCode} ${a.closeReason}`, b.closeCode === null ? null : `${b.closeCode} ${b.closeReason}`),
    ...compareShapes(scenario, ref.frames, berth.frames),
  ];
}

/** Opens a socket, optionally sends frames, waits for quiet, closes it. */
async function transcript(url: string, options: { headers?: Record<string, string>; frames?: unknown[]; waitClose?: boolean } = {}): Promise<SocketTranscript> {
  const socket = new RecordingSocket(url, options.headers);
  await socket.open();
  for (const frame of options.frames ?? []) socket.send(frame);
  if (options.waitClose) return socket.closed(15_000);
  await socket.settle(800);
  return socket.close();
}

describe('conformance: a run and its event socket', () => {
  let targets: Targets;
  const found: Difference[] = [];
  const runs: Record<'reference' | 'berth', Run> = {} as never;
  const both = <T>(fn: (t: Target) => Promise<T>) => Promise.all([fn(targets.reference), fn(targets.berth)]);

  beforeAll(async () => {
    // One run at a time on each, so the last scenario can fill the run capacity.
    targets = await startTargets({ referenceEnv: { OH_MAX_CONCURRENT_RUNS: '1' }, berthEnv: { OH_MAX_CONCURRENT_RUNS: '1', BERTH_ADMIN_API_KEYS_0: ADMIN_KEY } });
  }, 180_000);

  afterAll(async () => {
    await targets?.stop();
  });

  it('runs create + initial message (a terminal command, then finish) in the same order of event kinds', async () => {
    const [ref, berth] = await both(startRun);
    runs.reference = ref;
    runs.berth = berth;
    found.push(...compareValues('create with initial_message', 'status', 'status', ref.create.status, berth.create.status));
    found.push(...compareShapes('create with initial_message', ref.create.json, berth.create.json));
    const [refInfo, berthInfo] = await Promise.all([waitStatus(ref.t, ref.id, ['finished', 'error', 'stuck']), waitStatus(berth.t, berth.id, ['finished', 'error', 'stuck'])]);
    expect([refInfo.execution_status, berthInfo.execution_status]).toEqual(['finished', 'finished']);
    // The reference writes its last state updates just after the status flips.
    await new Promise((r) => setTimeout(r, 500));
    const [refEvents, berthEvents] = await Promise.all([allEvents(ref.t, ref.id), allEvents(berth.t, berth.id)]);
    found.push(...compareSequences('first run', 'events', 'kinds', orderOf(refEvents), orderOf(berthEvents)));
    found.push(...compareValues('first run', 'events', 'stats updates', hasStats(refEvents), hasStats(berthEvents)));
    found.push(...compareShapes('first run: events/search items', refEvents, berthEvents));
    found.push(...compareShapes('first run: conversation after the run', refInfo, berthInfo));
    // The terminal command really ran on both.
    for (const events of [refEvents, berthEvents]) {
      const observation = events.find((e) => e.kind === 'ObservationEvent' && e.tool_name === 'terminal');
      expect(JSON.stringify(observation?.observation)).toContain('conformance-42');
    }
  });

  it('sends the same socket frames: auth by header, query key and first frame; replay; refusals; close codes', async () => {
    const key = targets.reference.key;
    const cases: [string, (t: Target, id: string) => Promise<SocketTranscript>][] = [
      ['header key, resend_mode=all', (t, id) => transcript(socketUrl(t, id, 'resend_mode=all'), { headers: { 'X-Session-API-Key': key } })],
      ['query key, no resend', (t, id) => transcript(socketUrl(t, id, `session_api_key=${key}`))],
      ['query key, resend_all=true (deprecated)', (t, id) => transcript(socketUrl(t, id, `session_api_key=${key}&resend_all=true`))],
      ['first-frame auth, resend_mode=all', (t, id) => transcript(socketUrl(t, id, 'resend_mode=all'), { frames: [{ type: 'auth', session_api_key: key }] })],
      ['wrong query key', (t, id) => transcript(socketUrl(t, id, 'session_api_key=wrong'), { waitClose: true })],
      ['wrong header key', (t, id) => transcript(socketUrl(t, id), { headers: { 'X-Session-API-Key': 'wrong' }, waitClose: true })],
      ['wrong first-frame key', (t, id) => transcript(socketUrl(t, id), { frames: [{ type: 'auth', session_api_key: 'wrong' }], waitClose: true })],
      ['first frame not auth', (t, id) => transcript(socketUrl(t, id), { frames: [{ role: 'user', content: [] }], waitClose: true })],
      ['unknown conversation', (t) => transcript(socketUrl(t, randomUUID(), `session_api_key=${key}`), { waitClose: true })],
      [
        'resend_mode=since after the first ActionEvent',
        async (t, id) => {
          const events = await allEvents(t, id);
          const action = events.find((e) => e.kind === 'ActionEvent')!;
          return transcript(socketUrl(t, id, `session_api_key=${key}&resend_mode=since&after_timestamp=${encodeURIComponent(action.timestamp)}`));
        },
      ],
      ['a message frame that is not a user message', (t, id) => transcript(socketUrl(t, id, `session_api_key=${key}`), { frames: [{ role: 'system', content: [{ type: 'text', text: 'x' }] }] })],
      ['resend_mode=since without after_timestamp', (t, id) => transcript(socketUrl(t, id, `session_api_key=${key}&resend_mode=since`))],
    ];
    for (const [scenario, open] of cases) {
      const [a, b] = await both((t) => open(t, runs[t.name].id));
      found.push(...compareTranscripts(`socket: ${scenario}`, a, b));
    }
  });

  it('streams a second turn live in the same order, and stores it in the same order', async () => {
    const sockets = await both(async (t) => {
      const socket = new RecordingSocket(socketUrl(t, runs[t.name].id), { 'X-Session-API-Key': t.key });
      await socket.open();
      await socket.waitFor((f) => f.length >= 1);
      return socket;
    });
    const posted = await both((t) =>
      send(t, { method: 'POST', path: `/api/conversations/${runs[t.name].id}/events`, body: { role: 'user', content: [{ type: 'text', text: SECOND }], run: true } }),
    );
    found.push(...compareValues('second turn: POST events run:true', 'status', 'status', posted[0].status, posted[1].status));
    const finished = (f: Record<string, any>[]) => f.slice(1).some((e) => e.key === 'full_state' && e.value?.execution_status === 'finished');
    const ended = await Promise.all(sockets.map((s) => s.waitFor(finished, 30_000)));
    expect(ended).toEqual([true, true]);
    const [a, b] = await Promise.all(sockets.map(async (s) => (await s.settle(500), s.close())));
    found.push(...compareTranscripts('socket: live second turn', a, b));
    const [refEvents, berthEvents] = await both((t) => allEvents(t, runs[t.name].id));
    found.push(...compareSequences('both turns', 'events', 'kinds', orderOf(refEvents), orderOf(berthEvents)));
    found.push(...compareShapes('both turns: events/search items', refEvents, berthEvents));
  });

  it('runs with the LLM security analyzer, ConfirmRisky and agent context alike: tools, risks, confirmation, skills', async () => {
    const text = (t: Target) => `guard: deploy it carefully (${t.name})`;
    /** Stateless, so both servers follow it alike: a LOW risk command, a HIGH risk one (confirmation), then finish. */
    const script = (request: StubRequest): StubTurn => {
      if (!request.body.tools?.length) return { text: 'Guard title' };
      const answered = request.body.messages.filter((m) => m.role === 'tool').length;
      if (answered === 0) return { toolCalls: [{ name: 'terminal', arguments: { command: 'echo low', summary: 'print low', security_risk: 'LOW' } }] };
      if (answered === 1) return { toolCalls: [{ name: 'terminal', arguments: { command: 'echo high', summary: 'print high', security_risk: 'HIGH' } }] };
      return { toolCalls: [{ name: 'finish', arguments: { message: 'Deployed.' } }] };
    };
    const ids = await both(async (t) => {
      targets.llm.script(text(t), script);
      const workingDir = t.workingDir(`guard-${randomUUID().slice(0, 8)}`);
      // The working dir's AGENTS.md, written through each server's workspace API.
      const upload = await send(t, { method: 'POST', path: `/api/file/upload?path=${encodeURIComponent(`${workingDir}/AGENTS.md`)}`, file: { name: 'AGENTS.md', content: 'Run the linter before each commit.\n' } });
      expect(upload.status).toBe(200);
      const res = await send(t, {
        method: 'POST',
        path: '/api/conversations',
        body: {
          agent: {
            ...agentOf(t),
            agent_context: {
              load_project_skills: true,
              skills: [{ name: 'deploy', content: 'Deploy with make ship.', trigger: { type: 'keyword', keywords: ['deploy'] } }],
            },
          },
          workspace: { kind: 'LocalWorkspace', working_dir: workingDir },
          security_analyzer: { kind: 'LLMSecurityAnalyzer' },
          confirmation_policy: { kind: 'ConfirmRisky', threshold: 'HIGH', confirm_unknown: true },
          initial_message: { role: 'user', content: [{ type: 'text', text: text(t) }] },
        },
      });
      expect(res.status).toBe(201);
      return (res.json as { id: string }).id;
    });
    const [refWaiting, berthWaiting] = await Promise.all([waitStatus(targets.reference, ids[0], ['waiting_for_confirmation', 'finished', 'error']), waitStatus(targets.berth, ids[1], ['waiting_for_confirmation', 'finished', 'error'])]);
    found.push(...compareValues('security analyzer: HIGH risk under ConfirmRisky', 'status', 'execution_status', refWaiting.execution_status, berthWaiting.execution_status));
    found.push(...compareShapes('security analyzer: waiting conversation', refWaiting, berthWaiting));
    await both((t) => send(t, { method: 'POST', path: `/api/conversations/${ids[t.name === 'reference' ? 0 : 1]}/events/respond_to_confirmation`, body: { accept: true } }));
    const [refInfo, berthInfo] = await Promise.all([waitStatus(targets.reference, ids[0], ['finished', 'error']), waitStatus(targets.berth, ids[1], ['finished', 'error'])]);
    await new Promise((r) => setTimeout(r, 500));
    found.push(...compareValues('security analyzer: after confirmation', 'status', 'execution_status', refInfo.execution_status, berthInfo.execution_status));
    found.push(...compareValues('skills: activated_knowledge_skills', 'events', 'activated_knowledge_skills', refInfo.activated_knowledge_skills, berthInfo.activated_knowledge_skills));
    const [refEvents, berthEvents] = await both((t) => allEvents(t, ids[t.name === 'reference' ? 0 : 1]));
    found.push(...compareSequences('security analyzer and skills', 'events', 'kinds', orderOf(refEvents), orderOf(berthEvents)));
    // SecurityAnalysisEvent.risks is keyed by the ActionEvents' ids, which differ between servers by nature: compared by position.
    const byPosition = (events: Record<string, any>[]) =>
      events.map((e) => (e.kind === 'SecurityAnalysisEvent' ? { ...e, risks: Object.fromEntries(Object.values(e.risks).map((risk, i) => [`action ${i}`, risk])) } : e));
    found.push(...compareShapes('security analyzer and skills: events/search items', byPosition(refEvents), byPosition(berthEvents)));
    const analyses = (events: Record<string, any>[]) => byPosition(events.filter((e) => e.kind === 'SecurityAnalysisEvent')).map((e) => [e.analyzer, e.policy, e.risks]);
    found.push(...compareValues('security analyzer: SecurityAnalysisEvent', 'events', 'analyzer, policy, risks', analyses(refEvents), analyses(berthEvents)));
    const risks = (events: Record<string, any>[]) => events.filter((e) => e.kind === 'ActionEvent').map((e) => e.security_risk);
    found.push(...compareValues('security analyzer: ActionEvent.security_risk', 'events', 'security_risk', risks(refEvents), risks(berthEvents)));
    const activated = (events: Record<string, any>[]) => events.find((e) => e.kind === 'MessageEvent' && e.source === 'user')?.activated_skills;
    found.push(...compareValues('skills: MessageEvent.activated_skills', 'events', 'activated_skills', activated(refEvents), activated(berthEvents)));

    // What the LLM was offered and told, first request of each.
    const [refRequest, berthRequest] = [targets.llm.requestsFor(text(targets.reference)), targets.llm.requestsFor(text(targets.berth))].map((r) => r.find((q) => q.body.tools?.length)!);
    const flat = (content: unknown) => (typeof content === 'string' ? content : (content as { text?: string }[]).map((c) => c.text ?? '').join('\n'));
    const terminalOf = (q: StubRequest) => q.body.tools!.find((tool) => tool.function.name === 'terminal')!.function.parameters as { properties: Record<string, unknown> };
    found.push(...compareValues('security analyzer: LLM request', 'events', 'tools.terminal.security_risk', terminalOf(refRequest).properties.security_risk, terminalOf(berthRequest).properties.security_risk));
    found.push(...compareValues('security analyzer: LLM request', 'events', 'tools.terminal.properties[0..1]', Object.keys(terminalOf(refRequest).properties).slice(0, 2), Object.keys(terminalOf(berthRequest).properties).slice(0, 2)));
    const repoContext = (q: StubRequest) => /<REPO_CONTEXT>[\s\S]*<\/REPO_CONTEXT>/.exec(flat(q.body.messages[0].content).replace(/\/[^\s\]]*\/AGENTS\.md/g, 'AGENTS.md'))?.[0] ?? null;
    found.push(...compareValues('skills: LLM request', 'events', 'system <REPO_CONTEXT>', repoContext(refRequest), repoContext(berthRequest)));
    const knowledge = (q: StubRequest) => flat(q.body.messages.find((m) => m.role === 'user')!.content).replace(/\((reference|berth)\)/, '');
    found.push(...compareValues('skills: LLM request', 'events', 'first user message with <EXTRA_INFO>', knowledge(refRequest), knowledge(berthRequest)));
  });

  it('condenses with LLMSummarizingCondenser as the reference does: POST …/condense when idle, then in a run; refusals', async () => {
    targets.llm.summaryScript(() => ({ text: 'USER_CONTEXT: run a command. COMPLETED: it ran.' }));
    const condensing = (t: Target) => {
      const agent = agentOf(t);
      return { ...agent, condenser: { kind: 'LLMSummarizingCondenser', llm: { ...agent.llm, usage_id: 'condenser' }, max_size: 6, keep_first: 1 } };
    };
    const created = await both((t) =>
      send(t, {
        method: 'POST',
        path: '/api/conversations',
        body: {
          agent: condensing(t),
          workspace: { kind: 'LocalWorkspace', working_dir: t.workingDir(`condense-${randomUUID().slice(0, 8)}`) },
          initial_message: { role: 'user', content: [{ type: 'text', text: FIRST }] },
        },
      }),
    );
    const ids = created.map((r) => (r.json as { id: string }).id);
    const idOf = (t: Target) => ids[t.name === 'reference' ? 0 : 1];
    await both((t) => waitStatus(t, idOf(t), ['finished', 'error', 'stuck']));
    await new Promise((r) => setTimeout(r, 500));
    const before = await both((t) => allEvents(t, idOf(t)));

    const condensed = await both((t) => send(t, { method: 'POST', path: `/api/conversations/${idOf(t)}/condense` }));
    found.push(...compareValues('condense an idle conversation', 'status', 'status', condensed[0].status, condensed[1].status));
    found.push(...compareValues('condense an idle conversation', 'shape', '$', condensed[0].json, condensed[1].json));
    await new Promise((r) => setTimeout(r, 500));
    const afterCondense = await both((t) => allEvents(t, idOf(t)));
    const added = afterCondense.map((events, i) => events.slice(before[i].length));
    found.push(...compareSequences('condense an idle conversation', 'events', 'kinds', orderOf(added[0]), orderOf(added[1])));
    found.push(...compareShapes('condense an idle conversation: events/search items', added[0], added[1]));

    const posted = await both((t) => send(t, { method: 'POST', path: `/api/conversations/${idOf(t)}/events`, body: { role: 'user', content: [{ type: 'text', text: SECOND }], run: true } }));
    found.push(...compareValues('condensing run: POST events run:true', 'status', 'status', posted[0].status, posted[1].status));
    await new Promise((r) => setTimeout(r, 300));
    await both((t) => waitStatus(t, idOf(t), ['finished', 'error', 'stuck']));
    await new Promise((r) => setTimeout(r, 500));
    const all = await both((t) => allEvents(t, idOf(t)));
    found.push(...compareSequences('condensing run', 'events', 'kinds', orderOf(all[0]), orderOf(all[1])));
    found.push(...compareShapes('condensing run: events/search items', all[0], all[1]));

    const refusals: [string, (t: Target) => string][] = [
      ['condense without a condenser', (t) => runs[t.name].id],
      ['condense an unknown conversation', () => randomUUID()],
    ];
    for (const [scenario, id] of refusals) {
      const [a, b] = await both((t) => send(t, { method: 'POST', path: `/api/conversations/${id(t)}/condense` }));
      found.push(...compareValues(scenario, 'status', 'status', a.status, b.status));
      found.push(...compareShapes(scenario, a.json, b.json));
      found.push(...compareValues(scenario, 'shape', '$.detail', (a.json as { detail?: unknown })?.detail ?? null, (b.json as { detail?: unknown })?.detail ?? null));
    }
  });

  it('answers a create with a first message when the run capacity is full (status, Retry-After)', async () => {
    const create = (t: Target, text: string) =>
      send(t, {
        method: 'POST',
        path: '/api/conversations',
        body: {
          agent: agentOf(t),
          workspace: { kind: 'LocalWorkspace', working_dir: t.workingDir(`capacity-${randomUUID().slice(0, 8)}`) },
          initial_message: { role: 'user', content: [{ type: 'text', text }] },
        },
      });
    // Berth's run capacity is the tenant's running-conversations quota (the reference's, OH_MAX_CONCURRENT_RUNS): one for the default tenant here.
    const admin = (method: string, path: string, body?: unknown) => send(targets.berth, { method, path, body, auth: false, headers: { 'X-Session-API-Key': ADMIN_KEY } });
    expect((await admin('PATCH', `/api/admin/tenants/${DEFAULT_TENANT_ID}`, { quotas: { max_running_conversations: 1 } })).status).toBe(200);
    const slow = await both((t) => create(t, 'slow: take your time'));
    const slowIds = slow.map((r) => (r.json as { id: string }).id);
    await Promise.all([waitStatus(targets.reference, slowIds[0], ['running']), waitStatus(targets.berth, slowIds[1], ['running'])]);
    const [a, b] = await both((t) => create(t, 'say hi while busy'));
    found.push(...compareValues('create while the run capacity is full', 'status', 'status', a.status, b.status));
    found.push(...compareValues('create while the run capacity is full', 'header', 'retry-after', a.headers['retry-after'] ?? null, b.headers['retry-after'] ?? null));
    if (a.status === b.status && a.json !== undefined && b.json !== undefined) found.push(...compareShapes('create while the run capacity is full', a.json, b.json));
    await both((t) => send(t, { method: 'POST', path: `/api/conversations/${slowIds[t.name === 'reference' ? 0 : 1]}/interrupt` }));
    await Promise.all([waitStatus(targets.reference, slowIds[0], ['paused', 'idle', 'error']), waitStatus(targets.berth, slowIds[1], ['paused', 'idle', 'error'])]);
  });

  it('finds no difference that differences.json does not list, and every one it lists', () => {
    const verdict = judge('runs', found);
    if (process.env.CONFORMANCE_VERBOSE === '1') console.log(found.map(describeDifference).join('\n'));
    console.log(`runs: ${found.length} differences found, ${verdict.allowed} allowed by differences.json`);
    expect({ unexpected: verdict.unexpected, stale: verdict.stale }).toEqual({ unexpected: [], stale: [] });
  });
});
