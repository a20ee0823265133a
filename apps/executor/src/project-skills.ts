import type { ProjectSkillFile, ProjectSkillFiles } from '@berth/contracts/executor';
import { lstat, readdir, readFile, realpath, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { SandboxPaths } from './sandbox-paths';

/** openhands-sdk's `Skill.PATH_TO_THIRD_PARTY_SKILL_NAME` keys: instruction files of other agents, matched case-insensitively. */
const THIRD_PARTY_FILES = new Set(['.cursorrules', 'agents.md', 'agent.md', 'claude.md', 'gemini.md']);
/** Where `load_project_skills` looks under each root, in its order of precedence. */
const SKILLS_DIRS = ['.agents/skills', '.openhands/skills', '.openhands/microagents'];
/** A skill file larger than this is left out (skills are prompts, not data). */
const MAX_FILE_BYTES = 256 * 1024;
const MAX_FILES = 200;

const byName = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

/**
 * The files openhands-sdk's `load_project_skills(work_dir)` reads, in its order: the third-party
 * files of the working dir and of its git root, then each root's skills folders (SKILL.md folders
 * first, then the other .md files, recursively). Only files inside the sandbox count; the worker
 * parses them (the executor holds nothing of the agent's).
 */
export class ProjectSkillReader {
  constructor(private readonly paths: SandboxPaths) {}

  async read(workingDir: string): Promise<ProjectSkillFiles> {
    const files: ProjectSkillFile[] = [];
    const add = async (path: string, skillsDir: string | null) => {
      if (files.length >= MAX_FILES) return;
      const content = await this.readInside(path);
      if (content !== null) files.push({ path, skills_dir: skillsDir, content });
    };
    const work = await this.paths.requireInside(workingDir);
    const roots = [work];
    const gitRoot = await this.gitRoot(work);
    if (gitRoot && gitRoot !== work) roots.push(gitRoot);

    for (const root of roots) {
      const seen = new Set<string>();
      const seenReal = new Set<string>();
      for (const name of (await this.list(root)).sort(byName)) {
        const lower = name.toLowerCase();
        if (!THIRD_PARTY_FILES.has(lower) || seen.has(lower)) continue;
        const real = await realpath(join(root, name)).catch(() => null);
        if (!real || seenReal.has(real) || !(await stat(real).catch(() => null))?.isFile()) continue;
        seen.add(lower);
        seenReal.add(real);
        await add(join(root, name), null);
      }
    }
    for (const root of roots) {
      for (const dir of SKILLS_DIRS.map((d) => join(root, d))) {
        if (!(await this.isDirInside(dir))) continue;
        const skillMdDirs: string[] = [];
        for (const sub of (await this.list(dir)).sort(byName)) {
          const subdir = join(dir, sub);
          if (!(await this.isDirInside(subdir))) continue;
          const skillMd = (await this.list(subdir)).find((n) => n.toLowerCase() === 'skill.md');
          if (!skillMd) continue;
          skillMdDirs.push(subdir);
          await add(join(subdir, skillMd), dir);
        }
        for (const path of (await this.markdownUnder(dir)).sort(byName)) {
          const name = path.slice(path.lastIndexOf('/') + 1);
          if (name === 'README.md' || name.toLowerCase() === 'skill.md' || skillMdDirs.some((d) => path.startsWith(`${d}/`))) continue;
          await add(path, dir);
        }
      }
    }
    return { files };
  }

  /** The nearest folder at or above `dir` (inside the sandbox) holding a `.git`, as the SDK's `_find_git_repo_root`. */
  private async gitRoot(dir: string): Promise<string | null> {
    for (let current = dir; this.paths.contains(current); current = dirname(current)) {
      if (await lstat(join(current, '.git')).catch(() => null)) return current;
      if (dirname(current) === current) break;
    }
    return null;
  }

  private async list(dir: string): Promise<string[]> {
    return readdir(dir).catch(() => []);
  }

  private async isDirInside(path: string): Promise<boolean> {
    const { real, inside } = await this.paths.locate(path).catch(() => ({ real: '', inside: false }));
    return inside && !!(await stat(real).catch(() => null))?.isDirectory();
  }

  private async markdownUnder(dir: string, depth = 0): Promise<string[]> {
    if (depth > 8) return [];
    const out: string[] = [];
    for (const entry of await readdir(dir, { withFileTypes: true }).catch(() => [])) {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) out.push(...(await this.markdownUnder(path, depth + 1)));
      else if (entry.name.endsWith('.md')) out.push(path);
    }
    return out;
  }

  /** A file's text when it resolves inside the sandbox and is small enough, else null. */
  private async readInside(path: string): Promise<string | null> {
    const { real, inside } = await this.paths.locate(path).catch(() => ({ real: '', inside: false }));
    if (!inside) return null;
    const info = await stat(real).catch(() => null);
    if (!info?.isFile() || info.size > MAX_FILE_BYTES) return null;
    return readFile(real, 'utf8').catch(() => null);
  }
}
