import type { Adapter, AdapterHost, EncodedMessage, PublishTarget } from '../../types/index'

/**
 * The embedded adapter: one process, so there is nobody to tell. The plugin
 * keeps membership and delivers every broadcast to this process's sockets
 * itself; this adapter only completes the contract.
 */
export class MemoryAdapter implements Adapter {
  init (_host: AdapterHost): void {}

  roomActive (_room: string): void {}

  roomIdle (_room: string): void {}

  publish (_message: EncodedMessage, _target: PublishTarget): void {}

  close (): void {}
}
