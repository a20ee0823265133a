import type { TestServer } from './server';

export const METHODS = ['GET', 'POST', 'PUT', 'PATCH', 'DELETE'];

export interface Route {
  method: string;
  /** Fastify's pattern: `:param` segments, a trailing `*` for a catch-all */
  path: string;
}

/** Every route Fastify serves, read from its router's tree (one tree per method, segments joined). */
export function registeredRoutes(server: TestServer): Route[] {
  const fastify = server.app.getHttpAdapter().getInstance();
  const out: Route[] = [];
  for (const method of METHODS) {
    const tree = fastify.printRoutes({ method });
    const stack: string[] = [];
    for (const line of tree.split('\n')) {
      const m = /^((?:[│ ] {3}|[├└]── |\s{4})*?)(?:[├└]── )(.*?)(?: \(([^)]*)\))?$/.exec(line.replace(/\u2502/g, '│'));
      if (!m) continue;
      const depth = [...m[1]].length / 4;
      stack.length = depth;
      stack.push(m[2]);
      if (m[3]?.split(', ').includes(method)) out.push({ method, path: stack.join('') });
    }
  }
  return out;
}

/** Whether a concrete path (no query) is one a registered route of this method matches. */
export function servesPath(routes: Route[], method: string, path: string): boolean {
  return routes.some((route) => {
    if (route.method !== method) return false;
    const pattern = route.path
      .split(/(:[a-zA-Z_]+|\*)/)
      .map((part) => (part === '*' ? '.+' : part.startsWith(':') ? '[^/]+' : part.replace(/[.+?^${}()|[\]\\]/g, '\\$&')))
      .join('');
    return new RegExp(`^${pattern}$`).test(path);
  });
}
