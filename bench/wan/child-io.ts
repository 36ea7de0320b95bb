/**
 * The child side of the harness's line protocol, for the scripts run inside a namespace (client.ts,
 * udx.ts): JSON lines on stdout (`ready`, `progress`, `result`, `error`), and `go` on stdin to start, so
 * a flow starts when the harness says (Node and tsx take a second or two to load) and two flows can
 * start together.
 */
import { createInterface } from 'node:readline';

export type ChildMessage = { type: 'ready' | 'progress' | 'result' | 'error' } & Record<string, unknown>;

export function emit(message: ChildMessage): void {
  process.stdout.write(`${JSON.stringify(message)}\n`);
}

/** Resolves on the harness's `go`; the process exits if the harness goes away first (stdin closes). */
export function waitForGo(): Promise<void> {
  return new Promise((resolve) => {
    const lines = createInterface({ input: process.stdin });
    lines.on('line', (line) => {
      if (line.trim() === 'go') resolve();
    });
    lines.on('close', () => process.exit(2));
  });
}

/** `--name value` pairs after the mode word. */
export function flags(argv: string[]): Map<string, string> {
  const out = new Map<string, string>();
  for (let i = 0; i < argv.length; i += 2) {
    const name = argv[i]!;
    const value = argv[i + 1];
    if (!name.startsWith('--') || value === undefined) throw new Error(`expected --name value, got ${argv.slice(i).join(' ')}`);
    out.set(name.slice(2), value);
  }
  return out;
}

export function required(values: Map<string, string>, name: string): string {
  const value = values.get(name);
  if (value === undefined) throw new Error(`--${name} is required`);
  return value;
}

export function requiredNumber(values: Map<string, string>, name: string): number {
  const value = Number(required(values, name));
  if (!Number.isFinite(value)) throw new Error(`--${name} takes a number`);
  return value;
}

/** Runs `main`, reporting a failure as an `error` line (the harness shows it in the table) and exit 1. */
export function runChild(main: () => Promise<void>): void {
  main().then(
    () => process.exit(0),
    (error: unknown) => {
      emit({ type: 'error', message: error instanceof Error ? error.message : String(error) });
      process.exit(1);
    },
  );
}
