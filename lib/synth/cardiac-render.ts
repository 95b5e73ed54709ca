/**
 * Renders one subject's mid short-axis slice at three frames (channels ED,
 * mid-systole, ES) from the morphology of cardiac-model.ts: a body ellipse
 * with smooth texture, a crescent RV, the LV myocardium as a dark ring of
 * angle-dependent thickness around the bright blood pool, and the scar as a
 * bright, thinned wedge. Edges are anti-aliased (a one-pixel linear ramp of
 * the signed distance, which preserves areas), then each frame is blurred,
 * gets Rician noise and is scaled to uint8 with the subject's scanner
 * settings. See docs/cohorts.md for the geometry conventions.
 */
import { FRAMES, wallProfile, angleDiff, type Acquisition, type Heart } from './cardiac-model';
import { Rng } from './rng';

/** Field of view (mm) across the image, at every size. */
export const FOV_MM = 150;
/** LV centre in patient coordinates (mm from the image centre, x right, y down) before rotation and shift. */
export const LV_CENTRE_MM: [number, number] = [14, 4];
/** Body ellipse semi-axes (mm). */
const BODY: [number, number] = [69, 57];
/** Rendered intensities before noise and scanner scaling (blood pool = 1). */
export const LEVELS = { air: 0, background: 0.55, myocardium: 0.15, blood: 1.0, rvBlood: 0.88, scar: 0.5 } as const;
/** RV free-wall thickness (mm). */
const RV_WALL = 3;
const TEXTURE_AMPLITUDE = 0.025;

export interface RenderedSubject {
  /** LV centre in pixels [row, col]; pixel (r, c) has its centre at (r + 0.5, c + 0.5). */
  lvCentrePx: [number, number];
  rvCentrePx: [number, number];
  /** Scar pixels (coverage ≥ 0.5 in any frame): half-open box [y0, x0, y1, x1] and row-major RLE (runs of 0s, 1s, 0s …). */
  box: [number, number, number, number] | null;
  rle: number[] | null;
}

/** Patient → image rotation by θ counter-clockwise on screen (y down). */
function rotate(x: number, y: number, c: number, s: number): [number, number] {
  return [x * c + y * s, -x * s + y * c];
}

export class CardiacRenderer {
  readonly size: number;
  readonly spacing: number;
  private readonly frame: Float32Array;
  private readonly tmp: Float32Array;
  private readonly mask: Uint8Array;
  private readonly weak: Uint8Array;
  private readonly prof = new Float64Array(360);
  private readonly tex: Float32Array;

  constructor(size: number) {
    this.size = size;
    this.spacing = FOV_MM / size;
    this.frame = new Float32Array(size * size);
    this.tmp = new Float32Array(size * size);
    this.mask = new Uint8Array(size * size);
    this.weak = new Uint8Array(size * size);
    this.tex = new Float32Array(size * size);
  }

  /**
   * Renders subject `heart` with scanner settings `acq` into `out` at
   * `offset` (3·size² bytes, channel-major). `rng` supplies the texture and
   * the noise.
   */
  render(heart: Heart, acq: Acquisition, rng: Rng, out: Uint8Array, offset: number): RenderedSubject {
    const S = this.size, sp = this.spacing, half = S / 2;
    const th = (acq.rotationDeg * Math.PI) / 180;
    const ct = Math.cos(th), st = Math.sin(th);
    const [sx, sy] = acq.shiftMm;
    const toPx = (px: number, py: number): [number, number] => {
      const [X, Y] = rotate(px, py, ct, st);
      return [(Y + sy) / sp + half, (X + sx) / sp + half];
    };
    this.texture(rng, ct, st);
    this.mask.fill(0);
    this.weak.fill(0);
    const scar = heart.scar;
    const soft = (d: number) => (d <= -sp / 2 ? 1 : d >= sp / 2 ? 0 : 0.5 - d / sp);
    const [lx, ly] = LV_CENTRE_MM;
    for (let f = 0; f < FRAMES.length; f++) {
      const prof = wallProfile(heart, f, this.prof);
      let tMax = 0;
      for (let d = 0; d < 360; d++) tMax = Math.max(tMax, prof[d]);
      const r = heart.rEndo[f];
      const reach = r + tMax + 2 * sp;
      const a = heart.rv.a[f], b = heart.rv.b[f];
      const rvx = lx - heart.rv.dist[f], rvy = ly;
      const rvReach = b + RV_WALL + 2 * sp;
      const img = this.frame;
      for (let y = 0; y < S; y++) {
        const v = (y + 0.5 - half) * sp - sy;
        for (let x = 0; x < S; x++) {
          const u = (x + 0.5 - half) * sp - sx;
          const px = u * ct - v * st;
          const py = u * st + v * ct;
          const eb = Math.sqrt((px / BODY[0]) ** 2 + (py / BODY[1]) ** 2);
          const body = soft((eb - 1) * BODY[1]);
          let val = body * (LEVELS.background + this.tex[y * S + x]);
          // right ventricle: free wall, then cavity
          const qx = px - rvx, qy = py - rvy;
          if (Math.abs(qx) < rvReach && Math.abs(qy) < rvReach) {
            const ew = Math.sqrt((qx / (a + RV_WALL)) ** 2 + (qy / (b + RV_WALL)) ** 2);
            const mw = soft((ew - 1) * (a + RV_WALL));
            if (mw > 0) {
              val += (LEVELS.myocardium - val) * mw;
              const ec = Math.sqrt((qx / a) ** 2 + (qy / b) ** 2);
              val += (LEVELS.rvBlood - val) * soft((ec - 1) * a);
            }
          }
          // left ventricle
          const dx = px - lx, dy = py - ly;
          const rho = Math.sqrt(dx * dx + dy * dy);
          if (rho < reach) {
            let phi = (Math.atan2(-dx, -dy) * 180) / Math.PI;
            if (phi < 0) phi += 360;
            const k = Math.floor(phi);
            const w = phi - k;
            const t = prof[k % 360] * (1 - w) + prof[(k + 1) % 360] * w;
            const mEpi = soft(rho - r - t);
            const mEndo = soft(rho - r);
            val += (LEVELS.myocardium - val) * mEpi;
            val += (LEVELS.blood - val) * mEndo;
            if (scar) {
              const arc = ((Math.abs(angleDiff(phi, scar.angleDeg)) - scar.widthDeg / 2) * Math.PI * Math.max(rho, r)) / 180;
              const m = mEpi * (1 - mEndo) * soft(arc) * soft(rho - r - scar.transmurality * t);
              if (m > 0) {
                val += (LEVELS.scar - val) * m;
                if (m >= 0.5) this.mask[y * S + x] = 1;
                this.weak[y * S + x] = 1;
              }
            }
          }
          img[y * S + x] = val;
        }
      }
      this.blur(acq.blurSigmaPx);
      this.store(acq, rng, out, offset + f * S * S);
    }
    const lv = toPx(lx, ly);
    const rv = toPx(lx - heart.rv.dist[0], ly);
    let box: RenderedSubject['box'] = null;
    let rle: number[] | null = null;
    if (scar) {
      const m = this.mask.some((x) => x === 1) ? this.mask : this.weak;
      box = bbox(m, S);
      rle = runLengths(m);
    }
    return { lvCentrePx: lv, rvCentrePx: rv, box, rle };
  }

  /** Low-frequency texture: three plane waves in patient coordinates, made separable in image x and y. */
  private texture(rng: Rng, ct: number, st: number): void {
    const S = this.size, sp = this.spacing, half = S / 2;
    this.tex.fill(0);
    const cx = new Float64Array(S), sx = new Float64Array(S), cy = new Float64Array(S), sy = new Float64Array(S);
    for (let k = 0; k < 3; k++) {
      const kk = (2 * Math.PI) / rng.between(25, 70);
      const psi = rng.between(0, 2 * Math.PI);
      const phase = rng.between(0, 2 * Math.PI);
      const kx = kk * Math.cos(psi), ky = kk * Math.sin(psi);
      // arg = kx·px + ky·py with px = u·c − v·s, py = u·s + v·c, u = (x + .5 − S/2)·sp − shift;
      // the shift only moves the (already random) phase, so it is left out
      const ax = sp * (kx * ct + ky * st);
      const ay = sp * (-kx * st + ky * ct);
      const g = phase + (0.5 - half) * (ax + ay);
      for (let i = 0; i < S; i++) {
        cx[i] = Math.cos(ax * i + g);
        sx[i] = Math.sin(ax * i + g);
        cy[i] = Math.cos(ay * i);
        sy[i] = Math.sin(ay * i);
      }
      for (let y = 0; y < S; y++) {
        for (let x = 0; x < S; x++) this.tex[y * S + x] += TEXTURE_AMPLITUDE * (cx[x] * cy[y] - sx[x] * sy[y]);
      }
    }
  }

  /** Separable Gaussian blur of the frame, edges clamped. */
  private blur(sigma: number): void {
    const S = this.size, a = this.frame, t = this.tmp;
    const rad = Math.max(1, Math.ceil(3 * sigma));
    const kern = new Float64Array(2 * rad + 1);
    let sum = 0;
    for (let k = -rad; k <= rad; k++) sum += kern[k + rad] = Math.exp(-(k * k) / (2 * sigma * sigma));
    for (let k = 0; k < kern.length; k++) kern[k] /= sum;
    for (let y = 0; y < S; y++) {
      for (let x = 0; x < S; x++) {
        let s = 0;
        for (let k = -rad; k <= rad; k++) s += kern[k + rad] * a[y * S + Math.min(S - 1, Math.max(0, x + k))];
        t[y * S + x] = s;
      }
    }
    for (let y = 0; y < S; y++) {
      for (let x = 0; x < S; x++) {
        let s = 0;
        for (let k = -rad; k <= rad; k++) s += kern[k + rad] * t[Math.min(S - 1, Math.max(0, y + k)) * S + x];
        a[y * S + x] = s;
      }
    }
  }

  /** Rician noise, scanner scale and offset, rounding to uint8. */
  private store(acq: Acquisition, rng: Rng, out: Uint8Array, at: number): void {
    const a = this.frame, sg = acq.noiseSigma;
    for (let i = 0; i < a.length; i++) {
      const re = a[i] + sg * rng.normal();
      const im = sg * rng.normal();
      const q = Math.round(255 * (acq.scale * Math.sqrt(re * re + im * im) + acq.offset));
      out[at + i] = q < 0 ? 0 : q > 255 ? 255 : q;
    }
  }
}

function bbox(m: Uint8Array, S: number): [number, number, number, number] | null {
  let y0 = S, x0 = S, y1 = -1, x1 = -1;
  for (let y = 0; y < S; y++) {
    for (let x = 0; x < S; x++) {
      if (!m[y * S + x]) continue;
      if (y < y0) y0 = y;
      if (y > y1) y1 = y;
      if (x < x0) x0 = x;
      if (x > x1) x1 = x;
    }
  }
  return y1 < 0 ? null : [y0, x0, y1 + 1, x1 + 1];
}

function runLengths(m: Uint8Array): number[] {
  const runs: number[] = [];
  let cur = 0, len = 0;
  for (let i = 0; i < m.length; i++) {
    if (m[i] === cur) len++;
    else {
      runs.push(len);
      cur = m[i];
      len = 1;
    }
  }
  runs.push(len);
  return runs;
}
