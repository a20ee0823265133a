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
      if (m[3]?.split(', ').includes(method)) out.push(...namedRoutes(fastify, method, stack.join('')));
    }
  }
  return out;
}

/**
 * A parametric segment shared by routes with different parameter names prints as `:a|:b`
 * (`/api/agent-profiles/:name` and `/:profile_id/activate`): each route gets back its own name,
 * the one the router hands its handler.
 */
function namedRoutes(fastify: { findRoute(route: { method: 'GET'; url: string }): { params: object } | null }, method: string, path: string): Route[] {
  const alternation = /:[a-z_]+(?:\|:[a-z_]+)+/.exec(path);
  if (!alternation) return [{ method, path }];
  return alternation[0]
    .split('|')
    .map((name) => path.replace(alternation[0], name))
    .filter((candidate) => {
      const params = Object.keys(fastify.findRoute({ method: method as 'GET', url: candidate.replace(/\|:[a-z_]+/g, '') })?.params ?? {});
      return params.includes(/:[a-z_]+/.exec(candidate.slice(alternation.index))![0].slice(1));
    })
    .flatMap((candidate) => namedRoutes(fastify, method, candidate));
}

/** Whether a concrete path (no query) is one a registered route of this method matches. */
export function servesPath(routes: Route[], method: string, path: string): boolean {
  return routes.some((route) => {
    if (route.method !== method) return false;
    const pattern = route.path
      .split(/(:[a-zA-Z_]+|\*)/)
      .map((part) => (part === '*' ? '.*' : part.startsWith(':') ? '[^/]+' : part.replace(/[.+?^${}()|[\]\\]/g, '\\$&')))
      .join('');
    return new RegExp(`^${pattern}$`).test(path);
  });
}
