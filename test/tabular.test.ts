import t from 'tap';
import { corruptTabular, encodeTabular, DataError } from '../lib/index';

const f = 10;
const b = 50;
const m = 7;
const rows = new Float32Array(b * f).fill(-100); // never a marginal value
const marginals = new Float32Array(m * f).map((_, i) => (i % f) * 1000 + Math.floor(i / f)); // column c, row r → 1000c + r

t.test('corruptTabular replaces floor(rate·F) features per row with values from the same column of the marginals', async (t) => {
  for (const rate of [0, 0.3, 0.55, 1]) {
    const out = corruptTabular(rows, [b, f], marginals, m, rate, 3);
    const expected = Math.floor(rate * f);
    for (let r = 0; r < b; r++) {
      let replaced = 0;
      for (let c = 0; c < f; c++) {
        const v = out[r * f + c];
        if (v === -100) continue;
        replaced++;
        t.equal(Math.floor(v / 1000), c, 'value comes from its own column');
        t.ok(v % 1000 < m, 'and from one of the marginal rows');
      }
      if (replaced !== expected) t.fail(`row ${r} replaced ${replaced}, expected ${expected}`);
    }
  }
});

t.test('corruptTabular is deterministic by seed and draws columns uniformly', async (t) => {
  const a = corruptTabular(rows, [b, f], marginals, m, 0.3, 11);
  const a2 = corruptTabular(rows, [b, f], marginals, m, 0.3, 11);
  const c = corruptTabular(rows, [b, f], marginals, m, 0.3, 12);
  t.same(Array.from(a), Array.from(a2));
  t.notSame(Array.from(a), Array.from(c));
  // Over many rows every column is chosen about 30% of the time.
  const big = 4000;
  const many = corruptTabular(new Float32Array(big * f).fill(-100), [big, f], marginals, m, 0.3, 5);
  for (let col = 0; col < f; col++) {
    let hits = 0;
    for (let r = 0; r < big; r++) if (many[r * f + col] !== -100) hits++;
    t.ok(Math.abs(hits / big - 0.3) < 0.03, `column ${col} chosen ${(hits / big).toFixed(3)}`);
  }
});

t.test('encodeTabular one-hot encodes categorical codes and passes continuous values through', async (t) => {
  // columns: continuous, categorical(3), continuous, categorical(2)
  const data = Float32Array.from([0.5, 2, -1.25, 0, /* row 2 */ 3, -1, 7, 1]);
  const out = encodeTabular(data, [2, 4], [0, 3, 0, 2]);
  t.same(out.shape, [2, 7]);
  t.same(Array.from(out.data), [0.5, 0, 0, 1, -1.25, 1, 0, /* unseen category → zeros */ 3, 0, 0, 0, 7, 0, 1]);
  t.throws(() => encodeTabular(Float32Array.from([0, 3]), [1, 2], [0, 3]), { code: 'ERR_DATA', message: /row 0, column 1/ });
  t.throws(() => encodeTabular(Float32Array.from([0, 1.5]), [1, 2], [0, 3]), DataError);
  t.throws(() => encodeTabular(Float32Array.from([0, 1]), [1, 2], [0]), { code: 'ERR_SHAPE' });
});
