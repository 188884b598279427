import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { childEnv, root, stopChild } from './processes'
import type { TestContext } from './server'
import { until } from './wait'

// The examples import the package by its name, which resolves to dist/:
// `npm test` builds it before tap runs.

export interface ExampleProcess {
  child: ChildProcess
  /** everything the child printed on stdout so far */
  output (): string
  /** everything the child printed on stderr so far */
  errors (): string
  /** resolves with the exit code once the child exited */
  exited: Promise<number | null>
}

export interface Example extends ExampleProcess {
  /** http://127.0.0.1:<port> */
  url: string
  /** ws://127.0.0.1:<port> */
  wsUrl: string
}

/**
 * Runs a TypeScript file of examples/ as its own process, the way a user runs
 * it (`tsx`), stopped with SIGTERM (then SIGKILL) when the test ends.
 */
export function runExample (t: TestContext, file: string, env: NodeJS.ProcessEnv = {}): ExampleProcess {
  if (!existsSync(join(root, 'dist', 'index.js'))) {
    throw new Error('dist/ is missing: the examples import the built package, run `npm run build` first')
  }
  const child = spawn(process.execPath, ['--import', 'tsx', join(root, file)], {
    cwd: root,
    env: childEnv({ PORT: '0', HOST: '127.0.0.1', ...env }),
    stdio: ['ignore', 'pipe', 'pipe']
  })
  let stdout = ''
  let stderr = ''
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => { stdout += chunk })
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => { stderr += chunk })
  const exited = once(child, 'exit').then(([code]) => code as number | null)

  t.teardown(() => stopChild(child, exited, 5000))

  return { child, output: () => stdout, errors: () => stderr, exited }
}

/**
 * Runs an example server on a port the system picks; resolves once it
 * printed the URL it listens on.
 */
export async function startExample (t: TestContext, file: string, env: NodeJS.ProcessEnv = {}): Promise<Example> {
  const example = runExample(t, file, env)
  const { child } = example
  const port = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => {
      reject(new Error(`${file} printed no URL in time\nstdout: ${example.output()}\nstderr: ${example.errors()}`))
    }, 20000)
    const onData = (): void => {
      const match = /Server running at http:\/\/[^\s:]+:(\d+)/.exec(example.output())
      if (match === null) return
      clearTimeout(timer)
      child.stdout?.off('data', onData)
      child.off('exit', onExit)
      resolve(match[1])
    }
    const onExit = (code: number | null): void => {
      clearTimeout(timer)
      reject(new Error(`${file} exited with ${code}\nstdout: ${example.output()}\nstderr: ${example.errors()}`))
    }
    child.stdout?.on('data', onData)
    child.once('exit', onExit)
  })

  return {
    ...example,
    url: `http://127.0.0.1:${port}`,
    wsUrl: `ws://127.0.0.1:${port}`
  }
}

/** Resolves once the process printed `text` on stdout. */
export async function printed (example: ExampleProcess, text: string, timeout = 5000): Promise<void> {
  try {
    await until(() => example.output().includes(text), timeout)
  } catch {
    throw new Error(`the example did not print ${JSON.stringify(text)}; it printed:\n${example.output()}\nstderr:\n${example.errors()}`)
  }
}

/** The messages a client receives, one after another. */
export interface Inbox {
  /** resolves with the next message not read yet */
  next (timeout?: number): Promise<any>
  /** how many messages arrived that were not read yet */
  readonly unread: number
}

/** Reads a test client's messages in order, each once. */
export function inbox (client: { messages: any[], waitFor (count: number, timeout?: number): Promise<unknown> }): Inbox {
  let read = 0
  return {
    async next (timeout?: number) {
      await client.waitFor(read + 1, timeout)
      return client.messages[read++]
    },
    get unread () {
      return client.messages.length - read
    }
  }
}
