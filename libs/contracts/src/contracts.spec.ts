import { z } from 'zod';
import { SendMessageRequestSchema, StartConversationRequestSchema } from './conversation';
import { bareKind, finalResponseText, messageEvent, messageSearchText, OHEvent, omitNulls } from './events';
import { parseUuid, uuidHex } from './ids';
import { naiveTimestamp, normalizeTimestampFilter, utcTimestamp } from './time';
import { REDACTED, redactSecrets, toValidationIssues } from './validation';

const NAIVE_RE = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}$/;
const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** Local wall-clock time of an instant, as Python's naive `isoformat()` with microseconds. */
function localNaive(epochMs: number, micros = 0): string {
  const d = new Date(epochMs);
  const p = (n: number, w = 2) => String(n).padStart(w, '0');
  return (
    `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}` +
    `.${p(d.getMilliseconds() * 1000 + micros, 6)}`
  );
}

describe('ids', () => {
  const dashed = '3f2b8c4e-1a2b-4c3d-8e9f-0a1b2c3d4e5f';

  it('parseUuid accepts dashed, 32-hex and upper-case forms and returns the dashed lower-case form', () => {
    expect(parseUuid(dashed)).toBe(dashed);
    expect(parseUuid('3f2b8c4e1a2b4c3d8e9f0a1b2c3d4e5f')).toBe(dashed);
    expect(parseUuid('3F2B8C4E-1A2B-4C3D-8E9F-0A1B2C3D4E5F')).toBe(dashed);
    expect(parseUuid('3F2B8C4E1A2B4C3D8E9F0A1B2C3D4E5F')).toBe(dashed);
    expect(parseUuid(`  ${dashed}\n`)).toBe(dashed);
  });

  it.each([
    [''],
    ['not-a-uuid'],
    ['3f2b8c4e-1a2b-4c3d-8e9f-0a1b2c3d4e5'],
    ['3f2b8c4e-1a2b-4c3d-8e9f-0a1b2c3d4e5f0'],
    ['3f2b8c4g-1a2b-4c3d-8e9f-0a1b2c3d4e5f'],
    ['{3f2b8c4e-1a2b-4c3d-8e9f-0a1b2c3d4e5f}'],
    ['3f2b8c4e-1a2b-4c3d-8e9f-0a1b2c3d4e5f/../x'],
  ])('parseUuid(%j) is null', (value) => {
    expect(parseUuid(value)).toBeNull();
  });

  it('uuidHex gives the 32-hex lower-case form that parseUuid reads back', () => {
    expect(uuidHex(dashed)).toBe('3f2b8c4e1a2b4c3d8e9f0a1b2c3d4e5f');
    expect(uuidHex(dashed.toUpperCase())).toBe('3f2b8c4e1a2b4c3d8e9f0a1b2c3d4e5f');
    expect(parseUuid(uuidHex(dashed))).toBe(dashed);
  });
});

describe('time', () => {
  it('naiveTimestamp formats local time with microseconds, like Python isoformat()', () => {
    expect(naiveTimestamp(new Date(2024, 0, 2, 3, 4, 5, 678))).toBe('2024-01-02T03:04:05.678000');
    expect(naiveTimestamp(new Date(2024, 11, 31, 23, 59, 59, 0))).toBe('2024-12-31T23:59:59.000000');
    expect(naiveTimestamp()).toMatch(NAIVE_RE);
  });

  it('naiveTimestamp strictly increases over 1000 calls', () => {
    let previous = naiveTimestamp();
    for (let i = 0; i < 1000; i++) {
      const next = naiveTimestamp();
      expect(next).toMatch(NAIVE_RE);
      expect(next > previous).toBe(true);
      previous = next;
    }
  });

  it('utcTimestamp gives tz-aware UTC with microseconds', () => {
    expect(utcTimestamp(new Date(Date.UTC(2024, 0, 2, 3, 4, 5, 6)))).toBe('2024-01-02T03:04:05.006000Z');
    expect(utcTimestamp(new Date(Date.UTC(2026, 10, 25, 0, 0, 0, 0)))).toBe('2026-11-25T00:00:00.000000Z');
  });

  describe('normalizeTimestampFilter', () => {
    it('keeps naive values as they are (a space separator becomes T)', () => {
      expect(normalizeTimestampFilter('2024-03-01T10:00:00.123456')).toBe('2024-03-01T10:00:00.123456');
      expect(normalizeTimestampFilter('2024-03-01T10:00:00')).toBe('2024-03-01T10:00:00');
      expect(normalizeTimestampFilter('2024-03-01 10:00:00')).toBe('2024-03-01T10:00:00');
      expect(normalizeTimestampFilter('2024-03-01')).toBe('2024-03-01');
      expect(normalizeTimestampFilter(' 2024-03-01T10:00:00 ')).toBe('2024-03-01T10:00:00');
    });

    it('converts Z and offsets to local naive time', () => {
      const instant = Date.UTC(2024, 2, 1, 8, 0, 0);
      expect(normalizeTimestampFilter('2024-03-01T08:00:00Z')).toBe(localNaive(instant));
      expect(normalizeTimestampFilter('2024-03-01T10:00:00+02:00')).toBe(localNaive(instant));
      expect(normalizeTimestampFilter('2024-03-01T03:30:00-04:30')).toBe(localNaive(instant));
      expect(normalizeTimestampFilter('2024-03-01T08:00:00z')).toBe(localNaive(instant));
    });

    it('keeps microseconds of tz-aware values', () => {
      const instant = Date.UTC(2024, 2, 1, 8, 0, 0, 123);
      expect(normalizeTimestampFilter('2024-03-01T08:00:00.123456Z')).toBe(localNaive(instant, 456));
      expect(normalizeTimestampFilter('2024-03-01T10:00:00.1234+02:00')).toBe(localNaive(instant, 400));
      expect(normalizeTimestampFilter('2024-03-01T08:00:00.5Z')).toBe(localNaive(Date.UTC(2024, 2, 1, 8, 0, 0, 500)));
    });

    it('returns strings that compare correctly with stored naive timestamps', () => {
      const stored = naiveTimestamp(new Date(Date.UTC(2024, 2, 1, 8, 0, 0, 1)));
      const bound = normalizeTimestampFilter('2024-03-01T08:00:00Z') as string;
      expect(bound < stored).toBe(true);
    });

    it.each([[''], ['yesterday'], ['2024-13-01T00:00:00'], ['2024-03-01T25:00:00Z'], ['2024/03/01'], ['1709280000'], ['2024-03-01T10:00:00+02']])(
      'returns null for %j',
      (value) => {
        expect(normalizeTimestampFilter(value)).toBeNull();
      },
    );
  });
});

describe('events', () => {
  it('omitNulls drops null and undefined members at every depth, inside arrays too', () => {
    const input = {
      a: 1,
      b: null,
      c: undefined,
      d: { e: null, f: [{ g: null, h: 'x' }, null, 2, [{ i: null }]] },
      z: 0,
      y: '',
      x: false,
    };
    expect(omitNulls(input)).toEqual({ a: 1, d: { f: [{ h: 'x' }, null, 2, [{}]] }, z: 0, y: '', x: false });
    expect(Object.keys(omitNulls(input))).toEqual(['a', 'd', 'z', 'y', 'x']);
    expect(input.b).toBeNull();
  });

  it('omitNulls leaves non-plain objects untouched', () => {
    class Holder {
      value: string | null = null;
    }
    const date = new Date(0);
    const holder = new Holder();
    const out = omitNulls({ date, holder, list: [holder] });
    expect(out.date).toBe(date);
    expect(out.holder).toBe(holder);
    expect(out.holder.value).toBeNull();
    expect(out.list[0]).toBe(holder);
    expect(omitNulls(null)).toBeNull();
    expect(omitNulls('text')).toBe('text');
  });

  it('bareKind strips the Python module path', () => {
    expect(bareKind('openhands.sdk.event.llm_convertible.message.MessageEvent')).toBe('MessageEvent');
    expect(bareKind('MessageEvent')).toBe('MessageEvent');
    expect(bareKind('')).toBe('');
  });

  it('messageEvent has exactly the OpenHands MessageEvent shape', () => {
    const event = messageEvent('user', 'user', [{ type: 'text', text: 'Hello' }]);
    expect(event).toEqual({
      id: expect.stringMatching(UUID_RE),
      timestamp: expect.stringMatching(NAIVE_RE),
      source: 'user',
      llm_message: { role: 'user', content: [{ cache_prompt: false, type: 'text', text: 'Hello' }], thinking_blocks: [] },
      activated_skills: [],
      extended_content: [],
      kind: 'MessageEvent',
    });
    expect(Object.keys(event)).toEqual(['id', 'timestamp', 'source', 'llm_message', 'activated_skills', 'extended_content', 'kind']);
    expect(Object.keys(event.llm_message as object)).toEqual(['role', 'content', 'thinking_blocks']);
    expect('sender' in event).toBe(false);
    expect('sender' in messageEvent('user', 'user', [], null)).toBe(false);
  });

  it('messageEvent carries sender when given and normalises image and cache_prompt content', () => {
    const event = messageEvent(
      'assistant',
      'agent',
      [
        { type: 'text', text: 'Look', cache_prompt: true },
        { type: 'image', image_urls: ['https://img.example/x.png'] },
      ],
      'parent-agent',
    );
    expect(event.sender).toBe('parent-agent');
    expect(Object.keys(event)).toEqual([
      'id',
      'timestamp',
      'source',
      'llm_message',
      'activated_skills',
      'extended_content',
      'sender',
      'kind',
    ]);
    expect(event.llm_message).toEqual({
      role: 'assistant',
      content: [
        { cache_prompt: true, type: 'text', text: 'Look' },
        { cache_prompt: false, type: 'image', image_urls: ['https://img.example/x.png'] },
      ],
      thinking_blocks: [],
    });
  });

  it('messageEvent ids are unique and timestamps increase', () => {
    const a = messageEvent('user', 'user', []);
    const b = messageEvent('user', 'user', []);
    expect(a.id).not.toBe(b.id);
    expect(b.timestamp > a.timestamp).toBe(true);
  });

  it('messageSearchText joins message text, extended content and reasoning, lower-cased', () => {
    const event: OHEvent = {
      ...messageEvent('assistant', 'agent', [
        { type: 'text', text: 'Hello World' },
        { type: 'image', image_urls: ['https://IMG'] },
        { type: 'text', text: 'Second PART' },
      ]),
      extended_content: [{ type: 'text', text: 'Extended BIT' }],
    };
    (event.llm_message as Record<string, unknown>).reasoning_content = 'Because REASONS';
    expect(messageSearchText(event)).toBe('hello world\nsecond part\nextended bit\nbecause reasons');
    expect(messageSearchText({ ...event, kind: 'openhands.sdk.event.MessageEvent' })).toBe(
      'hello world\nsecond part\nextended bit\nbecause reasons',
    );
    expect(messageSearchText({ id: 'x', timestamp: 't', source: 'agent', kind: 'ActionEvent', thought: [{ type: 'text', text: 'x' }] })).toBeNull();
    expect(messageSearchText({ id: 'x', timestamp: 't', source: 'user', kind: 'MessageEvent' })).toBe('');
  });

  describe('finalResponseText', () => {
    const agentMessage = (text: string): OHEvent => messageEvent('assistant', 'agent', [{ type: 'text', text }]);
    const userMessage = (text: string): OHEvent => messageEvent('user', 'user', [{ type: 'text', text }]);
    const finish = (message: unknown): OHEvent => ({
      id: 'f',
      timestamp: 't',
      source: 'agent',
      tool_name: 'finish',
      action: { message, kind: 'FinishAction' },
      kind: 'ActionEvent',
    });
    const otherAction: OHEvent = { id: 'a', timestamp: 't', source: 'agent', tool_name: 'terminal', action: { message: 'nope' }, kind: 'ActionEvent' };

    it('prefers the finish message when it is the newest answer', () => {
      expect(finalResponseText([finish('All done'), agentMessage('earlier'), userMessage('question')])).toBe('All done');
      expect(finalResponseText([userMessage('later question'), otherAction, finish('Done again'), agentMessage('old')])).toBe('Done again');
    });

    it('uses the newest agent message otherwise, joining its text parts', () => {
      expect(finalResponseText([userMessage('thanks'), agentMessage('newest'), finish('older finish')])).toBe('newest');
      const multi: OHEvent = messageEvent('assistant', 'agent', [
        { type: 'text', text: 'part one, ' },
        { type: 'image', image_urls: ['u'] },
        { type: 'text', text: 'part two' },
      ]);
      expect(finalResponseText([otherAction, multi])).toBe('part one, part two');
    });

    it('skips finish actions without a string message', () => {
      expect(finalResponseText([finish(null), agentMessage('fallback')])).toBe('fallback');
    });

    it('is empty when there is no answer', () => {
      expect(finalResponseText([])).toBe('');
      expect(finalResponseText([userMessage('only the user spoke'), otherAction])).toBe('');
    });
  });
});

describe('validation', () => {
  describe('toValidationIssues', () => {
    const schema = z.strictObject({
      name: z.string(),
      count: z.number(),
      flags: z.array(z.boolean()),
      nested: z.strictObject({ on: z.boolean() }),
      even: z.number().refine((n) => n % 2 === 0, 'must be even'),
    });

    it('maps zod issues to pydantic-style entries', () => {
      const input = { count: 'three', flags: [true, 'no'], nested: { on: true, surprise: 1 }, even: 3 };
      const result = schema.safeParse(input);
      expect(result.success).toBe(false);
      const issues = toValidationIssues(result.error!, 'body', input);
      expect(issues).toEqual(
        expect.arrayContaining([
          { type: 'missing', loc: ['body', 'name'], msg: 'Field required', input },
          expect.objectContaining({ type: 'number_type', loc: ['body', 'count'], input: 'three' }),
          expect.objectContaining({ type: 'boolean_type', loc: ['body', 'flags', 1], input: 'no' }),
          expect.objectContaining({ type: 'extra_forbidden', loc: ['body', 'nested'], msg: expect.stringContaining('surprise') }),
          { type: 'value_error', loc: ['body', 'even'], msg: 'must be even', input: 3 },
        ]),
      );
      expect(issues).toHaveLength(5);
      // a missing query parameter shows input null, as pydantic does
      expect(toValidationIssues(z.object({ ids: z.string() }).safeParse({}).error!, 'query', {})).toEqual([{ type: 'missing', loc: ['query', 'ids'], msg: 'Field required', input: null }]);
    });

    it('shows a missing field the object it is missing from, with its secrets redacted', () => {
      const input = { llm: { api_key: 'sk-never-echoed' } };
      const issues = toValidationIssues(z.object({ llm: z.object({ model: z.string(), api_key: z.string() }) }).safeParse(input).error!, 'body', input);
      expect(issues).toEqual([{ type: 'missing', loc: ['body', 'llm', 'model'], msg: 'Field required', input: { api_key: expect.any(String) } }]);
      expect(JSON.stringify(issues)).not.toContain('sk-never-echoed');
    });

    it('prefixes loc with the location', () => {
      const result = z.strictObject({ limit: z.number() }).safeParse({ limit: 'x' });
      expect(toValidationIssues(result.error!, 'query', { limit: 'x' })[0].loc).toEqual(['query', 'limit']);
    });

    it('redacts secrets in echoed input', () => {
      const input = { name: 5, headers: { Authorization: 'Bearer leak' } };
      const result = z.strictObject({ name: z.string(), headers: z.record(z.string(), z.string()) }).safeParse(input);
      const issues = toValidationIssues(result.error!, 'body', input);
      expect(issues).toEqual([expect.objectContaining({ type: 'string_type', loc: ['body', 'name'], input: 5 })]);
      const whole = z.strictObject({ llm: z.strictObject({ model: z.string() }) }).safeParse({ llm: { model: 'm', api_key: 'sk-leak' } });
      const echoed = toValidationIssues(whole.error!, 'body', { llm: { model: 'm', api_key: 'sk-leak' } });
      expect(echoed[0]).toMatchObject({ type: 'extra_forbidden', input: { model: 'm', api_key: REDACTED } });
      expect(JSON.stringify(echoed)).not.toContain('sk-leak');
    });
  });

  describe('redactSecrets', () => {
    it.each([
      ['api_key'],
      ['API_KEY'],
      ['token'],
      ['github_token'],
      ['client_secret'],
      ['password'],
      ['Authorization'],
      ['cookie'],
      ['credentials'],
      ['session_id'],
      ['aws_secret_access_key'],
    ])('redacts the value of %s', (key) => {
      expect(redactSecrets({ [key]: 'value-123', keep: 'visible' })).toEqual({ [key]: REDACTED, keep: 'visible' });
    });

    it('redacts env and headers containers entirely, at any depth', () => {
      expect(
        redactSecrets({
          env: { PATH: '/bin', HOME: '/root' },
          environment: ['A=1'],
          sandbox: { headers: { 'X-Anything': 'x' }, url: 'https://x' },
        }),
      ).toEqual({ env: REDACTED, environment: REDACTED, sandbox: { headers: REDACTED, url: 'https://x' } });
    });

    it('keeps nulls, non-secret values, numbers and arrays of objects (redacting inside them)', () => {
      expect(
        redactSecrets({ api_key: null, headers: null, model: 'gpt', n: 3, list: [{ token: 't', name: 'n' }], nested: { password: 12 } }),
      ).toEqual({ api_key: null, headers: null, model: 'gpt', n: 3, list: [{ token: REDACTED, name: 'n' }], nested: { password: REDACTED } });
      expect(redactSecrets('plain')).toBe('plain');
      expect(redactSecrets(null)).toBeNull();
    });

    it('truncates long strings and long arrays', () => {
      expect(redactSecrets('x'.repeat(5000))).toBe(`${'x'.repeat(1000)}…`);
      expect((redactSecrets(Array.from({ length: 50 }, (_, i) => i)) as unknown[]).length).toBe(20);
    });
  });
});

describe('request schemas', () => {
  const minimal = { agent: { llm: { model: 'openai/gpt-4o-mini' } }, workspace: { working_dir: '/work' } };

  it('StartConversationRequest: a minimal body parses with OpenHands defaults', () => {
    const req = StartConversationRequestSchema.parse(minimal);
    expect(req).toMatchObject({
      agent: { kind: 'Agent', llm: { model: 'openai/gpt-4o-mini' }, tools: [] },
      workspace: { kind: 'LocalWorkspace', working_dir: '/work' },
      max_iterations: 500,
      stuck_detection: true,
      confirmation_policy: { kind: 'NeverConfirm' },
      autotitle: true,
      worktree: false,
      secrets: {},
      secrets_encrypted: false,
      tags: {},
      client_tools: [],
      agent_definitions: [],
      observability_span_name: 'conversation',
    });
  });

  it('StartConversationRequest: null observability fields take their defaults, as the Python SDK sends them', () => {
    const req = StartConversationRequestSchema.parse({
      ...minimal,
      observability_span_name: null,
      observability_tags: null,
      observability_metadata: null,
      observability_parent_span_context: null,
    });
    expect(req).toMatchObject({ observability_span_name: 'conversation', observability_tags: [], observability_metadata: {} });
    for (const bad of [
      { observability_span_name: 'has space' },
      { observability_span_name: '' },
      { observability_span_name: 'x'.repeat(129) },
      { observability_tags: [''] },
      { observability_metadata: { k: [1, 'a'] } },
      { observability_metadata: { k: { nested: true } } },
    ]) {
      expect(StartConversationRequestSchema.safeParse({ ...minimal, ...bad }).success).toBe(false);
    }
    expect(StartConversationRequestSchema.parse({ ...minimal, observability_metadata: { a: 'x', b: [1, 2], c: true } }).observability_metadata).toEqual({
      a: 'x',
      b: [1, 2],
      c: true,
    });
  });

  it('StartConversationRequest: keeps unknown fields (OpenHands adds fields over time)', () => {
    const req = StartConversationRequestSchema.parse({ ...minimal, future_option: { a: 1 } });
    expect((req as Record<string, unknown>).future_option).toEqual({ a: 1 });
  });

  it('StartConversationRequest: exactly one of agent, agent_settings, agent_profile_id', () => {
    const message = 'One of `agent`, `agent_settings`, or `agent_profile_id` must be provided';
    const both = StartConversationRequestSchema.safeParse({ ...minimal, agent_settings: { llm: {} } });
    expect(both.success).toBe(false);
    expect(both.error!.issues.map((i) => i.message)).toContain(message);

    const none = StartConversationRequestSchema.safeParse({ workspace: { working_dir: '/work' } });
    expect(none.success).toBe(false);
    expect(toValidationIssues(none.error!, 'body', {})).toEqual([
      expect.objectContaining({ type: 'value_error', loc: ['body'], msg: message }),
    ]);

    expect(StartConversationRequestSchema.safeParse({ workspace: { working_dir: '/w' }, agent_settings: {} }).success).toBe(true);
    expect(
      StartConversationRequestSchema.safeParse({ workspace: { working_dir: '/w' }, agent_profile_id: '3f2b8c4e1a2b4c3d8e9f0a1b2c3d4e5f' }).success,
    ).toBe(true);
  });

  it('StartConversationRequest: rejects bad values', () => {
    for (const bad of [
      { ...minimal, max_iterations: 0 },
      { ...minimal, max_iterations: 1.5 },
      { ...minimal, conversation_id: 'nope' },
      { ...minimal, tags: { 'Not-Valid': 'x' } },
      { ...minimal, confirmation_policy: { kind: 'Sometimes' } },
      { ...minimal, workspace: { working_dir: '' } },
      { agent: minimal.agent },
    ]) {
      expect(StartConversationRequestSchema.safeParse(bad).success).toBe(false);
    }
  });

  it('SendMessageRequest: defaults, and only user messages', () => {
    expect(SendMessageRequestSchema.parse({})).toEqual({ role: 'user', content: [], run: false });
    expect(SendMessageRequestSchema.parse({ content: [{ type: 'text', text: 'hi' }], run: true })).toEqual({
      role: 'user',
      content: [{ type: 'text', text: 'hi' }],
      run: true,
    });
    const assistant = SendMessageRequestSchema.safeParse({ role: 'assistant', content: [] });
    expect(assistant.success).toBe(false);
    expect(toValidationIssues(assistant.error!, 'body', { role: 'assistant' })).toEqual([
      expect.objectContaining({ loc: ['body', 'role'], input: 'assistant' }),
    ]);
    expect(SendMessageRequestSchema.safeParse({ role: 'robot' }).success).toBe(false);
  });

  it('SendMessageRequest: rejects unknown fields, in the message and in content', () => {
    const top = SendMessageRequestSchema.safeParse({ content: [], colour: 'red' });
    expect(top.success).toBe(false);
    expect(top.error!.issues[0].code).toBe('unrecognized_keys');

    const input = { content: [{ type: 'text', text: 'x', bold: true }] };
    const inner = SendMessageRequestSchema.safeParse(input);
    expect(inner.success).toBe(false);
    expect(toValidationIssues(inner.error!, 'body', input)).toEqual([
      expect.objectContaining({ type: 'extra_forbidden', loc: ['body', 'content', 0] }),
    ]);
    expect(SendMessageRequestSchema.safeParse({ content: [{ type: 'video', url: 'x' }] }).success).toBe(false);
  });
});
