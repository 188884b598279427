// The child processes tests start (examples, fixture instances): where the
// project is, the environment they get, and how they are stopped.
import type { ChildProcess } from 'node:child_process'
import { join } from 'node:path'

/** The project's root folder. */
export const root = join(__dirname, '..', '..')

/**
 * The environment of a child process, with `extra` over it: tap's
 * instrumentation is left out (tap records coverage in child processes too),
 * so that what the child runs (lib/ through tsx, or the built dist/) neither
 * garbles nor counts towards the coverage of lib/ measured in the test process.
 */
export function childEnv (extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {}
  for (const [key, value] of Object.entries(process.env)) {
    if (key === 'NODE_OPTIONS' || key === 'NODE_V8_COVERAGE' || key.startsWith('_TAPJS') || key.startsWith('TAP')) continue
    env[key] = value
  }
  return { ...env, _TAPJS_PROCESSINFO_COVERAGE_: '0', ...extra }
}

/**
 * Stops a child: SIGTERM, then SIGKILL if it has not exited `grace` ms later.
 * `exited` is its `once(child, 'exit')`, taken when it was spawned. Resolves
 * with its exit code (null when a signal ended it).
 */
export async function stopChild (child: ChildProcess, exited: Promise<unknown>, grace: number): Promise<number | null> {
  if (child.exitCode !== null || child.signalCode !== null) return child.exitCode
  child.kill('SIGTERM')
  const timer = setTimeout(() => child.kill('SIGKILL'), grace)
  await exited
  clearTimeout(timer)
  return child.exitCode
}
