import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';

let cached: string | undefined;

/**
 * The Berth checkout (or installed package) folder: where package.json names "berth". Found from
 * this file's folder — sources or their build under dist/ — or, where modules have no __dirname
 * (tests in ESM mode), from the working directory.
 */
export function projectRoot(): string {
  if (cached) return cached;
  const start = typeof __dirname === 'string' ? __dirname : process.cwd();
  for (let dir = start; dir !== dirname(dir); dir = dirname(dir)) {
    const pkg = join(dir, 'package.json');
    if (existsSync(pkg) && JSON.parse(readFileSync(pkg, 'utf8')).name === 'berth') return (cached = dir);
  }
  throw new Error(`the berth package folder was not found above ${start}`);
}

export function projectVersion(): string {
  return JSON.parse(readFileSync(join(projectRoot(), 'package.json'), 'utf8')).version;
}
