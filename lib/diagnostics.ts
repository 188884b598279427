import diagnosticsChannel, { type TracingChannel } from 'node:diagnostics_channel'
import type {
  AuthTraceContext,
  ConnectionCloseEvent,
  ConnectionOpenEvent,
  ConnectionRefusedEvent,
  ConnectTraceContext,
  DeliverEvent,
  MessageTraceContext,
  PublishTraceContext,
  RedisLagEvent,
  RedisPublishEvent,
  SubscribeTraceContext,
  TraceFields
} from '../types/index'
import { isThenable } from './promise'

export type {
  AuthTraceContext,
  ConnectionCloseEvent,
  ConnectionOpenEvent,
  ConnectionRefusedEvent,
  ConnectTraceContext,
  DeliverEvent,
  MessageTraceContext,
  PublishTraceContext,
  RedisLagEvent,
  RedisPublishEvent,
  SubscribeTraceContext,
  TraceFields
}

// ------------------------------------------------------------------ channels
//
// Every channel the plugin publishes on, by the names the README documents.
// Channels are global by name: a subscriber may use these objects or ask
// node:diagnostics_channel for the same names. Each publish site checks that
// someone listens before it builds anything, so an app that subscribes to
// nothing pays one property read per site and nothing more.

export const authChannel: TracingChannel<unknown, AuthTraceContext> = diagnosticsChannel.tracingChannel('nexus.auth')
export const connectChannel: TracingChannel<unknown, ConnectTraceContext> = diagnosticsChannel.tracingChannel('nexus.connect')
export const messageChannel: TracingChannel<unknown, MessageTraceContext> = diagnosticsChannel.tracingChannel('nexus.message')
export const subscribeChannel: TracingChannel<unknown, SubscribeTraceContext> = diagnosticsChannel.tracingChannel('nexus.subscribe')
export const publishChannel: TracingChannel<unknown, PublishTraceContext> = diagnosticsChannel.tracingChannel('nexus.publish')

export const deliverChannel = diagnosticsChannel.channel('nexus.deliver')
export const connectionOpenChannel = diagnosticsChannel.channel('nexus.connection.open')
export const connectionCloseChannel = diagnosticsChannel.channel('nexus.connection.close')
export const connectionRefusedChannel = diagnosticsChannel.channel('nexus.connection.refused')
export const redisPublishChannel = diagnosticsChannel.channel('nexus.redis.publish')
export const redisLagChannel = diagnosticsChannel.channel('nexus.redis.lag')

/**
 * Whether any of a tracing channel's five channels has a subscriber (what
 * `TracingChannel#hasSubscribers` says from Node 20.13 on, for every 20.x).
 */
export function traced (channel: TracingChannel<any, any>): boolean {
  return channel.start.hasSubscribers || channel.end.hasSubscribers || channel.asyncStart.hasSubscribers ||
    channel.asyncEnd.hasSubscribers || channel.error.hasSubscribers
}

/**
 * Calls `fn` traced on `channel` with Node's tracing-channel order: `start`
 * (through `runStores`, so a store bound to it is current inside `fn`), then
 * `error` if it throws, then `end`. When it returns a promise, `async` is set
 * before `end`, and once it settles `error` (on a rejection), `asyncStart`
 * and `asyncEnd` follow; the promise returned settles as `fn`'s did, after
 * them. Only called when `traced(channel)`: it allocates.
 */
export function traceCall<C extends TraceFields, A extends unknown[]> (
  channel: TracingChannel<unknown, C>,
  context: C,
  fn: (...args: A) => unknown,
  thisArg: unknown,
  ...args: A
): unknown {
  let result: unknown
  try {
    result = channel.start.runStores(context, fn, thisArg, ...args)
  } catch (error) {
    context.error = error
    channel.error.publish(context)
    channel.end.publish(context)
    throw error
  }
  if (!isThenable(result)) {
    context.result = result
    channel.end.publish(context)
    return result
  }
  context.async = true
  channel.end.publish(context)
  return Promise.resolve(result).then((value) => {
    context.result = value
    channel.asyncStart.publish(context)
    channel.asyncEnd.publish(context)
    return value
  }, (error: unknown) => {
    context.error = error
    channel.error.publish(context)
    channel.asyncStart.publish(context)
    channel.asyncEnd.publish(context)
    throw error
  })
}

/** `nexus.connection.refused`, when someone listens. */
export function refused (route: string | null, reason: ConnectionRefusedEvent['reason'], statusCode: number): void {
  if (connectionRefusedChannel.hasSubscribers) connectionRefusedChannel.publish({ route, reason, statusCode } satisfies ConnectionRefusedEvent)
}

/** An empty carrier, for a delivery whose publisher sent none. */
export const NO_CARRIER: Readonly<Record<string, string>> = Object.freeze({})
