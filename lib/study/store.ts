/**
 * The study store: STUDY/study.sqlite (better-sqlite3, WAL). One row per
 * trial with the unique key (method, k, seed) and a status
 * pending → running → done (or failed); the study's settings; and a cache
 * of search evaluations. Claims and completions are IMMEDIATE transactions
 * guarded by the owner, so several workers (in one process or several)
 * never run one trial at the same time, and a trial is completed once.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ConfigError, DataError } from '../errors';
import { ensureOutDir } from '../io/atomic';
import { processAlive } from '../io/process';

/* The small part of better-sqlite3's API used here (the package ships no types). */
interface Statement {
  run(...params: unknown[]): { changes: number };
  get(...params: unknown[]): unknown;
  all(...params: unknown[]): unknown[];
}
interface Database {
  prepare(sql: string): Statement;
  exec(sql: string): void;
  pragma(sql: string): unknown;
  transaction<A extends unknown[], R>(fn: (...args: A) => R): { immediate: (...args: A) => R };
  close(): void;
}
type DatabaseConstructor = new (file: string, options?: { readonly?: boolean; fileMustExist?: boolean; timeout?: number }) => Database;

function openDatabase(file: string, readonly: boolean): Database {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const Db = require('better-sqlite3') as DatabaseConstructor;
  return new Db(file, { readonly, fileMustExist: readonly, timeout: 10_000 });
}

export type TrialStatus = 'pending' | 'running' | 'done' | 'failed';

export interface TrialKey {
  method: string;
  k: number;
  seed: number;
}

export interface Trial extends TrialKey {
  id: number;
  status: TrialStatus;
  /** Selected features (null until selected; [] for the image-only baseline). */
  features: string[] | null;
  scores: Record<string, number> | null;
  results: TrialResults | null;
  runDir: string | null;
  host: string | null;
  pid: number | null;
  token: string | null;
  /** Times the trial was claimed (a claim after a dead owner counts again). */
  attempts: number;
  /** Times the trial was completed; 1 for every done trial. */
  completions: number;
  /** Whether a claim found a checkpoint and resumed the pretraining. */
  resumed: boolean;
  heartbeat: number | null;
  error: string | null;
}

/** What a finished trial stores: evaluateRun's per-task metric summaries. */
export interface TrialResults {
  tasks: Record<string, Record<string, { mean: number; sd: number; values: number[] }>>;
}

/** Who runs a trial: the host, the process and one runStudy call in it. */
export interface Owner {
  host: string;
  pid: number;
  token: string;
}

const SCHEMA = `
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS trials (
  id INTEGER PRIMARY KEY,
  method TEXT NOT NULL,
  k INTEGER NOT NULL,
  seed INTEGER NOT NULL,
  ord INTEGER NOT NULL,
  status TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'running', 'done', 'failed')),
  features TEXT, scores TEXT, results TEXT, run_dir TEXT,
  host TEXT, pid INTEGER, token TEXT, heartbeat INTEGER,
  attempts INTEGER NOT NULL DEFAULT 0,
  completions INTEGER NOT NULL DEFAULT 0,
  resumed INTEGER NOT NULL DEFAULT 0,
  error TEXT, started_at INTEGER, finished_at INTEGER,
  UNIQUE (method, k, seed)
);
CREATE TABLE IF NOT EXISTS search_evals (key TEXT PRIMARY KEY, value TEXT NOT NULL, created_at INTEGER NOT NULL);
`;

interface Row {
  id: number; method: string; k: number; seed: number; status: TrialStatus; features: string | null; scores: string | null;
  results: string | null; run_dir: string | null; host: string | null; pid: number | null; token: string | null;
  heartbeat: number | null; attempts: number; completions: number; resumed: number; error: string | null;
}

const parse = <T>(s: string | null): T | null => (s === null ? null : (JSON.parse(s) as T));

function toTrial(r: Row): Trial {
  return {
    id: r.id, method: r.method, k: r.k, seed: r.seed, status: r.status, features: parse<string[]>(r.features), scores: parse(r.scores),
    results: parse<TrialResults>(r.results), runDir: r.run_dir, host: r.host, pid: r.pid, token: r.token, attempts: r.attempts,
    completions: r.completions, resumed: r.resumed === 1, heartbeat: r.heartbeat, error: r.error,
  };
}

export class StudyStore {
  readonly file: string;
  #db: Database;

  private constructor(file: string, db: Database) {
    this.file = file;
    this.#db = db;
  }

  /** Opens (creating) the store; readonly opens an existing one without writing. */
  static open(file: string, opts: { readonly?: boolean } = {}): StudyStore {
    if (opts.readonly && !fs.existsSync(file)) throw new DataError(`${file} does not exist; run the study first`);
    if (!opts.readonly) ensureOutDir(path.dirname(file));
    let db: Database | undefined;
    try {
      db = openDatabase(file, opts.readonly === true);
      db.pragma('schema_version'); // reads the header: a file that is not SQLite fails here
      if (!opts.readonly) {
        db.pragma('journal_mode = WAL');
        db.pragma('synchronous = NORMAL');
        db.exec(SCHEMA);
      }
    } catch (err) {
      db?.close();
      throw new DataError(`Cannot open the study store ${file}: ${(err as Error).message ?? String(err)}; move it away to start afresh`, { cause: err });
    }
    return new StudyStore(file, db);
  }

  close(): void {
    this.#db.close();
  }

  getMeta(key: string): unknown {
    const r = this.#db.prepare('SELECT value FROM meta WHERE key = ?').get(key) as { value: string } | undefined;
    return r ? JSON.parse(r.value) : undefined;
  }

  setMeta(key: string, value: unknown): void {
    this.#db.prepare('INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value').run(key, JSON.stringify(value));
  }

  /**
   * Stores `config` on first use; later, throws ConfigError naming the first
   * setting that differs, so a resumed study cannot mix settings.
   */
  checkConfig(config: Record<string, unknown>): void {
    this.#db.transaction(() => {
      const saved = this.getMeta('config') as Record<string, unknown> | undefined;
      if (saved === undefined) return this.setMeta('config', config);
      const diff = configDiff(saved, config);
      if (diff) throw new ConfigError(`${this.file} holds a study with ${diff.key} ${diff.saved}, but this run asks for ${diff.asked}; use the same settings to resume, or another --out`);
    }).immediate();
  }

  /**
   * Refuses tabular features that are not the ones this store's study was
   * planned on (meta.info.features), before anything is written. `source`
   * names where `features` come from, for the message ("the cohort X has
   * now", "DIR/study.json records"). A store without that record (a new
   * one) passes.
   */
  checkFeatures(features: readonly string[], source: string): void {
    const info = this.getMeta('info') as { features?: unknown } | undefined;
    if (!info || !Array.isArray(info.features)) return;
    const diff = featureListDiff(info.features as string[], features);
    if (diff) throw new ConfigError(`${this.file} holds a study planned on other tabular features than ${source} (${diff}); its trials' selections and results index those features, so run this study into another --out`);
  }

  /** Adds the trials that are missing (existing keys are left as they are). */
  addTrials(keys: (TrialKey & { ord: number })[]): void {
    const ins = this.#db.prepare('INSERT OR IGNORE INTO trials (method, k, seed, ord) VALUES (?, ?, ?, ?)');
    this.#db.transaction(() => keys.forEach((t) => ins.run(t.method, t.k, t.seed, t.ord))).immediate();
  }

  /** Failed trials become pending again (a rerun retries them). */
  retryFailed(): number {
    return this.#db.prepare("UPDATE trials SET status = 'pending', error = NULL WHERE status = 'failed'").run().changes;
  }

  /**
   * Claims the next trial among `keys`: a pending one, or a running one whose
   * owner `isOrphan` says is gone. Returns it with status running.
   */
  claim(owner: Owner, keys: TrialKey[], isOrphan: (t: Trial) => boolean): Trial | undefined {
    const wanted = new Set(keys.map((k) => `${k.method}\u0000${k.k}\u0000${k.seed}`));
    return this.#db.transaction(() => {
      const rows = (this.#db.prepare("SELECT * FROM trials WHERE status IN ('pending', 'running') ORDER BY ord, id").all() as Row[]).map(toTrial);
      const t = rows.find((r) => wanted.has(`${r.method}\u0000${r.k}\u0000${r.seed}`) && (r.status === 'pending' || isOrphan(r)));
      if (!t) return undefined;
      this.#db.prepare("UPDATE trials SET status = 'running', host = ?, pid = ?, token = ?, heartbeat = ?, attempts = attempts + 1, started_at = ? WHERE id = ?")
        .run(owner.host, owner.pid, owner.token, Date.now(), Date.now(), t.id);
      return { ...t, status: 'running' as const, host: owner.host, pid: owner.pid, token: owner.token, attempts: t.attempts + 1 };
    }).immediate();
  }

  #owned(id: number, owner: Owner, sql: string, ...params: unknown[]): void {
    const r = this.#db.prepare(`UPDATE trials SET ${sql} WHERE id = ? AND status = 'running' AND token = ?`).run(...params, id, owner.token);
    if (r.changes !== 1) throw new ConfigError(`trial ${id} is no longer owned by this run (another process took it over)`);
  }

  setSelection(id: number, owner: Owner, features: string[], scores: Record<string, number>, runDir: string): void {
    this.#owned(id, owner, 'features = ?, scores = ?, run_dir = ?', JSON.stringify(features), JSON.stringify(scores), runDir);
  }

  markResumed(id: number, owner: Owner): void {
    this.#owned(id, owner, 'resumed = 1');
  }

  heartbeat(owner: Owner): void {
    this.#db.prepare("UPDATE trials SET heartbeat = ? WHERE status = 'running' AND token = ?").run(Date.now(), owner.token);
  }

  complete(id: number, owner: Owner, results: TrialResults): void {
    this.#db.transaction(() => {
      this.#owned(id, owner, "status = 'done', results = ?, completions = completions + 1, finished_at = ?, error = NULL", JSON.stringify(results), Date.now());
    }).immediate();
  }

  /** Gives a trial back (pending), e.g. after an abort; its run directory keeps the checkpoint. */
  release(id: number, owner: Owner): void {
    this.#db.prepare("UPDATE trials SET status = 'pending' WHERE id = ? AND status = 'running' AND token = ?").run(id, owner.token);
  }

  fail(id: number, owner: Owner, error: string): void {
    this.#db.prepare("UPDATE trials SET status = 'failed', error = ?, finished_at = ? WHERE id = ? AND status = 'running' AND token = ?").run(error, Date.now(), id, owner.token);
  }

  /**
   * Records a trial that a job finished (its result file, lib/study/jobs.ts)
   * unless the store already has it done. Returns whether the row changed.
   */
  importDone(key: TrialKey, r: { features: string[]; scores: Record<string, number>; results: TrialResults; runDir: string; host: string; attempts: number; resumed: boolean; finishedAt: number }): boolean {
    return this.#db.prepare(`UPDATE trials SET status = 'done', features = ?, scores = ?, results = ?, run_dir = ?, host = ?, pid = NULL, token = NULL,
      attempts = ?, completions = completions + 1, resumed = ?, error = NULL, finished_at = ? WHERE method = ? AND k = ? AND seed = ? AND status != 'done'`)
      .run(JSON.stringify(r.features), JSON.stringify(r.scores), JSON.stringify(r.results), r.runDir, r.host, r.attempts, r.resumed ? 1 : 0, r.finishedAt, key.method, key.k, key.seed).changes === 1;
  }

  /** Records a job's failure (its error file) for a trial that is not done or running here. */
  importFailed(key: TrialKey, error: string, attempts: number): boolean {
    return this.#db.prepare("UPDATE trials SET status = 'failed', error = ?, attempts = ? WHERE method = ? AND k = ? AND seed = ? AND status IN ('pending', 'failed')")
      .run(error, attempts, key.method, key.k, key.seed).changes === 1;
  }

  /** Runs `fn` in one IMMEDIATE transaction. */
  transaction<R>(fn: () => R): R {
    return this.#db.transaction(fn).immediate();
  }

  trials(): Trial[] {
    return (this.#db.prepare('SELECT * FROM trials ORDER BY ord, id').all() as Row[]).map(toTrial);
  }

  getSearchEval(key: string): unknown {
    const r = this.#db.prepare('SELECT value FROM search_evals WHERE key = ?').get(key) as { value: string } | undefined;
    return r ? JSON.parse(r.value) : undefined;
  }

  putSearchEval(key: string, value: unknown): void {
    this.#db.prepare('INSERT OR IGNORE INTO search_evals (key, value, created_at) VALUES (?, ?, ?)').run(key, JSON.stringify(value), Date.now());
  }
}

/** The first setting (in `saved`'s order, then `asked`'s) whose JSON differs, or undefined. */
export function configDiff(saved: Record<string, unknown>, asked: Record<string, unknown>): { key: string; saved: string; asked: string } | undefined {
  for (const key of new Set([...Object.keys(saved), ...Object.keys(asked)])) {
    const a = JSON.stringify(saved[key]);
    const b = JSON.stringify(asked[key]);
    if (a !== b) return { key, saved: a, asked: b };
  }
  return undefined;
}

/**
 * How the cohort's tabular features now (`now`) differ from those a study
 * was planned on (`then`), in words for an error; undefined when they are
 * the same list in the same order. A study's trials, selections and results
 * index the features it was planned on, so they cannot be mixed with trials
 * of another feature list.
 */
export function featureListDiff(then: readonly string[], now: readonly string[]): string | undefined {
  if (then.length === now.length && then.every((f, i) => f === now[i])) return undefined;
  const before = new Set(then);
  const after = new Set(now);
  const added = now.filter((f) => !before.has(f));
  const gone = then.filter((f) => !after.has(f));
  const list = (xs: string[]) => xs.slice(0, 5).map((x) => JSON.stringify(x)).join(', ') + (xs.length > 5 ? ` and ${xs.length - 5} more` : '');
  const parts: string[] = [];
  if (added.length) parts.push(`new column${added.length > 1 ? 's' : ''} ${list(added)}`);
  if (gone.length) parts.push(`no column${gone.length > 1 ? 's' : ''} ${list(gone)}`);
  const counts = `${now.length} feature${now.length === 1 ? '' : 's'} where the study had ${then.length}`;
  if (parts.length) return `${counts}: ${parts.join('; ')}`;
  if (then.length !== now.length) return counts; // a repeated name
  const i = then.findIndex((f, j) => f !== now[j]);
  return `the same features in another order (column ${i} is ${JSON.stringify(now[i])} where the study had ${JSON.stringify(then[i])})`;
}

let tokenCounter = 0;
/** Tokens of the runStudy calls active in this process. */
export const activeTokens = new Set<string>();

export function newOwner(): Owner {
  tokenCounter += 1;
  return { host: os.hostname(), pid: process.pid, token: `${os.hostname()}:${process.pid}:${Date.now().toString(36)}:${tokenCounter}` };
}

/**
 * A running trial is orphaned when its owner is gone: on this host, its
 * process is dead (or it is this process and that runStudy call has ended);
 * on another host, its heartbeat is older than `staleMs`.
 */
export function orphanCheck(owner: Owner, staleMs: number): (t: Trial) => boolean {
  return (t) => {
    if (t.status !== 'running') return false;
    if (t.host === owner.host && t.pid !== null) {
      if (t.pid === owner.pid) return t.token !== owner.token && !activeTokens.has(t.token ?? '');
      return !processAlive(t.pid);
    }
    return t.heartbeat === null || Date.now() - t.heartbeat > staleMs;
  };
}
