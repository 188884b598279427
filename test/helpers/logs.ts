import { Writable } from 'node:stream'

/** A logger stream for Fastify that keeps every log line as an object. */
export function logCapture (): { stream: Writable, lines: any[] } {
  const lines: any[] = []
  const stream = new Writable({
    write (chunk, _encoding, callback) {
      for (const line of chunk.toString().split('\n')) {
        if (line.trim() !== '') lines.push(JSON.parse(line))
      }
      callback()
    }
  })
  return { stream, lines }
}
