/** A terminal progress bar for training, quiet when stderr is not a TTY. */
import * as cliProgress from 'cli-progress';
import type { TrainProgress } from '../pretrain';

export function trainingBar(label: string): { update: (p: TrainProgress) => void; stop: () => void } {
  if (!process.stderr.isTTY) {
    return {
      update: (p) => {
        if (p.epochDone) {
          process.stderr.write(`${label} epoch ${p.epoch + 1}: loss ${p.epochLoss?.toFixed(4)} top1 ${p.retrievalTop1?.toFixed(3)} lr ${p.lr.toExponential(2)} ${p.imagesPerSec.toFixed(1)} img/s\n`);
        }
      },
      stop: () => undefined,
    };
  }
  const bar = new cliProgress.SingleBar({
    format: `${label} {bar} {value}/{total} steps | epoch {epoch} | loss {loss} | lr {lr} | {ips} img/s`,
    stream: process.stderr,
    hideCursor: true,
  }, cliProgress.Presets.shades_classic);
  let started = false;
  return {
    update: (p) => {
      const payload = { epoch: p.epoch + 1, loss: p.loss.toFixed(4), lr: p.lr.toExponential(2), ips: p.imagesPerSec.toFixed(1) };
      if (!started) {
        bar.start(p.totalSteps, p.step, payload);
        started = true;
      }
      bar.update(p.step, payload);
    },
    stop: () => bar.stop(),
  };
}
