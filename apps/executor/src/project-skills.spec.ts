import { mkdirSync, mkdtempSync, realpathSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { ProjectSkillReader } from './project-skills';
import { SandboxPaths } from './sandbox-paths';

describe('project skill files, read in the sandbox', () => {
  let root: string;
  let outside: string;
  const write = (path: string, content: string) => {
    mkdirSync(dirname(join(root, path)), { recursive: true });
    writeFileSync(join(root, path), content);
  };

  beforeAll(() => {
    root = realpathSync(mkdtempSync(join(tmpdir(), 'skills-root-')));
    outside = realpathSync(mkdtempSync(join(tmpdir(), 'skills-outside-')));
    writeFileSync(join(outside, 'secret.md'), 'not the sandbox');
    mkdirSync(join(root, 'repo/.git'), { recursive: true });
    write('repo/AGENTS.md', 'repo root rules');
    write('repo/app/agents.md', 'app rules');
    write('repo/app/CLAUDE.md', 'claude rules');
    write('repo/app/notes.md', 'not an instruction file');
    write('repo/app/.openhands/skills/deploy.md', '---\ntriggers: [deploy]\n---\nship');
    write('repo/app/.openhands/skills/README.md', 'skipped');
    write('repo/app/.openhands/skills/nested/db.md', 'db');
    write('repo/app/.agents/skills/pdf-tools/SKILL.md', 'pdf');
    write('repo/app/.agents/skills/pdf-tools/references/guide.md', 'inside a SKILL.md folder: not a skill of its own');
    write('repo/.openhands/microagents/old.md', 'legacy');
    symlinkSync(join(outside, 'secret.md'), join(root, 'repo/app/.openhands/skills/leak.md'));
    symlinkSync(outside, join(root, 'repo/app/.openhands/skills/linked'));
  });
  afterAll(() => {
    rmSync(root, { recursive: true, force: true });
    rmSync(outside, { recursive: true, force: true });
  });

  it('lists the files load_project_skills reads, in its order, never one outside the sandbox', async () => {
    const { files } = await new ProjectSkillReader(new SandboxPaths(root)).read(join(root, 'repo/app'));
    const app = join(root, 'repo/app');
    expect(files.map((f) => [f.path.slice(root.length + 1), f.skills_dir && f.skills_dir.slice(root.length + 1)])).toEqual([
      ['repo/app/CLAUDE.md', null],
      ['repo/app/agents.md', null],
      ['repo/AGENTS.md', null],
      ['repo/app/.agents/skills/pdf-tools/SKILL.md', 'repo/app/.agents/skills'],
      ['repo/app/.openhands/skills/deploy.md', 'repo/app/.openhands/skills'],
      ['repo/app/.openhands/skills/nested/db.md', 'repo/app/.openhands/skills'],
      ['repo/.openhands/microagents/old.md', 'repo/.openhands/microagents'],
    ]);
    expect(files.find((f) => f.path === join(app, '.openhands/skills/deploy.md'))?.content).toBe('---\ntriggers: [deploy]\n---\nship');
    expect(JSON.stringify(files)).not.toContain('not the sandbox');
  });

  it('refuses a working dir outside the sandbox', async () => {
    await expect(new ProjectSkillReader(new SandboxPaths(root)).read(outside)).rejects.toMatchObject({ status: 403 });
  });
});
