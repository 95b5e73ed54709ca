// StreamRng (native/common/rng.h): std::mt19937_64's sequence, seeded lazily,
// for the augmentation parameters' per-sample streams.
// Oracles: the C++ standard's required 10000th output of a default-seeded
// mt19937_64 (seed 5489), its first outputs as every standard library gives
// them, and std::mt19937_64 itself on the same seeds (_streamRngProbe runs
// both), across the 156th draw where StreamRng hands over to a full engine.
import t from 'tap';
import { _native } from '../lib/index';

type Probe = { stream: string[]; std: string[] };
const probe = (seed: string, draws: number) => _native()._streamRngProbe(seed, draws) as Probe;

t.test('seed 5489: the standard\'s values', async (t) => {
  const r = probe('5489', 10000);
  t.same(r.stream.slice(0, 3), ['14514284786278117030', '4620546740167642908', '13109570281517897720'], 'first three outputs');
  t.equal(r.stream[9999], '9981545732273789042', '10000th output (C++ standard, [rand.predef])');
  t.same(r.stream, r.std, 'all 10000 equal std::mt19937_64');
});

t.test('every draw equals std::mt19937_64\'s, before and after the 156th', async (t) => {
  const seeds = ['0', '1', '42', '18446744073709551615', '9223372036854775808', '6364136223846793005'];
  // seeds like DeriveSeed's: spread over 64 bits
  let x = 0x9e3779b97f4a7c15n;
  for (let i = 0; i < 20; i++) {
    x = (x * 6364136223846793005n + 1442695040888963407n) & 0xffffffffffffffffn;
    seeds.push(x.toString());
  }
  for (const seed of seeds) {
    for (const draws of [0, 1, 20, 155, 156, 157, 400]) {
      const r = probe(seed, draws);
      t.equal(r.stream.length, draws);
      const first = r.stream.findIndex((v, i) => v !== r.std[i]);
      t.equal(first, -1, `seed ${seed}, ${draws} draws: ${first < 0 ? 'identical' : `first difference at draw ${first + 1}`}`);
    }
  }
});

t.test('the probe rejects seeds outside [0, 2^64) and bad draw counts with ERR_CONFIG', async (t) => {
  for (const seed of ['-1', '18446744073709551616', '1e3', '']) {
    t.throws(() => probe(seed, 1), { code: 'ERR_CONFIG' }, `seed "${seed}"`);
  }
  t.throws(() => probe('1', 20001), { code: 'ERR_CONFIG' });
  t.throws(() => probe('1', 1.5), { code: 'ERR_CONFIG' });
});
