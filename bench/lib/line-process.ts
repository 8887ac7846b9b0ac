// A child process of the fleet benchmark whose stdout is read line by line as it comes (fleet
// serve and simulate print thousands of JSON lines; keeping them all and parsing them again on
// every poll would cost the bench more CPU than what it measures). Lines that contain one of
// the `keep` markers are parsed and kept; the rest are dropped. Killed with SIGKILL when the
// bench exits, so nothing is left running on a shared machine.
import { spawn, type ChildProcess } from 'node:child_process';
import { procCpuMs } from './proc-cpu.js';
import { procStatusKiB } from './perch-server.js';

const live = new Set<ChildProcess>();
process.on('exit', () => {
  for (const c of live) c.kill('SIGKILL');
});

export class LineProcess {
  readonly proc: ChildProcess;
  readonly lines: Array<Record<string, unknown>> = [];
  stderr = '';
  private rest = '';
  private readonly exited: Promise<void>;
  private done = false;

  constructor(readonly name: string, command: string, args: string[], private readonly keep: readonly string[], env: NodeJS.ProcessEnv = process.env) {
    this.proc = spawn(command, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    live.add(this.proc);
    this.exited = new Promise((resolve) => {
      this.proc.once('exit', () => {
        this.done = true;
        live.delete(this.proc);
        resolve();
      });
    });
    this.proc.stdout?.setEncoding('utf8').on('data', (s: string) => this.onData(s));
    this.proc.stderr?.setEncoding('utf8').on('data', (s: string) => {
      if (this.stderr.length < 64 * 1024) this.stderr += s;
    });
  }

  get pid(): number {
    return this.proc.pid as number;
  }

  get running(): boolean {
    return !this.done;
  }

  private onData(s: string): void {
    const parts = (this.rest + s).split('\n');
    this.rest = parts.pop() ?? '';
    for (const line of parts) {
      if (!this.keep.some((k) => line.includes(k))) continue;
      try {
        this.lines.push(JSON.parse(line) as Record<string, unknown>);
      } catch {
        // not JSON
      }
    }
  }

  /** The last kept line with this `msg`. */
  last(msg: string): Record<string, unknown> | undefined {
    for (let i = this.lines.length - 1; i >= 0; i--) if (this.lines[i]?.msg === msg) return this.lines[i];
    return undefined;
  }

  cpuMs(): number {
    return procCpuMs(this.pid);
  }

  rssMiB(): number {
    return procStatusKiB(this.pid, 'VmRSS') / 1024;
  }

  hwmMiB(): number {
    return procStatusKiB(this.pid, 'VmHWM') / 1024;
  }

  async stop(signal: NodeJS.Signals = 'SIGTERM', graceMs = 20_000): Promise<void> {
    if (this.done) return;
    this.proc.kill(signal);
    const t = setTimeout(() => this.proc.kill('SIGKILL'), graceMs);
    await this.exited;
    clearTimeout(t);
  }
}
