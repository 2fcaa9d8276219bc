import { mkdirSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';

/** `$XDG_CACHE_HOME/typevisor/bench/<sub>`, else `~/.cache/typevisor/bench/<sub>`: downloads and inputs kept between runs. */
export function benchCache(sub: string): string {
  const dir = join(process.env['XDG_CACHE_HOME'] || join(homedir(), '.cache'), 'typevisor', 'bench', sub);
  mkdirSync(dir, { recursive: true });
  return dir;
}
