/**
 * Error classes with stable `.code`s. Every error that tabsight raises, in
 * TypeScript or in the native core, is one of these.
 */

export type ErrorCode =
  | 'ERR_SHAPE'
  | 'ERR_TORCH'
  | 'ERR_OOM'
  | 'ERR_DISPOSED'
  | 'ERR_ABORTED'
  | 'ERR_CONFIG'
  | 'ERR_DATA'
  | 'ERR_BUSY'
  | 'ERR_DIST';

export class TabsightError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = new.target.name;
  }
}

/** A tensor or array had the wrong dtype, length, rank or shape. */
export class ShapeError extends TabsightError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ERR_SHAPE', message, options);
  }
}

/** LibTorch itself failed. */
export class TorchError extends TabsightError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ERR_TORCH', message, options);
  }
}

/** An allocation failed on the CPU or the GPU. */
export class OutOfMemoryError extends TabsightError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ERR_OOM', message, options);
  }
}

/** A handle was used after dispose(). */
export class DisposedError extends TabsightError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ERR_DISPOSED', message, options);
  }
}

/** The operation was stopped by an AbortSignal. */
export class AbortError extends TabsightError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ERR_ABORTED', message, options);
  }
}

/** An option or configuration value is invalid. */
export class ConfigError extends TabsightError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ERR_CONFIG', message, options);
  }
}

/** Input data (a file, a row, a column) is invalid. */
export class DataError extends TabsightError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ERR_DATA', message, options);
  }
}

/** The resource is in use (a training already running, a locked run directory). */
export class BusyError extends TabsightError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ERR_BUSY', message, options);
  }
}

/**
 * Distributed training failed: a rank died, hung, failed or never joined.
 * The message names the rank responsible when it can be determined.
 */
export class DistributedError extends TabsightError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ERR_DIST', message, options);
  }
}

const classes: Record<ErrorCode, new (message: string, options?: { cause?: unknown }) => TabsightError> = {
  ERR_SHAPE: ShapeError,
  ERR_TORCH: TorchError,
  ERR_OOM: OutOfMemoryError,
  ERR_DISPOSED: DisposedError,
  ERR_ABORTED: AbortError,
  ERR_CONFIG: ConfigError,
  ERR_DATA: DataError,
  ERR_BUSY: BusyError,
  ERR_DIST: DistributedError,
};

/**
 * Turns an error from the native binding (a plain Error with `.code`) into
 * the matching class. The JS stack of the caller is kept.
 */
export function fromNative(err: unknown): Error {
  if (err instanceof TabsightError) return err;
  if (err instanceof Error) {
    const code = (err as { code?: unknown }).code;
    const Cls = typeof code === 'string' ? classes[code as ErrorCode] : undefined;
    if (Cls) {
      const out = new Cls(err.message);
      return out;
    }
    return new TorchError(err.message, { cause: err });
  }
  return new TorchError(String(err));
}

/** Calls a native function and maps what it throws. */
export function callNative<T>(fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    throw fromNative(err);
  }
}

/** Awaits a native promise and maps its rejection. */
export async function awaitNative<T>(promise: Promise<T>): Promise<T> {
  try {
    return await promise;
  } catch (err) {
    throw fromNative(err);
  }
}
