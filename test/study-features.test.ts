// A study's trials index the tabular features it was planned on. When the
// cohort's features change under an --out (a column added, excluded or moved),
// a local run, an emit, a trial and a merge into that --out are refused before
// anything is written, instead of mixing trials of two feature lists.
import t, { type Test } from 'tap';
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { synthCardiac } from '../lib/synth';
import { emitStudyJobs, mergeStudy, runStudy, runStudyTrial, StudyStore, type StudyOptions } from '../lib/study';
import { featureListDiff } from '../lib/study/store';

const exec = promisify(execFile);
const bin = path.join(__dirname, '..', 'bin', 'tabsight.js');
const root = fs.mkdtempSync(path.join(os.tmpdir(), 'tabsight-study-features-'));
t.teardown(() => fs.rmSync(root, { recursive: true, force: true }));
const cohort = path.join(root, 'cohort');
const yamlFile = path.join(cohort, 'cohort.yaml');
let yaml = '';
t.before(async () => {
  await synthCardiac({ out: cohort, n: 40, size: 16, seed: 0 });
  yaml = fs.readFileSync(yamlFile, 'utf8');
});
/** The cohort as written, or with `townsend` excluded from its tabular features (the same folder, so the same study settings). */
const setCohort = (excludeTownsend: boolean) => {
  const changed = yaml.replace(/^tabular:\n/m, 'tabular:\n  exclude: [townsend]\n');
  if (excludeTownsend && changed === yaml) throw new Error('cohort.yaml has no tabular block');
  fs.writeFileSync(yamlFile, excludeTownsend ? changed : yaml);
};
// The settings the CLI command below gives (it names the architecture), so that its store matches.
const options = (out: string): StudyOptions => ({
  cohort, out, methods: ['mrmr'], ks: [3], seeds: 1, epochs: 1, probeSeeds: 1, tasks: ['cad'], pretrain: { model: { arch: 'resnet18' } },
});
/** Plans a local study into `out` without training: stopped before its first trial, as a study killed early is. */
async function planLocal(tt: Test, out: string) {
  const stop = new AbortController();
  stop.abort();
  await tt.rejects(runStudy(options(out), { signal: stop.signal }), { code: 'ERR_ABORT' }, 'planned and stopped before training');
}
const storeMeta = (out: string) => {
  const s = StudyStore.open(path.join(out, 'study.sqlite'), { readonly: true });
  try {
    return { info: s.getMeta('info') as { features: string[] }, trials: s.trials().length };
  } finally {
    s.close();
  }
};
const listing = (dir: string) => fs.readdirSync(dir).sort();

t.test('featureListDiff names what was added, what is gone, or the first moved column', async (t) => {
  t.equal(featureListDiff(['a', 'b', 'c'], ['a', 'b', 'c']), undefined, 'the same list');
  t.equal(featureListDiff([], []), undefined);
  t.equal(featureListDiff(['a', 'b'], ['a', 'b', 'c']), '3 features where the study had 2: new column "c"');
  t.equal(featureListDiff(['a', 'b', 'c'], ['a']), '1 feature where the study had 3: no columns "b", "c"');
  t.equal(featureListDiff(['a', 'b'], ['a', 'x']), '2 features where the study had 2: new column "x"; no column "b"');
  t.equal(featureListDiff(['a', 'b', 'c'], ['a', 'c', 'b']), 'the same features in another order (column 1 is "c" where the study had "b")');
  const many = Array.from({ length: 8 }, (_, i) => `f${i}`);
  t.equal(featureListDiff([], many), '8 features where the study had 0: new columns "f0", "f1", "f2", "f3", "f4" and 3 more');
  t.equal(featureListDiff(['a', 'a'], ['a']), '1 feature where the study had 2', 'a repeated name: only the counts');
});

t.test('a local study: its store refuses the changed cohort (run and emit), and nothing is written', async (t) => {
  setCohort(false);
  const out = path.join(root, 'local');
  await planLocal(t, out);
  const before = storeMeta(out);
  t.ok(before.info.features.includes('townsend'));
  t.equal(before.trials, 3, 'all-features, image-only and one mrmr trial');
  const beforeFiles = listing(out);

  setCohort(true);
  const message = /local[/\\]study\.sqlite holds a study planned on other tabular features than the cohort .*cohort has now \(\d+ features where the study had \d+: no column "townsend"\); .*another --out/;
  await t.rejects(runStudy(options(out)), { name: 'ConfigError', code: 'ERR_CONFIG', message });
  await t.rejects(emitStudyJobs(options(out), { scheduler: 'slurm' }), { code: 'ERR_CONFIG', message });
  t.same(storeMeta(out), before, 'the store keeps the features and trials it had');
  t.same(listing(out), beforeFiles, 'no study.json, no slurm folder');

  // The CLI says the same, with the stable code, and exits 1.
  const err = await exec(process.execPath, [bin, 'study', '--cohort', cohort, '--out', out, '--methods', 'mrmr', '--k', '3', '--seeds', '1', '--epochs', '1', '--probe-seeds', '1', '--task', 'cad'])
    .then(() => undefined, (e: { code: number; stderr: string }) => e);
  t.ok(err, 'the CLI refuses');
  t.equal(err?.code, 1);
  t.match(err?.stderr ?? '', /tabsight: ERR_CONFIG: .*study\.sqlite holds a study planned on other tabular features .*no column "townsend"/);

  // The cohort as it was: the study goes on (stopped again before training).
  setCohort(false);
  await planLocal(t, out);
  t.same(storeMeta(out), before);
});

t.test('an emitted study: a local run, a trial and a second emit refuse the changed cohort', async (t) => {
  setCohort(false);
  const out = path.join(root, 'emitted');
  const e = await emitStudyJobs(options(out), { scheduler: 'slurm' });
  t.equal(e.trials, 3);
  const study = fs.readFileSync(e.studyFile, 'utf8');
  const beforeFiles = listing(out);

  setCohort(true);
  const message = /The cohort .* has other tabular features than when .*emitted was emitted \(\d+ features where the study had \d+: no column "townsend"\)/;
  await t.rejects(runStudy(options(out)), { code: 'ERR_CONFIG', message });
  await t.rejects(runStudyTrial(out, 0), { code: 'ERR_CONFIG', message });
  await t.rejects(emitStudyJobs(options(out), { scheduler: 'slurm' }), { code: 'ERR_CONFIG', message });
  t.same(listing(out), beforeFiles, 'no study.sqlite from the local run, no trials folder from the trial');
  t.equal(fs.readFileSync(e.studyFile, 'utf8'), study, 'study.json unchanged');
  setCohort(false);
});

t.test('a merge refuses a store planned on other features than study.json', async (t) => {
  setCohort(false);
  const out = path.join(root, 'merge');
  await planLocal(t, out);
  await emitStudyJobs(options(out), { scheduler: 'slurm' });
  // A store whose record of the features is in another order (as a store from another cohort version would have).
  const s = StudyStore.open(path.join(out, 'study.sqlite'));
  const info = s.getMeta('info') as { features: string[] };
  const [f0, f1, ...rest] = info.features;
  s.setMeta('info', { ...info, features: [f1, f0, ...rest] });
  s.close();
  await t.rejects(mergeStudy(out, { report: false }), {
    code: 'ERR_CONFIG',
    // The features compared are study.json's, and the message says so.
    message: `holds a study planned on other tabular features than ${path.join(out, 'study.json')} records (the same features in another order (column 0 is "${f0}" where the study had "${f1}"))`,
  });
  t.same(storeMeta(out).info.features, [f1, f0, ...rest], 'the store is left as it was');
});
