/**
 * Whether a process with this pid exists on this host: signal 0 reaches it,
 * or it exists but belongs to another user (EPERM). Used to tell a stale
 * lock or temporary file (its writer died) from a live one.
 */
export function processAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
