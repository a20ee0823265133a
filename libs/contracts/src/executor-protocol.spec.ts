import {
  CONVERSATION_WORKSPACE_ROUTES,
  EXECUTOR_PATHS,
  ExecutorInitRequestSchema,
  executorPath,
  executorRouteOf,
  matchExecutorRoute,
  PUBLIC_WORKSPACE_ROUTES,
} from './executor-protocol';
import type { ExecutorPathName } from './executor-protocol';

describe('the executor protocol', () => {
  it('builds each path with its segments encoded and its query, and matches it back', () => {
    expect(executorPath('sessionClose', { conversation_id: 'a/b c' })).toBe('/api/sessions/a%2Fb%20c/close');
    expect(executorPath('fileDownload', {}, { path: '/workspace/a b&c' })).toBe('/api/file/download?path=%2Fworkspace%2Fa+b%26c');
    expect(() => executorPath('bashEvent')).toThrow(/needs event_id/);
    for (const name of Object.keys(EXECUTOR_PATHS) as ExecutorPathName[]) {
      const built = executorPath(name, { conversation_id: 'c1', event_id: 'e1', command_id: 'k1', sha: 'abc123' });
      expect(executorRouteOf(built, [name])).toBe(name);
    }
    expect(matchExecutorRoute('gitCommitChanges', '/api/git/commits/abc123/changes')).toEqual(['abc123']);
  });

  it('answers the trailing-slash form only where OpenHands declares one, and nothing around a path', () => {
    expect(matchExecutorRoute('bashEventsSearch', '/api/bash/bash_events/search/')).toEqual([]);
    expect(matchExecutorRoute('bashEvents', '/api/bash/bash_events/')).toEqual([]);
    expect(matchExecutorRoute('fileHome', '/api/file/home/')).toBeNull();
    expect(matchExecutorRoute('toolsExecute', '/x/api/tools/execute')).toBeNull();
    expect(matchExecutorRoute('bashEvent', '/api/bash/bash_events/a/b')).toBeNull();
  });

  it('keeps the internal routes out of what clients may reach, and the folder picker out of the conversation mount', () => {
    for (const internal of ['/api/tools/execute', '/api/init', '/api/activity', '/api/sessions/x/close', '/health']) {
      expect(executorRouteOf(internal, PUBLIC_WORKSPACE_ROUTES)).toBeNull();
    }
    expect(executorRouteOf('/api/file/home', PUBLIC_WORKSPACE_ROUTES)).toBe('fileHome');
    expect(executorRouteOf('/api/file/home', CONVERSATION_WORKSPACE_ROUTES)).toBeNull();
    expect(executorRouteOf('/api/file/upload', CONVERSATION_WORKSPACE_ROUTES)).toBe('fileUpload');
  });

  it('parses an init body: an absolute root and string variables', () => {
    expect(ExecutorInitRequestSchema.parse({ root: '/workspace' })).toEqual({ root: '/workspace', env: {} });
    expect(ExecutorInitRequestSchema.safeParse({ root: 'relative' }).success).toBe(false);
    expect(ExecutorInitRequestSchema.safeParse({ root: '/w', env: { A: 1 } }).success).toBe(false);
  });
});
