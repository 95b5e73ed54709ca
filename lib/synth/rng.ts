/**
 * Seeded pseudo-random numbers for the synthetic cohorts: xoshiro128**
 * (Blackman & Vigna) seeded through splitmix32. Pure 32-bit integer maths,
 * so a (seed, stream) pair gives the same numbers on every platform.
 * Math.random is never used.
 */

/** splitmix32 finaliser: a well-mixed 32-bit hash of x. */
export function mix32(x: number): number {
  let z = (x + 0x9e3779b9) | 0;
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
  return (z ^ (z >>> 16)) >>> 0;
}

/** Hashes a seed and any number of stream / sub-stream indices into one 32-bit seed. */
export function streamSeed(seed: number, ...streams: number[]): number {
  let h = mix32(seed >>> 0);
  for (const s of streams) h = mix32((h ^ mix32(s >>> 0)) >>> 0);
  return h;
}

const TWO32 = 4294967296;

export class Rng {
  private s0: number;
  private s1: number;
  private s2: number;
  private s3: number;
  private spare = NaN;

  /** `seed` and `streams` are hashed together; distinct streams are independent sequences. */
  constructor(seed: number, ...streams: number[]) {
    let x = streamSeed(seed, ...streams);
    const next = () => {
      x = (x + 0x9e3779b9) >>> 0;
      return mix32(x);
    };
    this.s0 = next();
    this.s1 = next();
    this.s2 = next();
    this.s3 = next();
    if ((this.s0 | this.s1 | this.s2 | this.s3) === 0) this.s0 = 1;
  }

  /** Next 32-bit unsigned integer (xoshiro128**). */
  u32(): number {
    const s1 = this.s1;
    const r = Math.imul(rotl(Math.imul(s1, 5), 7), 9);
    const t = s1 << 9;
    this.s2 ^= this.s0;
    this.s3 ^= this.s1;
    this.s1 ^= this.s2;
    this.s0 ^= this.s3;
    this.s2 ^= t;
    this.s3 = rotl(this.s3, 11);
    return r >>> 0;
  }

  /** Uniform on [0, 1). */
  uniform(): number {
    return this.u32() / TWO32;
  }

  /** Uniform on [a, b). */
  between(a: number, b: number): number {
    return a + (b - a) * this.uniform();
  }

  /** Standard normal (Box–Muller; the second value of each pair is kept for the next call). */
  normal(): number {
    if (!Number.isNaN(this.spare)) {
      const v = this.spare;
      this.spare = NaN;
      return v;
    }
    const u1 = (this.u32() + 1) / (TWO32 + 1);
    const u2 = this.u32() / TWO32;
    const r = Math.sqrt(-2 * Math.log(u1));
    this.spare = r * Math.sin(2 * Math.PI * u2);
    return r * Math.cos(2 * Math.PI * u2);
  }

  /** 1 with probability p, else 0. */
  bernoulli(p: number): number {
    return this.uniform() < p ? 1 : 0;
  }

  /** Integer uniform on [0, k). */
  int(k: number): number {
    return Math.floor(this.uniform() * k);
  }

  /** Index drawn with the given (unnormalised) weights. */
  categorical(weights: readonly number[]): number {
    let total = 0;
    for (const w of weights) total += w;
    let u = this.uniform() * total;
    for (let k = 0; k < weights.length; k++) {
      u -= weights[k];
      if (u < 0) return k;
    }
    return weights.length - 1;
  }

  /** Fisher–Yates shuffle in place. */
  shuffle<T>(a: T[]): T[] {
    for (let i = a.length - 1; i > 0; i--) {
      const j = this.int(i + 1);
      const t = a[i];
      a[i] = a[j];
      a[j] = t;
    }
    return a;
  }
}

function rotl(x: number, k: number): number {
  return (x << k) | (x >>> (32 - k));
}
