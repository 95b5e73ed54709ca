/**
 * DICOM Part 10 files with uncompressed little-endian pixel data (Implicit
 * or Explicit VR Little Endian), one sample per pixel, 8 or 16 bits
 * allocated, signed or unsigned, single- or multi-frame.
 *
 * Values are modality values: stored value × RescaleSlope + RescaleIntercept
 * (slope 1, intercept 0 when absent). Nothing else is applied: no VOI window,
 * and MONOCHROME1 images are not inverted (see `meta.photometricInterpretation`).
 */
import * as dicomParser from 'dicom-parser';
import { DataError } from '../errors';
import { string } from '../validate';
import { readInputFile } from '../io/read';

export interface DicomMeta {
  rows: number;
  columns: number;
  frames: number;
  bitsAllocated: number;
  bitsStored: number;
  /** 0 unsigned, 1 two's complement. */
  pixelRepresentation: number;
  photometricInterpretation: string;
  /** Frame 0's rescale (Enhanced multi-frame functional groups may give each frame its own; `data` applies each). */
  rescaleSlope: number;
  rescaleIntercept: number;
  transferSyntaxUID: string;
  modality?: string;
  /** Row spacing, column spacing in mm (0028,0030). */
  pixelSpacing?: [number, number];
  sliceThickness?: number;
  sliceLocation?: number;
  triggerTime?: number;
  instanceNumber?: number;
  seriesDescription?: string;
  seriesInstanceUID?: string;
  sopInstanceUID?: string;
}

export interface DicomImage {
  /** Modality values, frames × rows × columns, row-major. */
  data: Float32Array;
  /** `[frames, rows, columns]`; frames is 1 for a single-frame image. */
  shape: [number, number, number];
  meta: DicomMeta;
}

const SUPPORTED: Record<string, string> = {
  '1.2.840.10008.1.2': 'Implicit VR Little Endian',
  '1.2.840.10008.1.2.1': 'Explicit VR Little Endian',
};
const KNOWN: Record<string, string> = {
  '1.2.840.10008.1.2.1.99': 'Deflated Explicit VR Little Endian',
  '1.2.840.10008.1.2.2': 'Explicit VR Big Endian',
  '1.2.840.10008.1.2.4.50': 'JPEG Baseline',
  '1.2.840.10008.1.2.4.51': 'JPEG Extended',
  '1.2.840.10008.1.2.4.57': 'JPEG Lossless',
  '1.2.840.10008.1.2.4.70': 'JPEG Lossless SV1',
  '1.2.840.10008.1.2.4.80': 'JPEG-LS Lossless',
  '1.2.840.10008.1.2.4.81': 'JPEG-LS Near-Lossless',
  '1.2.840.10008.1.2.4.90': 'JPEG 2000 Lossless',
  '1.2.840.10008.1.2.4.91': 'JPEG 2000',
  '1.2.840.10008.1.2.4.201': 'HTJ2K Lossless',
  '1.2.840.10008.1.2.4.202': 'HTJ2K Lossless RPCL',
  '1.2.840.10008.1.2.4.203': 'HTJ2K',
  '1.2.840.10008.1.2.5': 'RLE Lossless',
};

/** dicom-parser throws strings and `{exception, dataSet}` objects; this gets the text out. */
function parserMessage(err: unknown): string {
  if (typeof err === 'string') return err;
  if (err && typeof err === 'object' && 'exception' in err) return parserMessage((err as { exception: unknown }).exception);
  if (err instanceof Error) return err.message;
  return String(err);
}

function parseError(file: string, err: unknown): DataError {
  const msg = parserMessage(err);
  if (/DICM prefix not found/.test(msg)) {
    return new DataError(`${file} is not a DICOM Part 10 file (no 'DICM' prefix at byte 128)`, { cause: err });
  }
  if (/overrun|past end|beyond|outside the bounds/i.test(msg)) {
    return new DataError(`${file} is truncated or corrupt: ${msg}`, { cause: err });
  }
  return new DataError(`${file} is not a readable DICOM file: ${msg}`, { cause: err });
}

function required(ds: dicomParser.DataSet, file: string, tag: string, name: string): number {
  const v = ds.uint16(tag);
  if (v === undefined) throw new DataError(`${file} has no ${name} (${tag.slice(1, 5)},${tag.slice(5)}) element`);
  return v;
}

function optionalString(ds: dicomParser.DataSet, tag: string): string | undefined {
  const s = ds.string(tag);
  return s === undefined || s === '' ? undefined : s;
}

function optionalNumber(ds: dicomParser.DataSet, tag: string): number | undefined {
  const v = ds.floatString(tag);
  return v === undefined || !Number.isFinite(v) ? undefined : v;
}

/** Reads a DICOM image; see the module comment for what is supported. */

type DicomDataSet = ReturnType<typeof dicomParser.parseDicom>;

/** RescaleSlope/RescaleIntercept of a data set, or of the first item of its Pixel Value Transformation Sequence (0028,9145). */
function rescaleOf(ds: DicomDataSet | undefined, file: string): { slope?: number; inter?: number } {
  if (!ds) return {};
  const own = ds.elements.x00289145?.items?.[0]?.dataSet;
  const from = own ?? ds;
  // Present but not a finite number ("abc", "1e999") is an error: taken as absent, every value would be off silently.
  const read = (tag: string, name: string): number | undefined => {
    const text = from.string(tag);
    if (text === undefined || text.trim() === '') return undefined;
    const v = from.floatString(tag);
    if (v === undefined || !Number.isFinite(v)) throw new DataError(`${file} has ${name} ${JSON.stringify(text.slice(0, 40))}, which is not a finite number`);
    return v;
  };
  return { slope: read('x00281053', 'RescaleSlope (0028,1053)'), inter: read('x00281052', 'RescaleIntercept (0028,1052)') };
}

/**
 * The modality rescale of each frame. Enhanced multi-frame objects keep it in
 * the functional groups: a frame's Per-frame Functional Groups item (5200,9230)
 * wins over the Shared Functional Groups (5200,9229), which win over the top
 * level. Elsewhere, the top-level RescaleSlope/RescaleIntercept apply to all.
 */
function frameRescale(ds: DicomDataSet, file: string, frames: number): { slope: number; inter: number }[] {
  const top = rescaleOf(ds, file);
  const shared = rescaleOf(ds.elements.x52009229?.items?.[0]?.dataSet, file);
  const perFrame = ds.elements.x52009230?.items;
  if (perFrame && perFrame.length !== frames) {
    throw new DataError(`${file} has ${perFrame.length} Per-frame Functional Groups items (5200,9230) but NumberOfFrames ${frames}`);
  }
  return Array.from({ length: frames }, (_, f) => {
    const own = rescaleOf(perFrame?.[f]?.dataSet, file);
    return { slope: own.slope ?? shared.slope ?? top.slope ?? 1, inter: own.inter ?? shared.inter ?? top.inter ?? 0 };
  });
}

export async function readDicom(file: string): Promise<DicomImage> {
  string(file, 'path');
  const buf = await readInputFile(file);
  const bytes = new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
  try {
    return decode(file, bytes);
  } catch (err) {
    // dicom-parser throws strings and plain objects from deep inside; none of that escapes as is.
    if (err instanceof DataError) throw err;
    throw parseError(file, err);
  }
}

function decode(file: string, bytes: Uint8Array): DicomImage {
  // The file meta group first, so that unsupported transfer syntaxes are refused before the body is parsed.
  const meta = dicomParser.readPart10Header(bytes);
  const ts = (meta.string('x00020010') ?? '').replace(/\0/g, '').trim();
  if (!ts) {
    const groupLength = meta.uint32('x00020000');
    if (groupLength === undefined || bytes.length < 144 + groupLength) {
      throw new DataError(`${file} is truncated or corrupt: its file meta information ends before the Transfer Syntax UID (${bytes.length} bytes)`);
    }
    throw new DataError(`${file} has no Transfer Syntax UID (0002,0010) in its file meta information`);
  }
  if (!SUPPORTED[ts]) {
    throw new DataError(
      `${file} uses transfer syntax ${ts}${KNOWN[ts] ? ` (${KNOWN[ts]})` : ''}, which is not supported; ` +
        `supported: ${Object.entries(SUPPORTED).map(([uid, name]) => `${name} (${uid})`).join(', ')}. ` +
        `Decompress it first, e.g. with gdcmconv --raw or dcmdjpeg.`,
    );
  }

  const ds = dicomParser.parseDicom(bytes);

  const rows = required(ds, file, 'x00280010', 'Rows');
  const columns = required(ds, file, 'x00280011', 'Columns');
  const bitsAllocated = required(ds, file, 'x00280100', 'BitsAllocated');
  const bitsStored = ds.uint16('x00280101') ?? bitsAllocated;
  const pixelRepresentation = ds.uint16('x00280103') ?? 0;
  const samples = ds.uint16('x00280002') ?? 1;
  const frames = ds.intString('x00280008') ?? 1;
  if (rows < 1 || columns < 1) throw new DataError(`${file} has an empty image: Rows ${rows}, Columns ${columns}`);
  if (samples !== 1) {
    throw new DataError(`${file} has SamplesPerPixel ${samples}${samples > 1 ? ' (colour)' : ''}; only single-sample (greyscale) images are supported`);
  }
  // One sample is greyscale, except PALETTE COLOR: its values index a colour table, they are not intensities.
  const photometric = optionalString(ds, 'x00280004') ?? 'MONOCHROME2';
  if (photometric !== 'MONOCHROME1' && photometric !== 'MONOCHROME2') {
    throw new DataError(`${file} has PhotometricInterpretation ${photometric}; only greyscale images (MONOCHROME1, MONOCHROME2) are supported`);
  }
  if (bitsAllocated !== 8 && bitsAllocated !== 16) {
    throw new DataError(`${file} has BitsAllocated ${bitsAllocated}; only 8 and 16 are supported`);
  }
  if (bitsStored < 1 || bitsStored > bitsAllocated) {
    throw new DataError(`${file} has BitsStored ${bitsStored}, which must be between 1 and BitsAllocated ${bitsAllocated}`);
  }
  if (!Number.isInteger(frames) || frames < 1) {
    throw new DataError(`${file} has NumberOfFrames ${frames}, expected a positive integer`);
  }
  const pixel = ds.elements.x7fe00010;
  if (!pixel) throw new DataError(`${file} has no Pixel Data (7FE0,0010) element`);
  if (pixel.encapsulatedPixelData) throw new DataError(`${file} has encapsulated (compressed) pixel data, which is not supported`);
  const bytesPer = bitsAllocated / 8;
  const count = frames * rows * columns;
  const needed = count * bytesPer;
  const available = Math.min(pixel.length, bytes.length - pixel.dataOffset);
  if (available < needed) {
    throw new DataError(
      `${file} is truncated: ${frames}×${rows}×${columns} pixels of ${bitsAllocated} bits need ${needed} bytes of pixel data, ` +
        `the file has ${Math.max(0, available)}`,
    );
  }

  if (ds.elements.x00283000) {
    throw new DataError(`${file} maps its pixels with a Modality LUT Sequence (0028,3000), which is not supported; only RescaleSlope/RescaleIntercept are`);
  }
  const scaling = frameRescale(ds, file, frames);
  const dv = new DataView(bytes.buffer, bytes.byteOffset + pixel.dataOffset, needed);
  const signed = pixelRepresentation === 1;
  const mask = bitsStored >= 32 ? 0xffffffff : 2 ** bitsStored - 1;
  const signBit = 2 ** (bitsStored - 1);
  const range = 2 ** bitsStored;
  const data = new Float32Array(count);
  const plane = rows * columns;
  for (let i = 0; i < count; i++) {
    // Bits above BitsStored may hold overlays or garbage: mask them, then sign-extend.
    let v = (bytesPer === 1 ? dv.getUint8(i) : dv.getUint16(2 * i, true)) & mask;
    if (signed && v >= signBit) v -= range;
    const f = scaling[Math.floor(i / plane)];
    data[i] = v * f.slope + f.inter;
  }
  const { slope, inter } = scaling[0];

  const spacing = [ds.floatString('x00280030', 0), ds.floatString('x00280030', 1)];
  return {
    data,
    shape: [frames, rows, columns],
    meta: {
      rows,
      columns,
      frames,
      bitsAllocated,
      bitsStored,
      pixelRepresentation,
      photometricInterpretation: photometric,
      rescaleSlope: slope,
      rescaleIntercept: inter,
      transferSyntaxUID: ts,
      modality: optionalString(ds, 'x00080060'),
      pixelSpacing: spacing.every((s) => s !== undefined && Number.isFinite(s)) ? (spacing as [number, number]) : undefined,
      sliceThickness: optionalNumber(ds, 'x00180050'),
      sliceLocation: optionalNumber(ds, 'x00201041'),
      triggerTime: optionalNumber(ds, 'x00181060'),
      instanceNumber: optionalNumber(ds, 'x00200013'),
      seriesDescription: optionalString(ds, 'x0008103e'),
      seriesInstanceUID: optionalString(ds, 'x0020000e'),
      sopInstanceUID: optionalString(ds, 'x00080018'),
    },
  };
}
