/**
 * The SLURM array script of an emitted study (docs/study-jobs.md): one array
 * task per trial, each running `tabsight study --out STUDY --trial
 * $SLURM_ARRAY_TASK_ID`. Only the #SBATCH lines a study needs are written;
 * the rest is the cluster's default (or an sbatch flag at submit time, which
 * overrides the script's lines).
 */
import { ConfigError } from '../errors';
import * as is from '../validate';

export interface SlurmOptions {
  /** Wall-time limit per array task (`#SBATCH --time`), in SLURM's forms: MM, MM:SS, HH:MM:SS, D-HH, D-HH:MM, D-HH:MM:SS. @default the partition's */
  time?: string;
  /** Partition, or a comma-separated list (`#SBATCH --partition`). @default the cluster's */
  partition?: string;
  /** GPUs per array task (`#SBATCH --gres=gpu:N`); pair it with pretrain.device 'cuda'. @default none */
  gpus?: number;
  /** CPUs per array task (`#SBATCH --cpus-per-task`); LibTorch uses the CPUs SLURM binds the task to. @default the cluster's (often 1) */
  cpus?: number;
}

const TIME = /^(\d+-\d+(:\d{1,2}){0,2}|\d+(:\d{1,2}){0,2})$/;
const PARTITION = /^[A-Za-z0-9_.-]+(,[A-Za-z0-9_.-]+)*$/;

/** Checks SlurmOptions (messages name the CLI flag too). */
export function checkSlurmOptions(value: unknown): SlurmOptions {
  const o = is.plainObject(value ?? {}, 'slurm');
  is.knownKeys(o, 'slurm', ['time', 'partition', 'gpus', 'cpus']);
  const out: SlurmOptions = {};
  if (o.time !== undefined) {
    if (typeof o.time !== 'string' || !TIME.test(o.time)) {
      throw new ConfigError(`Expected a SLURM time (MM, MM:SS, HH:MM:SS, D-HH, D-HH:MM or D-HH:MM:SS) for slurm.time (--slurm-time) but received ${JSON.stringify(o.time)}`);
    }
    out.time = o.time;
  }
  if (o.partition !== undefined) {
    if (typeof o.partition !== 'string' || !PARTITION.test(o.partition)) {
      throw new ConfigError(`Expected a partition name (letters, digits, _ . -; several separated by commas) for slurm.partition (--slurm-partition) but received ${JSON.stringify(o.partition)}`);
    }
    out.partition = o.partition;
  }
  if (o.gpus !== undefined) out.gpus = is.positiveInteger(o.gpus, 'slurm.gpus (--slurm-gpus)');
  if (o.cpus !== undefined) out.cpus = is.positiveInteger(o.cpus, 'slurm.cpus (--slurm-cpus)');
  return out;
}

/** Quotes a word for bash. */
export const shellQuote = (s: string) => (/^[A-Za-z0-9_@%+=:,./-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`);

export interface SbatchSpec {
  /** The study directory (absolute). */
  out: string;
  /** Number of trials: the array is 0…trials−1. */
  trials: number;
  jobName: string;
  /** Absolute paths of node and of bin/tabsight.js. */
  node: string;
  cli: string;
  slurm: SlurmOptions;
  /** Where the array tasks' logs go (absolute; the folder must exist before submission). */
  logs: string;
}

/** The sbatch script's text. */
export function sbatchScript(spec: SbatchSpec): string {
  const { out, slurm } = spec;
  for (const [what, p] of [['--out', out], ['the log folder', spec.logs]] as const) {
    if (/\s/.test(p)) throw new ConfigError(`#SBATCH lines cannot hold ${what} path "${p}" (it contains whitespace); choose a study directory whose path has no spaces`);
  }
  const logs = spec.logs.replace(/%/g, '%%'); // % starts a SLURM filename pattern
  const lines = [
    '#!/bin/bash',
    `#SBATCH --job-name=${spec.jobName}`,
    `#SBATCH --array=0-${spec.trials - 1}`,
    `#SBATCH --output=${logs}/%A_%a.out`,
    `#SBATCH --error=${logs}/%A_%a.err`,
  ];
  if (slurm.time !== undefined) lines.push(`#SBATCH --time=${slurm.time}`);
  if (slurm.partition !== undefined) lines.push(`#SBATCH --partition=${slurm.partition}`);
  if (slurm.cpus !== undefined) lines.push(`#SBATCH --cpus-per-task=${slurm.cpus}`);
  if (slurm.gpus !== undefined) lines.push(`#SBATCH --gres=gpu:${slurm.gpus}`);
  lines.push(
    '#',
    '# A tabsight feature-selection study as a SLURM array (written by `tabsight study --emit slurm`).',
    `# Array task i runs trial i of ${spec.out}/study.json (listed in slurm/trials.tsv) and writes`,
    '# trials/<trial>/result.json; a task that runs again skips a finished trial and resumes a',
    `# half-done one from its checkpoint. After the array:  tabsight study --out ${out} --merge`,
    '# Set TABSIGHT_NODE to use another node binary on the compute nodes.',
    'set -euo pipefail',
    ': "${SLURM_ARRAY_TASK_ID:?submit this script with sbatch, or set SLURM_ARRAY_TASK_ID to a trial ID}"',
    // The path on a line of its own, single-quoted: inside ${…:-…} a `}` in it ended the expansion early.
    `NODE=${shellQuote(spec.node)}`,
    `exec "\${TABSIGHT_NODE:-$NODE}" ${shellQuote(spec.cli)} study --out ${shellQuote(out)} --trial "$SLURM_ARRAY_TASK_ID"`,
    '',
  );
  return lines.join('\n');
}
