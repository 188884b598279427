// Starts two instances of server.ts, on ports 3001 and 3002 (PORTS=a,b to
// change them), sharing rooms over the Redis at REDIS_URL; their output is
// prefixed with their name. Ctrl-C stops both. `npm run example:cluster`
// builds dist/ first and runs this file.
import { spawn } from 'node:child_process'
import { join } from 'node:path'
import { createInterface } from 'node:readline'

const ports = (process.env.PORTS ?? '3001,3002').split(',')
let stopping = false

function stopAll (): void {
  if (stopping) return
  stopping = true
  for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM')
}

const children = ports.map((port, i) => {
  const name = `instance-${String.fromCharCode(65 + i)}`
  const child = spawn(process.execPath, ['--import', 'tsx', join(__dirname, 'server.ts')], {
    env: { ...process.env, PORT: port, INSTANCE: name },
    stdio: ['ignore', 'pipe', 'pipe']
  })
  for (const stream of [child.stdout, child.stderr]) {
    createInterface({ input: stream }).on('line', (line) => console.log(`[${name}] ${line}`))
  }
  child.on('exit', (code, signal) => {
    console.log(`[${name}] exited (${signal ?? code})`)
    // One instance gone (e.g. it could not listen): stop the other too.
    stopAll()
  })
  return child
})

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, stopAll)
}
