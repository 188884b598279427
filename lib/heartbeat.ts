/** What the heartbeat needs of a connection. */
export interface Beating {
  /** Called once per interval: pings, or terminates a peer that did not answer the last ping. */
  beat (): void
}

interface Group {
  readonly timer: NodeJS.Timeout
  readonly members: Set<Beating>
}

/**
 * One shared, unref'd timer per distinct interval (the plugin's, and any a
 * route overrides it with) pings every socket of that interval. No timer per
 * socket; a group's timer exists only while it has members.
 */
export class Heartbeat {
  private readonly groups = new Map<number, Group>()

  add (member: Beating, interval: number): void {
    let group = this.groups.get(interval)
    if (group === undefined) {
      const members = new Set<Beating>()
      group = { members, timer: setInterval(beatAll, interval, members).unref() }
      this.groups.set(interval, group)
    }
    group.members.add(member)
  }

  remove (member: Beating, interval: number): void {
    const group = this.groups.get(interval)
    if (group === undefined || !group.members.delete(member) || group.members.size > 0) return
    clearInterval(group.timer)
    this.groups.delete(interval)
  }

  stop (): void {
    for (const group of this.groups.values()) clearInterval(group.timer)
    this.groups.clear()
  }
}

function beatAll (members: Set<Beating>): void {
  for (const member of members) member.beat()
}
