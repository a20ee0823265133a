import { BadRequestException, Injectable, Logger } from '@nestjs/common';
import { HookConfig, HookConfigSchema, hookConfigIsEmpty } from '@berth/contracts';
import { ExecutorClient, ExecutorError } from '@berth/sandbox';
import { isAbsolute, join, normalize } from 'node:path';
import type { Principal } from '../common/tenant.decorator';
import { WorkspaceRoutingService } from '../workspace/workspace-routing.service';

/** A hooks file is a few matchers; anything this large is not one. */
const MAX_HOOKS_FILE_BYTES = 1024 * 1024;

/**
 * `POST /api/hooks`: the project hooks of a workspace folder, read from `<project_dir>/.openhands/hooks.json`
 * in the sandbox that folder lives in (routed as every workspace call is). As in OpenHands, a folder
 * without the file, an empty or invalid file, or no folder at all is `null`, never an error.
 */
@Injectable()
export class HooksService {
  private readonly log = new Logger(HooksService.name);

  constructor(private readonly routing: WorkspaceRoutingService) {}

  async load(p: Principal, projectDir: string | null | undefined): Promise<HookConfig | null> {
    if (!projectDir || !isAbsolute(projectDir)) return null;
    const file = join(normalize(projectDir), '.openhands', 'hooks.json');
    let target;
    try {
      target = await this.routing.route(p, file);
    } catch (err) {
      // A folder in none of the caller's sandboxes holds no hooks of theirs.
      if (err instanceof BadRequestException) return null;
      throw err;
    }
    let raw: unknown;
    try {
      raw = await new ExecutorClient(target.handle).readJsonFile(target.toSandboxPath(file), MAX_HOOKS_FILE_BYTES, { timeoutMs: 10_000 });
    } catch (err) {
      if (err instanceof ExecutorError && err.status !== null && err.status < 500) return null;
      throw err;
    }
    const parsed = HookConfigSchema.safeParse(raw);
    if (!parsed.success) {
      this.log.warn(`ignoring ${file} in sandbox ${target.sandboxId}: not a valid hook configuration`);
      return null;
    }
    return hookConfigIsEmpty(parsed.data) ? null : parsed.data;
  }
}
