// End to end through the CLI: synth → validate → pretrain → evaluate --json.
import t from 'tap';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

const run = promisify(execFile);
const bin = path.join(__dirname, '..', 'bin', 'tabsight.js');
const root = fs.mkdtempSync(path.join(os.tmpdir(), 'tabsight-pipeline-'));
t.teardown(() => fs.rmSync(root, { recursive: true, force: true }));
const cli = (...args: string[]) => run(process.execPath, [bin, ...args], { maxBuffer: 1 << 24 });

t.test('tabsight synth → validate → pretrain (2 epochs) → evaluate --json gives finite metrics for every task', async (t) => {
  const cohort = path.join(root, 'cardiac');
  await cli('synth', 'cardiac', '--out', cohort, '--n', '240', '--size', '32', '--seed', '3');
  const summary = (await cli('validate', '--cohort', cohort)).stdout;
  t.match(summary, /240/, 'the summary counts the subjects');
  const config = path.join(root, 'exp.yaml');
  fs.writeFileSync(config, 'pretrain:\n  epochs: 2\n  batchSize: 32\n  lr: 0.001\n  model: { arch: resnet18, smallStem: false, tabularHidden: 64, projectionHidden: 64, projectionDim: 32 }\nevaluate:\n  seeds: 2\n');
  const runDir = path.join(root, 'run');
  await cli('pretrain', '--cohort', cohort, '--out', runDir, '--config', config);
  const cfg = JSON.parse(fs.readFileSync(path.join(runDir, 'config.json'), 'utf8'));
  t.equal(cfg.epochs, 2, 'the config file was applied');
  t.equal(cfg.data.trainRows, JSON.parse(fs.readFileSync(path.join(runDir, 'config.json'), 'utf8')).meta.splitSizes.train, 'trained on the train split only');
  t.ok(fs.existsSync(path.join(runDir, 'preprocessor.json')));
  const { stdout } = await cli('evaluate', '--run', runDir, '--config', config, '--json');
  const result = JSON.parse(stdout);
  const tasks = Object.keys(result.tasks);
  t.same(tasks.sort(), ['cad', 'hypertrophy', 'infarction', 'lvef', 'nyha']);
  for (const task of tasks) {
    for (const [metric, s] of Object.entries(result.tasks[task]) as [string, { mean: number; values: number[] }][]) {
      t.ok(Number.isFinite(s.mean) && s.values.length === 2, `${task} ${metric} = ${s.mean}`);
    }
  }
  t.ok('auc' in result.tasks.infarction && 'r2' in result.tasks.lvef);

  // --all-tasks overrides the file's evaluate.tasks; --task overrides it too.
  const narrow = path.join(root, 'narrow.yaml');
  fs.writeFileSync(narrow, 'evaluate:\n  seeds: 1\n  tasks: [infarction]\n');
  const all = JSON.parse((await cli('evaluate', '--run', runDir, '--config', narrow, '--all-tasks', '--json')).stdout);
  t.same(Object.keys(all.tasks).sort(), ['cad', 'hypertrophy', 'infarction', 'lvef', 'nyha'], '--all-tasks beats the config file');
  const one = JSON.parse((await cli('evaluate', '--run', runDir, '--config', narrow, '--task', 'lvef', '--json')).stdout);
  t.same(Object.keys(one.tasks), ['lvef'], '--task beats the config file');
  const both = await cli('evaluate', '--run', runDir, '--task', 'lvef', '--all-tasks').catch((e) => e);
  t.match(both.stderr, /ERR_CONFIG: Give --task or --all-tasks, not both/);
});

t.test('the CLI reports bad input as one line with its code and exits non-zero', async (t) => {
  const err = await cli('pretrain', '--cohort', path.join(root, 'missing'), '--out', path.join(root, 'x')).catch((e) => e);
  t.equal(err.code, 1);
  t.match(err.stderr, /^tabsight: ERR_DATA: .*missing/m);
  t.notOk(fs.existsSync(path.join(root, 'x')), 'nothing was written');
  const bad = path.join(root, 'bad.yaml');
  fs.writeFileSync(bad, 'pretrain:\n  epochz: 3\n');
  const err2 = await cli('pretrain', '--cohort', path.join(root, 'cardiac'), '--out', path.join(root, 'y'), '--config', bad).catch((e) => e);
  t.match(err2.stderr, /ERR_CONFIG: .*bad\.yaml: pretrain: .*epochz/);
  const blur = path.join(root, 'blur.yaml');
  fs.writeFileSync(blur, 'pretrain:\n  augment:\n    blurKernel: -3\n');
  const errBlur = await cli('pretrain', '--cohort', path.join(root, 'cardiac'), '--out', path.join(root, 'y2'), '--config', blur).catch((e) => e);
  t.match(errBlur.stderr, /ERR_CONFIG: .*blur\.yaml: pretrain: .*augment\.blurKernel/, 'a rule the schema cannot check still names the file');
  const err3 = await cli('pretrain', '--epochs', 'three', '--out', 'z', '--cohort', 'c').catch((e) => e);
  t.match(err3.stderr, /Expected an integer for --epochs but received "three"/);
});

t.test('select takes one --method, and passes --device to the attribution ranking', async (t) => {
  const cohort = path.join(root, 'cardiac'); // from the first subtest
  const two = await cli('select', '--cohort', cohort, '--method', 'mrmr,jmi', '--k', '2').catch((e) => e);
  t.equal(two.code, 1);
  t.match(two.stderr, /Expected one method but received 2 \(mrmr, jmi\); select runs one, `tabsight study --methods` compares several/);
  // It ran on the CPU without a word; now the device reaches the encoder. A device no machine has
  // (CUDA device 99) is refused by name, on a CPU build and on a GPU node alike.
  const gpu = await cli('select', '--cohort', cohort, '--method', 'attribution', '--run', path.join(root, 'run'), '--k', '2', '--device', 'cuda:99').catch((e) => e);
  t.equal(gpu.code, 1, 'refused');
  t.match(gpu.stderr, /ERR_CONFIG: .*cuda:99/);
});

t.test('evaluate --protocol finetune tunes and probes on one label-fraction subset', async (t) => {
  const { evaluateRun } = await import('../lib/pipeline/evaluate');
  const { loadCohort } = await import('../lib/data/cohort');
  const cohortDir = path.join(root, 'cardiac'); // from the first subtest
  const cohort = await loadCohort(cohortDir);
  const lines: string[] = [];
  const r = await evaluateRun({ run: path.join(root, 'run'), cohort: cohortDir, tasks: ['infarction'], protocol: 'finetune', labelFraction: 0.1, seeds: 2, finetuneEpochs: 1, log: (l) => lines.push(l) });
  const tuned = lines.find((l) => l.startsWith('fine-tuning on'));
  const probed = lines.find((l) => l.startsWith('probing infarction'));
  const k = Number(/fine-tuning on (\d+)/.exec(tuned ?? '')?.[1]);
  // 10% of the labelled train subjects (stratified: per class, largest remainder, at least 1 each).
  const train = cohort.splits.train.length;
  t.ok(k >= 2 && k <= Math.ceil(0.1 * train) + 1, `fine-tuned on ${k} of ${train} train subjects`);
  t.match(probed, new RegExp(`on ${k}/`), 'the probes train on the same subset');
  t.ok(r.tasks.infarction.auc.values.every(Number.isFinite) && r.tasks.infarction.auc.values.length === 2);
  t.equal(r.labelFraction, 0.1);
});

t.test('evaluate names the task, labels file and class label of a probe error, and saves no head when a task fails', async (t) => {
  const src = path.join(root, 'cardiac'); // from the first subtest
  const cohort = path.join(root, 'cardiac-no-nyha4');
  fs.cpSync(src, cohort, { recursive: true });
  const split = new Map(fs.readFileSync(path.join(src, 'splits.csv'), 'utf8').trim().split('\n').slice(1).map((l) => l.split(',') as [string, string]));
  const [header, ...rows] = fs.readFileSync(path.join(src, 'labels.csv'), 'utf8').trim().split('\n');
  const col = header.split(',').indexOf('nyha');
  const labels = [...new Set(rows.map((l) => l.split(',')[col]))].sort();
  const dropped = labels[labels.length - 1];
  let moved = 0;
  const out = rows.map((l) => {
    const cells = l.split(',');
    if (split.get(cells[0]) === 'test' && cells[col] === dropped) [cells[col], moved] = [labels[0], moved + 1];
    return cells.join(',');
  });
  t.ok(moved > 0, `${moved} test rows moved off nyha label "${dropped}"`);
  fs.writeFileSync(path.join(cohort, 'labels.csv'), [header, ...out].join('\n') + '\n');
  const run = path.join(root, 'run-heads');
  fs.cpSync(path.join(root, 'run'), run, { recursive: true });
  const err = await cli('evaluate', '--run', run, '--cohort', cohort, '--seeds', '1', '--save-heads').catch((e) => e);
  t.equal(err.code, 1);
  const index = labels.indexOf(dropped);
  t.match(err.stderr, new RegExp(`ERR_DATA: .*labels\\.csv: task "nyha": class "${dropped}" has no labelled row in the test split \\(its test AUC is undefined\\)`));
  t.notMatch(err.stderr, /embedding|probing/, 'refused before the cohort is embedded');
  t.notOk(fs.existsSync(path.join(run, 'heads')) && fs.readdirSync(path.join(run, 'heads')).length > 0, 'no head was written');
  // The error lists the tasks that can be scored, as --task takes them.
  const others = /--task ([^(]+) \(option tasks\)/.exec(err.stderr)?.[1].trim().split(' ') ?? [];
  const all = header.split(',').slice(1);
  t.same(others, all.filter((n) => n !== 'nyha'), 'every other task is offered');
  const ok = await cli('evaluate', '--run', run, '--cohort', cohort, '--seeds', '1', '--json', '--task', ...others);
  t.same(Object.keys(JSON.parse(ok.stdout).tasks).sort(), [...others].sort(), 'and evaluates with that --task');
  // A regression task with one labelled val row: R² needs two.
  const lvef = header.split(',').indexOf('lvef');
  let kept = 0;
  const sparse = out.map((l) => {
    const cells = l.split(',');
    if (split.get(cells[0]) === 'val' && cells[lvef] !== '' && kept++ > 0) cells[lvef] = 'NA';
    return cells.join(',');
  });
  fs.writeFileSync(path.join(cohort, 'labels.csv'), [header, ...sparse].join('\n') + '\n');
  const one = await cli('evaluate', '--run', run, '--cohort', cohort, '--seeds', '1', '--task', 'lvef', 'cad').catch((e) => e);
  t.match(one.stderr, /ERR_DATA: .*labels\.csv: task "lvef": the val split has 1 labelled row\(s\); R² needs at least 2\. evaluate the others with --task cad/);
});
