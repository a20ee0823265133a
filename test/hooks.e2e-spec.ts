import { api, createTenant, useServer } from './support/server';

const KEY = 'hooks-test-key';

/** `POST /api/hooks`: a workspace folder's `.openhands/hooks.json`, read in the caller's own sandbox. */
describe('project hooks (postgres)', () => {
  const ctx = useServer('postgres', { OH_SESSION_API_KEYS_0: KEY }, KEY, { ownDatabase: true });
  const call = ctx.call;
  let home = '';

  const write = async (dir: string, text: string | null) => {
    const command = text === null ? `rm -rf ${dir}/.openhands` : `mkdir -p ${dir}/.openhands && printf '%s' '${text}' > ${dir}/.openhands/hooks.json`;
    const res = await call('POST', '/api/bash/execute_bash_command', { command, cwd: home });
    expect(res.body.exit_code).toBe(0);
  };
  const hooks = async (body: unknown, key = KEY) => api(ctx.server, 'POST', '/api/hooks', { body, key });

  beforeAll(async () => {
    home = (await call('GET', '/api/file/home')).body.home;
    expect(home).toBeTruthy();
  });

  it('reads the legacy wrapper and PascalCase events as OpenHands normalises them', async () => {
    const dir = `${home}/proj`;
    await write(dir, JSON.stringify({ hooks: { PreToolUse: [{ matcher: 'terminal', hooks: [{ command: 'check.sh', timeout: 5 }] }], Stop: [{ hooks: [{ type: 'prompt', prompt: 'done?' }] }] } }));
    const res = await hooks({ project_dir: dir });
    expect(res.status).toBe(200);
    expect(res.body).toEqual({
      hook_config: {
        pre_tool_use: [
          {
            matcher: 'terminal',
            hooks: [{ type: 'command', name: null, command: 'check.sh', prompt: null, system_prompt: null, tools: [], timeout: 5, max_iterations: 3, async: false }],
          },
        ],
        post_tool_use: [],
        user_prompt_submit: [],
        session_start: [],
        session_end: [],
        stop: [{ matcher: '*', hooks: [{ type: 'prompt', name: null, command: '', prompt: 'done?', system_prompt: null, tools: [], timeout: 60, max_iterations: 3, async: false }] }],
      },
    });
  });

  it('answers null, never an error, for no folder, no file, an empty, invalid or oversized file', async () => {
    const dir = `${home}/other`;
    expect((await hooks({})).body).toEqual({ hook_config: null });
    expect((await hooks({ project_dir: null })).body).toEqual({ hook_config: null });
    expect((await hooks({ project_dir: 'relative/dir' })).body).toEqual({ hook_config: null });
    expect((await hooks({ project_dir: '/nowhere/of/theirs' })).body).toEqual({ hook_config: null });
    await write(dir, null);
    expect((await hooks({ project_dir: dir })).body).toEqual({ hook_config: null });
    for (const text of ['{}', '{"hooks": {}}', 'not json', '{"NoSuchEvent": []}', '{"pre_tool_use": [{"hooks": [{"type": "command"}]}]}']) {
      await write(dir, text);
      const res = await hooks({ project_dir: dir });
      expect([text, res.status, res.body]).toEqual([text, 200, { hook_config: null }]);
    }
    const big = await call('POST', '/api/bash/execute_bash_command', {
      command: `mkdir -p ${dir}/.openhands && head -c 2000000 /dev/zero | tr '\\0' ' ' > ${dir}/.openhands/hooks.json`,
      cwd: home,
    });
    expect(big.body.exit_code).toBe(0);
    expect((await hooks({ project_dir: dir })).body).toEqual({ hook_config: null });
  });

  it('validates its body and needs a key', async () => {
    const bad = await hooks({ project_dir: 42 });
    expect(bad.status).toBe(422);
    expect(bad.body.detail[0].loc).toEqual(['body', 'project_dir']);
    expect((await hooks({}, 'wrong-key')).status).toBe(401);
  });

  it("never reads another tenant's hooks: the same path names the caller's own sandbox or nothing", async () => {
    const dir = `${home}/proj`;
    await write(dir, JSON.stringify({ stop: [{ hooks: [{ command: 'tenant-a-secret-hook.sh' }] }] }));
    expect((await hooks({ project_dir: dir })).body.hook_config.stop[0].hooks[0].command).toBe('tenant-a-secret-hook.sh');
    const other = await createTenant(ctx.server);
    const res = await hooks({ project_dir: dir }, other.key);
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ hook_config: null });
    expect(JSON.stringify(res.body)).not.toContain('tenant-a-secret-hook');
  });
});
