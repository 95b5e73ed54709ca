// Spawning ranks for the distributed tests: child node processes on
// loopback with a free port, torchrun's environment, one thread each.
import { spawn, type ChildProcess } from 'node:child_process';
import * as path from 'node:path';
import { freePort } from '../../lib/cli/launch';

export const rankScript = path.join(__dirname, 'dist-rank.js');
export const nativeRankScript = path.join(__dirname, 'dist-native-rank.js');
export const cliScript = path.join(__dirname, '..', '..', 'bin', 'tabsight.js');

export interface RankResult {
  rank: number;
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** JSON lines of stdout. */
  lines: Record<string, unknown>[];
  /** When it exited (Date.now()). */
  exitedAt: number;
}

export interface RankHandle {
  child: ChildProcess;
  rank: number;
  done: Promise<RankResult>;
  /** Resolves with the first stdout/stderr line matching re. */
  waitFor(re: RegExp): Promise<string>;
}

function parseLines(s: string): Record<string, unknown>[] {
  return s.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>);
}

/** Starts one process; world > 0 sets torchrun's variables for `rank`. */
export function startRank(script: string, args: string[], rank: number, world: number, port: number, extraEnv: Record<string, string> = {}): RankHandle {
  const env: Record<string, string | undefined> = { ...process.env, TABSIGHT_THREADS: '1', ...extraEnv };
  for (const k of ['MASTER_ADDR', 'MASTER_PORT', 'RANK', 'WORLD_SIZE', 'LOCAL_RANK']) delete env[k];
  if (world > 0) Object.assign(env, { MASTER_ADDR: '127.0.0.1', MASTER_PORT: String(port), RANK: String(rank), WORLD_SIZE: String(world), LOCAL_RANK: String(rank) });
  const child = spawn(process.execPath, [script, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  const watchers: { re: RegExp; resolve: (line: string) => void }[] = [];
  const scan = (chunk: string) => {
    for (const line of chunk.split('\n')) {
      for (const w of [...watchers]) {
        if (w.re.test(line)) {
          watchers.splice(watchers.indexOf(w), 1);
          w.resolve(line);
        }
      }
    }
  };
  child.stdout!.setEncoding('utf8').on('data', (d: string) => { stdout += d; scan(d); });
  child.stderr!.setEncoding('utf8').on('data', (d: string) => { stderr += d; scan(d); });
  const done = new Promise<RankResult>((resolve) => {
    child.on('close', (code, signal) => resolve({ rank, code, signal, stdout, stderr, lines: parseLines(stdout), exitedAt: Date.now() }));
  });
  return {
    child,
    rank,
    done,
    waitFor: (re) => new Promise((resolve, reject) => {
      watchers.push({ re, resolve });
      void done.then(() => reject(new Error(`rank ${rank} exited before printing ${re}: ${stderr}`)));
    }),
  };
}

/** Starts `world` ranks of a script (world 0: one process without the environment). */
export async function startRanks(script: string, args: (rank: number) => string[], world: number, extraEnv: Record<string, string> = {}): Promise<RankHandle[]> {
  const port = await freePort();
  const n = Math.max(1, world);
  return Array.from({ length: n }, (_, r) => startRank(script, args(r), r, world, port, extraEnv));
}

export async function runRanks(script: string, args: (rank: number) => string[], world: number, extraEnv: Record<string, string> = {}): Promise<RankResult[]> {
  const handles = await startRanks(script, args, world, extraEnv);
  return Promise.all(handles.map((h) => h.done));
}
