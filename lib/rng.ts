/** Seeded random streams shared by the TypeScript modules (not the synthetic cohorts, which keep their own generator). */

/** Seeded uniforms in (0, 1) with 53 random bits: sfc32. Same seed, same stream. */
export function uniformStream(seed: number): () => number {
  let a = 0x9e3779b9 ^ (Math.floor(seed / 2 ** 32) >>> 0);
  let b = 0x243f6a88;
  let c = 0xb7e15162;
  let d = seed >>> 0;
  const u32 = (): number => {
    const t = (((a + b) | 0) + d) | 0;
    d = (d + 1) | 0;
    a = b ^ (b >>> 9);
    b = (c + (c << 3)) | 0;
    c = (c << 21) | (c >>> 11);
    c = (c + t) | 0;
    return t >>> 0;
  };
  for (let i = 0; i < 15; i++) u32();
  return () => ((u32() >>> 5) * 67108864 + (u32() >>> 6) + 0.5) / 9007199254740992;
}
