/** Exports a run's image encoder to ONNX, with the run's normalisation baked in. */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ConfigError } from '../errors';
import { writeFileAtomic } from '../io/atomic';
import { readSafetensors } from '../io/safetensors';
import type { ResolvedPretrainConfig } from '../pretrain-options';
import { exportImageEncoder, imageEncoderMeta, type HeadOptions } from './resnet-onnx';

export interface ExportRunOptions {
  /** A linear head to append (e.g. a probe from an evaluation). */
  head?: HeadOptions;
}

/**
 * Writes `out` (ONNX). The model takes images in the cohort's stored range
 * (0–255 for uint8 stores, as floats) at the run's image size, and outputs
 * the pooled embedding (plus the head's outputs when given).
 */
export async function exportRun(runDir: string, out: string, options: ExportRunOptions = {}): Promise<void> {
  const configFile = path.join(runDir, 'config.json');
  if (!fs.existsSync(configFile)) throw new ConfigError(`${runDir} is not a tabsight run: ${configFile} is missing`);
  const config = JSON.parse(fs.readFileSync(configFile, 'utf8')) as ResolvedPretrainConfig;
  const weightsFile = path.join(runDir, 'image_encoder.safetensors');
  const file = await readSafetensors(weightsFile);
  const meta = { ...imageEncoderMeta(file.metadata, weightsFile), imageSize: config.imageSize };
  const scale = config.data.dtype === 'uint8' ? 1 / 255 : 1;
  const bytes = exportImageEncoder(file.tensors, meta, {
    normalize: { mean: config.normalize.mean, std: config.normalize.std, inputScale: scale },
    head: options.head,
    metadata: { run_config: JSON.stringify(config) },
  });
  await writeFileAtomic(out, bytes);
}
