// Runs CLI commands in-process, capturing what they write to stdout and stderr.
import { Command } from 'commander';

export async function runCommands(add: (program: Command) => void, ...args: string[]): Promise<{ stdout: string; stderr: string }> {
  const [out, err] = [process.stdout.write, process.stderr.write];
  let stdout = '';
  let stderr = '';
  process.stdout.write = ((s: string) => { stdout += s; return true; }) as typeof process.stdout.write;
  process.stderr.write = ((s: string) => { stderr += s; return true; }) as typeof process.stderr.write;
  try {
    const program = new Command('tabsight').exitOverride();
    add(program);
    await program.parseAsync(['node', 'tabsight', ...args]);
  } finally {
    process.stdout.write = out;
    process.stderr.write = err;
  }
  return { stdout, stderr };
}
