import type { Channel, TracingChannel, TracingChannelSubscribers } from 'node:diagnostics_channel'
import { performance } from 'node:perf_hooks'
import type { Counter } from 'prom-client'
import {
  authChannel,
  connectChannel,
  connectionCloseChannel,
  connectionOpenChannel,
  connectionRefusedChannel,
  messageChannel,
  publishChannel,
  redisLagChannel,
  redisPublishChannel,
  subscribeChannel,
  type ConnectionCloseEvent,
  type ConnectionOpenEvent,
  type ConnectionRefusedEvent,
  type PublishTraceContext,
  type RedisLagEvent,
  type RedisPublishEvent,
  type TraceFields
} from '../diagnostics'
import type { Series, Timings } from './histogram'
import type { MetricSet } from './index'
import { closeCodeBucket } from './labels'

/** When the traced call started (performance.now()), kept on the channel's context under a key of our own. */
const kStart = Symbol('nexus.metrics.start')

type Stamped = TraceFields & { [kStart]?: number }
type Handler = 'auth' | 'onConnect' | 'onMessage' | 'authorize'

function noop (): void {}

/** Seconds since the context was stamped at `start`. */
function elapsed (context: Stamped): number {
  return (performance.now() - (context[kStart] as number)) / 1000
}

function stamp (context: Stamped): void {
  context[kStart] = performance.now()
}

/**
 * The subscribers of a tracing channel that call `done` once per traced
 * call, when it finished (synchronously or not), and `failed` when it threw
 * or rejected.
 */
function measured<C extends TraceFields> (done: (context: C & Stamped) => void, failed: (context: C) => void = noop): TracingChannelSubscribers<C> {
  return {
    start: stamp,
    end (context) {
      if (context.async !== true) done(context)
    },
    asyncStart: noop,
    asyncEnd: done,
    error: failed
  }
}

/**
 * Subscribes the set's event metrics to the plugin's diagnostics channels;
 * returns what unsubscribes them all. A traced call is measured from its
 * `start` to its `end` when it finished synchronously, to its `asyncEnd`
 * when it returned a promise (`async` set before `end`). No subscriber here
 * may throw: a throw in a subscriber would surface as an uncaught exception.
 */
export function subscribeEvents (set: MetricSet): () => void {
  const unsubscribers: Array<() => void> = []
  const trace = <C extends object>(channel: TracingChannel<unknown, C>, subscribers: TracingChannelSubscribers<C>): void => {
    channel.subscribe(subscribers)
    unsubscribers.push(() => { channel.unsubscribe(subscribers) })
  }
  const on = <M>(channel: Channel, fn: (message: M) => void): void => {
    const subscriber = fn as (message: unknown) => void
    channel.subscribe(subscriber)
    unsubscribers.push(() => { channel.unsubscribe(subscriber) })
  }

  const durations = set.metric<Timings>('nexus_handler_duration_seconds') as Timings
  const failures = set.metric<Counter>('nexus_handler_errors_total') as Counter
  const handler = <C extends TraceFields & { route: string }>(channel: TracingChannel<unknown, C>, name: Handler): void => {
    // One series per route, found with one lookup per call.
    const byRoute = new Map<string, Series>()
    trace(channel, measured<C>(
      (context) => {
        let series = byRoute.get(context.route)
        if (series === undefined) byRoute.set(context.route, series = durations.series(context.route, name))
        durations.record(series, elapsed(context))
      },
      (context) => { failures.inc({ route: context.route, handler: name }) }
    ))
  }
  handler(authChannel, 'auth')
  handler(connectChannel, 'onConnect')
  handler(messageChannel, 'onMessage')
  handler(subscribeChannel, 'authorize')

  const broadcastDuration = set.metric<Timings>('nexus_broadcast_duration_seconds') as Timings
  const recipients = set.metric<Timings>('nexus_broadcast_recipients') as Timings
  trace(publishChannel, measured<PublishTraceContext>((context) => {
    const roomClass = set.roomClasses.of(context.rooms)
    broadcastDuration.record(broadcastDuration.series(roomClass), elapsed(context))
    // manager.publish (a history room) resolves once stored; its recipients are not counted.
    if (context.recipients !== undefined) recipients.record(recipients.series(roomClass), context.recipients)
  }))

  const handshakes = set.metric<Counter>('nexus_handshakes_total') as Counter
  const closes = set.metric<Counter>('nexus_closes_total') as Counter
  const connectionDuration = set.metric<Timings>('nexus_connection_duration_seconds') as Timings
  const open = set.connectionsByRoute
  on<ConnectionOpenEvent>(connectionOpenChannel, ({ route }) => {
    open.set(route, (open.get(route) ?? 0) + 1)
    handshakes.inc({ route, outcome: 'accepted' })
  })
  on<ConnectionCloseEvent>(connectionCloseChannel, ({ route, code, duration }) => {
    const count = open.get(route)
    // A connection opened before the metrics were on is not counted down below zero.
    if (count !== undefined && count > 0) open.set(route, count - 1)
    closes.inc({ route, code: closeCodeBucket(code) })
    connectionDuration.record(connectionDuration.series(route), duration / 1000)
  })
  on<ConnectionRefusedEvent>(connectionRefusedChannel, ({ route, reason }) => {
    // A refusal at shutdown is answered before routing: it has no route.
    handshakes.inc({ route: route ?? '', outcome: reason })
  })

  // The Redis histograms exist once an app with the Redis adapter joined the set.
  on<RedisPublishEvent>(redisPublishChannel, ({ duration }) => {
    // A failed PUBLISH is counted by the adapter (nexus_redis_publish_errors_total).
    const histogram = set.metric<Timings>('nexus_redis_publish_duration_seconds')
    if (duration !== undefined && histogram !== undefined) histogram.record(histogram.series(), duration / 1000)
  })
  on<RedisLagEvent>(redisLagChannel, ({ lag }) => {
    const histogram = set.metric<Timings>('nexus_redis_lag_seconds')
    if (histogram !== undefined) histogram.record(histogram.series(), lag / 1000)
  })

  return () => {
    for (const unsubscribe of unsubscribers) unsubscribe()
  }
}
