import type { ChildProcess, Serializable } from 'node:child_process'
import type { Request, Response } from './protocol'

type Handler = (args: any) => unknown

function send (message: unknown): void {
  // The orchestrator may be gone (it ended the run): nothing to tell then.
  if (process.connected) process.send?.(message)
}

/**
 * The child side: answers the orchestrator's requests with the handler of
 * the same name, and exits when the orchestrator goes away, so that no load
 * process outlives a run.
 */
export function serve (handlers: Record<string, Handler>, onOther?: (message: any) => void): void {
  process.on('message', (message: any) => {
    if (typeof message?.id !== 'number' || typeof message.cmd !== 'string') {
      onOther?.(message)
      return
    }
    const request = message as Request
    const handler = handlers[request.cmd]
    if (handler === undefined) {
      send({ id: request.id, error: `unknown command ${request.cmd}` } satisfies Response)
      return
    }
    Promise.resolve()
      .then(() => handler(request.args))
      .then(
        (result) => send({ id: request.id, result } satisfies Response),
        (error: unknown) => send({ id: request.id, error: error instanceof Error ? error.stack ?? error.message : String(error) } satisfies Response)
      )
  })
  process.on('disconnect', () => process.exit(0))
}

export function tell (message: unknown): void {
  send(message)
}

/** The orchestrator side of one child process: requests with a time bound each. */
export class Peer {
  readonly name: string
  readonly proc: ChildProcess
  private nextId = 1
  private readonly pending = new Map<number, { resolve: (value: unknown) => void, reject: (error: Error) => void, timer: NodeJS.Timeout }>()
  private exited = false

  constructor (name: string, proc: ChildProcess, onOther: (message: any) => void) {
    this.name = name
    this.proc = proc
    proc.on('message', (message: any) => {
      if (typeof message?.id === 'number' && this.pending.has(message.id)) {
        const entry = this.pending.get(message.id)!
        this.pending.delete(message.id)
        clearTimeout(entry.timer)
        const response = message as Response
        if (response.error !== undefined) entry.reject(new Error(`${this.name}: ${response.error}`))
        else entry.resolve(response.result)
        return
      }
      onOther(message)
    })
    proc.on('exit', (code, signal) => {
      this.exited = true
      for (const [id, entry] of this.pending) {
        clearTimeout(entry.timer)
        entry.reject(new Error(`${this.name} exited (${signal ?? code}) during request ${id}`))
      }
      this.pending.clear()
    })
  }

  get pid (): number {
    return this.proc.pid as number
  }

  call<T = unknown> (cmd: string, args?: unknown, timeoutMs = 30_000): Promise<T> {
    if (this.exited) return Promise.reject(new Error(`${this.name} has exited`))
    const id = this.nextId++
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id)
        reject(new Error(`${this.name}: ${cmd} did not answer within ${timeoutMs} ms`))
      }, timeoutMs)
      this.pending.set(id, { resolve: resolve as (value: unknown) => void, reject, timer })
      this.proc.send({ id, cmd, args } satisfies Request)
    })
  }

  /** A message that is not a request (an ack relayed from a client). */
  post (message: Serializable): void {
    if (!this.exited && this.proc.connected) this.proc.send(message)
  }
}
