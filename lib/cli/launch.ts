/**
 * `tabsight pretrain --nproc N`: a single-node launcher. It starts N ranks as
 * child processes of this same CLI with torchrun's environment (MASTER_ADDR,
 * MASTER_PORT, RANK, WORLD_SIZE, LOCAL_RANK), forwards their output line by
 * line with a `[rank R]` prefix, forwards Ctrl-C (so they stop together after
 * the same step and rank 0 writes the checkpoint), and when one rank fails
 * it stops the others and fails naming that rank.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import * as net from 'node:net';
import * as os from 'node:os';
import * as readline from 'node:readline';
import { AbortError, DistributedError } from '../errors';
import { onSignal } from './args';

/** A TCP port that was free on 127.0.0.1 a moment ago. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const port = (server.address() as net.AddressInfo).port;
      server.close(() => resolve(port));
    });
  });
}

/** argv without `--nproc N` / `--nproc=N`. */
export function withoutNproc(argv: readonly string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--nproc') {
      i++;
      continue;
    }
    if (argv[i].startsWith('--nproc=')) continue;
    out.push(argv[i]);
  }
  return out;
}

export interface LaunchOptions {
  nproc: number;
  /** The CLI script and its arguments for each rank (without --nproc). */
  script: string;
  args: string[];
  /** Seconds the other ranks get to exit after one failed, before SIGKILL. @default 10 */
  graceSec?: number;
}

interface Exit {
  rank: number;
  code: number | null;
  signal: NodeJS.Signals | null;
}

function describe(e: Exit): string {
  return e.signal ? `was killed by ${e.signal}` : `exited with code ${e.code}`;
}

/**
 * Runs the ranks to completion. Resolves when every rank succeeded; rejects
 * with AbortError when they were all stopped by Ctrl-C, and with
 * DistributedError naming the first rank that failed otherwise.
 */
export async function launchLocalRanks(options: LaunchOptions): Promise<void> {
  const { nproc, script, args } = options;
  const graceMs = (options.graceSec ?? 10) * 1000;
  const port = await freePort();
  // Split the cores between the ranks unless the user chose.
  const threads = process.env.TABSIGHT_THREADS ?? String(Math.max(1, Math.floor(os.availableParallelism() / nproc)));
  const children: ChildProcess[] = [];
  const exits: Exit[] = [];
  let firstFailure: Exit | undefined;
  let killTimer: NodeJS.Timeout | undefined;
  let interrupted = false;

  const forward = (signal: NodeJS.Signals) => () => {
    if (signal === 'SIGINT') interrupted = true;
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill(signal);
  };
  const onSigint = forward('SIGINT');
  const onSigterm = forward('SIGTERM');
  const offSigint = onSignal('SIGINT', onSigint);
  const offSigterm = onSignal('SIGTERM', onSigterm);
  // Never leave ranks behind when this process exits.
  const onExit = () => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  };
  process.on('exit', onExit);

  try {
    await new Promise<void>((resolve) => {
      for (let rank = 0; rank < nproc; rank++) {
        const child = spawn(process.execPath, [script, ...args], {
          env: {
            ...process.env,
            MASTER_ADDR: '127.0.0.1',
            MASTER_PORT: String(port),
            RANK: String(rank),
            WORLD_SIZE: String(nproc),
            LOCAL_RANK: String(rank),
            LOCAL_WORLD_SIZE: String(nproc),
            TABSIGHT_THREADS: threads,
            TABSIGHT_LAUNCHER_PID: String(process.pid),
          },
          // Own process group: Ctrl-C reaches this launcher only, which
          // forwards it exactly once to every rank.
          detached: true,
          stdio: ['ignore', 'pipe', 'pipe'],
        });
        children.push(child);
        for (const [stream, sink] of [[child.stdout!, process.stdout], [child.stderr!, process.stderr]] as const) {
          readline.createInterface({ input: stream, crlfDelay: Infinity }).on('line', (line) => sink.write(`[rank ${rank}] ${line}\n`));
        }
        child.on('exit', (code, signal) => {
          const e = { rank, code, signal };
          exits.push(e);
          // After a forwarded Ctrl-C every rank stops with 130 once rank 0
          // has written the checkpoint: wait for the others.
          const stopped = interrupted && code === 130;
          if ((code !== 0 || signal) && !stopped && !firstFailure) {
            firstFailure = e;
            // Stop the others now; SIGKILL those still there after the grace period.
            for (const c of children) if (c !== child && c.exitCode === null && c.signalCode === null) c.kill('SIGTERM');
            killTimer = setTimeout(onExit, graceMs);
            killTimer.unref();
          }
          if (exits.length === nproc) resolve();
        });
        child.on('error', (err) => {
          process.stderr.write(`[rank ${rank}] could not start: ${err.message}\n`);
        });
      }
    });
  } finally {
    if (killTimer) clearTimeout(killTimer);
    offSigint();
    offSigterm();
    process.off('exit', onExit);
  }
  if (firstFailure === undefined) {
    if (exits.every((e) => e.code === 0)) return;
    throw new AbortError(`Training was stopped on all ${nproc} ranks; rank 0 wrote the checkpoint (--resume continues it)`);
  }
  throw new DistributedError(`rank ${firstFailure.rank} of ${nproc} ${describe(firstFailure)}; the other ranks were stopped`);
}
