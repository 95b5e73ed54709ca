// A toy paired dataset whose images show their tabular row: a bright square
// with the row's size and position. Contrastive pretraining can learn it.
export function toyCohort(n: number, size = 16, seed = 1) {
  let s = seed >>> 0;
  const rand = () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
  const images = new Uint8Array(n * size * size);
  const features = 4;
  const tabular = new Float32Array(n * features);
  const labels = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const side = 3 + Math.floor(rand() * (size / 2));
    const y0 = Math.floor(rand() * (size - side));
    const x0 = Math.floor(rand() * (size - side));
    const level = 120 + Math.floor(rand() * 135);
    for (let y = 0; y < size; y++) {
      for (let x = 0; x < size; x++) {
        const inside = y >= y0 && y < y0 + side && x >= x0 && x < x0 + side;
        images[i * size * size + y * size + x] = inside ? level : Math.floor(rand() * 30);
      }
    }
    tabular.set([side / size, y0 / size, x0 / size, level / 255].map((v) => (v - 0.4) * 4), i * features);
    labels[i] = side > size / 4 ? 1 : 0;
  }
  return { images, tabular, labels, shape: [n, 1, size, size] as [number, number, number, number], features };
}

export const tinyModel = { arch: 'resnet18' as const, smallStem: true, tabularHidden: 32, tabularLayers: 2, projectionHidden: 32, projectionDim: 16 };

/** One Adam step (lr 1e-3) of tinyModel on a 16-subject toy cohort: the options the training A/B tests share. */
export function oneStepOptions() {
  const toy = toyCohort(16);
  const lr = 1e-3;
  const base = {
    images: { data: toy.images, shape: toy.shape }, tabular: { data: toy.tabular, shape: [16, toy.features] },
    batchSize: 16, lr, warmupEpochs: 0, epochs: 1, model: tinyModel, augment: { rate: 0 }, seed: 5,
  };
  return { toy, lr, base };
}
