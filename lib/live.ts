/**
 * The connections of one app: those whose socket is open (they can be in
 * rooms, and a broadcast to every connection reaches them), and how many have
 * not finished their `onClose` yet, which shutdown waits for.
 */
export class LiveConnections<C> {
  /** connections whose socket is open */
  readonly open = new Set<C>()
  /** connections whose onClose has not finished yet (a count: no per-socket entry) */
  private unsettled = 0
  private onIdle: (() => void) | null = null

  /** A connection was accepted. */
  add (connection: C): void {
    this.open.add(connection)
    this.unsettled++
  }

  /** Its socket closed. */
  closed (connection: C): void {
    this.open.delete(connection)
  }

  /** Its onClose finished. */
  settled (): void {
    this.unsettled--
    if (this.unsettled === 0 && this.onIdle !== null) this.onIdle()
  }

  /** Resolves once every connection settled, or after `timeout` ms. */
  async idle (timeout: number): Promise<void> {
    if (this.unsettled === 0) return
    let timer: NodeJS.Timeout | undefined
    await new Promise<void>((resolve) => {
      this.onIdle = resolve
      timer = setTimeout(resolve, timeout)
    })
    clearTimeout(timer)
    this.onIdle = null
  }
}
