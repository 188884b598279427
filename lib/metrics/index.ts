import type { FastifyInstance } from 'fastify'
import type { Counter, Gauge, Registry } from 'prom-client'
import type { MetricsRegistry, WebSocketStats } from '../../types/index'
import { describe, errors } from '../errors'
import type { MetricsSettings } from '../options'
import { METRICS, type Family, type MetricDefinition, type MetricName } from './definitions'
import { subscribeEvents } from './events'
import { timingsClass, type Timings } from './histogram'
import { RoomClasses } from './labels'
import { requirePromClient, type PromClientModule } from './prom'

/** What the metrics read from one app at scrape time: its manager's `stats()`. */
export interface MetricsSource {
  stats(): WebSocketStats
  /** whether some room has a history policy (the history metrics are then registered) */
  readonly history: boolean
  /** whether some room has a presence policy (the presence metrics are then registered) */
  readonly presence: boolean
}

type AnyMetric = Counter | Gauge | Timings

interface MetricConfig {
  name: string
  help: string
  labelNames: string[]
  registers: Registry[]
}

/**
 * The counters `manager.stats()` already keeps: read at scrape time (summed
 * over the apps of the set), never counted a second time.
 */
const FROM_STATS: Partial<Record<MetricName, string>> = {
  nexus_rooms: 'rooms',
  nexus_messages_received_total: 'messagesReceived',
  nexus_messages_sent_total: 'messagesSent',
  nexus_broadcasts_total: 'broadcasts',
  nexus_invalid_messages_total: 'invalidMessages',
  nexus_rate_limited_total: 'rateLimited',
  nexus_errors_total: 'errors',
  nexus_slow_consumers_total: 'slowConsumers',
  nexus_heartbeat_timeouts_total: 'heartbeatTimeouts',
  nexus_history_appended_total: 'historyAppended',
  nexus_history_failures_total: 'historyFailures',
  nexus_history_replayed_total: 'historyReplayed',
  nexus_history_gaps_filled_total: 'historyGapsFilled',
  nexus_presence_updates_total: 'presenceUpdates',
  nexus_presence_failures_total: 'presenceFailures',
  nexus_presence_frames_total: 'presenceFrames',
  nexus_redis_connected: 'redisConnected',
  nexus_redis_room_channels: 'redisRoomChannels',
  nexus_redis_published_total: 'redisPublished',
  nexus_redis_publish_errors_total: 'redisPublishErrors',
  nexus_redis_received_total: 'redisReceived',
  nexus_redis_delivered_total: 'redisDelivered',
  nexus_redis_invalid_messages_total: 'redisInvalidMessages',
  nexus_redis_query_timeouts_total: 'redisQueryTimeouts',
  nexus_redis_presence_reaped_total: 'redisPresenceReaped'
}

/**
 * The metrics of the process, on one registry. The diagnostics channels the
 * event metrics listen to are process-wide, so there is one set per process:
 * apps that turn metrics on share it (their scrape-time values are summed,
 * each event is counted once), and it is taken down when the last of them
 * closes, its metrics removed from the registry.
 */
export class MetricSet {
  readonly registry: MetricsRegistry
  readonly settings: MetricsSettings
  readonly roomClasses: RoomClasses
  /** open connections by route, kept from the open and close events */
  readonly connectionsByRoute = new Map<string, number>()
  private readonly prom: PromClientModule
  /** the histogram class of the hot paths, made from this prom-client */
  private readonly Timings: ReturnType<typeof timingsClass>
  private readonly sources = new Set<MetricsSource>()
  private readonly registered = new Map<MetricName, AnyMetric>()
  private readonly families = new Set<Family>()
  /** the sources' stats() of the scrape under way: one call per app per scrape, not one per metric */
  private snapshot: WebSocketStats[] | null = null
  private readonly unsubscribe: () => void

  constructor (prom: PromClientModule, registry: MetricsRegistry, settings: MetricsSettings) {
    this.prom = prom
    this.Timings = timingsClass(prom)
    this.registry = registry
    this.settings = settings
    this.roomClasses = new RoomClasses(settings.roomClass, settings.maxRoomClasses)
    this.addFamily('core')
    this.unsubscribe = subscribeEvents(this)
  }

  /** A registered metric, by its name without the prefix; undefined when its family is not registered. */
  metric<M extends AnyMetric> (name: MetricName): M | undefined {
    return this.registered.get(name) as M | undefined
  }

  /** Adds an app, and the metrics of its history rooms and of its Redis adapter if the set has none yet. */
  add (source: MetricsSource): void {
    if (source.history) this.addFamily('history')
    if (source.presence) this.addFamily('presence')
    if ('redisConnected' in source.stats()) this.addFamily('redis')
    this.sources.add(source)
  }

  /** Removes an app; true when none is left. */
  remove (source: MetricsSource): boolean {
    this.sources.delete(source)
    return this.empty()
  }

  empty (): boolean {
    return this.sources.size === 0
  }

  /** Stops listening and takes every metric of the set off the registry. */
  dispose (): void {
    this.unsubscribe()
    for (const [name, metric] of this.registered) {
      const full = this.settings.prefix + name
      // Only ours: the app may have put another metric there since.
      if (this.registry.getSingleMetric(full) === metric) this.registry.removeSingleMetric(full)
    }
    this.registered.clear()
  }

  /** Whether a later app's settings are the ones this set was made with; throws the option that differs. */
  check (registry: MetricsRegistry, settings: MetricsSettings): void {
    if (registry !== this.registry) {
      throw new errors.FST_NEXUS_INVALID_OPTION('metrics.registry',
        'the registry another app of this process already exports its metrics to (the event metrics come from process-wide diagnostics channels, so a process has one registry for them)',
        describe(registry))
    }
    for (const key of ['prefix', 'roomClass', 'maxRoomClasses'] as const) {
      if (settings[key] !== this.settings[key]) {
        throw new errors.FST_NEXUS_INVALID_OPTION(`metrics.${key}`,
          'the value another app of this process gave for the same registry (the apps share its metrics)',
          describe(settings[key]))
      }
    }
  }

  /** The sum of a `stats()` counter over the apps, from one snapshot per scrape. */
  private total (key: string): number {
    let snapshot = this.snapshot
    if (snapshot === null) {
      snapshot = this.snapshot = [...this.sources].map((source) => source.stats())
      // A scrape asks every metric in one synchronous pass: the snapshot
      // serves that pass, and the next scrape reads afresh.
      queueMicrotask(() => { this.snapshot = null })
    }
    let sum = 0
    for (const stats of snapshot) sum += stats[key] ?? 0
    return sum
  }

  /** Registers the metrics of a family; if one name is taken, none of them stays. */
  private addFamily (family: Family): void {
    if (this.families.has(family)) return
    const made: MetricName[] = []
    try {
      for (const definition of METRICS as readonly MetricDefinition[]) {
        if (definition.family !== family) continue
        this.create(definition)
        made.push(definition.name as MetricName)
      }
    } catch (err) {
      for (const name of made) {
        this.registry.removeSingleMetric(this.settings.prefix + name)
        this.registered.delete(name)
      }
      throw new errors.FST_NEXUS_INVALID_OPTION('metrics.prefix',
        `metric names that are free in the registry (give another prefix): ${(err as Error).message}`,
        describe(this.settings.prefix))
    }
    this.families.add(family)
  }

  private create (definition: MetricDefinition): void {
    const name = definition.name as MetricName
    const config = {
      name: this.settings.prefix + name,
      help: definition.help,
      labelNames: [...definition.labels],
      registers: [this.registry as Registry]
    }
    const key = FROM_STATS[name]
    // prom-client throws here when the registry has a metric of that name already.
    const metric = definition.type === 'histogram'
      ? new this.Timings({ ...config, buckets: [...definition.buckets as number[]] })
      : definition.type === 'gauge' ? this.createGauge(config, key) : this.createCounter(config, name, key)
    this.registered.set(name, metric)
  }

  private createGauge (config: MetricConfig, key: string | undefined): Gauge {
    const set = this
    // Set at each scrape: a stats() value, or the open connections by route.
    const collect = key !== undefined
      ? function (this: Gauge) { this.set(set.total(key)) }
      : function (this: Gauge) { for (const [route, count] of set.connectionsByRoute) this.set({ route }, count) }
    return new this.prom.Gauge({ ...config, collect })
  }

  private createCounter (config: MetricConfig, name: MetricName, key: string | undefined): Counter {
    const set = this
    if (name === 'nexus_resumes_total') {
      return new this.prom.Counter({
        ...config,
        collect (this: Counter) {
          this.reset()
          this.inc({ outcome: 'recovered' }, set.total('resumeRecovered'))
          this.inc({ outcome: 'failed' }, set.total('resumeFailed'))
        }
      })
    }
    // A counter of stats(): its value is the manager's own, taken as it is at each scrape.
    if (key !== undefined) {
      return new this.prom.Counter({
        ...config,
        collect (this: Counter) {
          this.reset()
          this.inc(set.total(key))
        }
      })
    }
    return new this.prom.Counter(config)
  }
}

/** The set of the process while one app or more have metrics on. */
let current: MetricSet | null = null

/**
 * Turns the metrics on for one app (called once per app, at its first
 * registration): loads prom-client, joins or makes the process's set, and
 * leaves it when the app closes.
 */
export function attachMetrics (fastify: FastifyInstance, source: MetricsSource, settings: MetricsSettings): void {
  const prom = requirePromClient()
  const registry = settings.registry ?? prom.register
  let set = current
  if (set === null) {
    set = current = new MetricSet(prom, registry, settings)
  } else {
    set.check(registry, settings)
  }
  try {
    set.add(source)
  } catch (err) {
    // A set made for this app alone goes again.
    if (set.empty()) {
      current = null
      set.dispose()
    }
    throw err
  }
  const joined = set
  fastify.addHook('onClose', async function detachMetrics () {
    if (joined.remove(source) && current === joined) {
      current = null
      joined.dispose()
    }
  })
}
