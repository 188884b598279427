import diagnosticsChannel from 'node:diagnostics_channel'
import { trace, type TracerProvider } from '@opentelemetry/api'
import { expectAssignable, expectError, expectType } from 'tsd'
import type {
  AuthTraceContext,
  ConnectionCloseEvent,
  ConnectionOpenEvent,
  ConnectionRefusedEvent,
  ConnectTraceContext,
  DeliverEvent,
  MessageTraceContext,
  PublishTarget,
  PublishTraceContext,
  RedisLagEvent,
  RedisPublishEvent,
  SubscribeTraceContext
} from '.'
import { nexusOpenTelemetry, type NexusOpenTelemetryOptions } from './otel'

// ------------------------------------------------------------ the OpenTelemetry bridge

expectType<() => void>(nexusOpenTelemetry())
expectType<() => void>(nexusOpenTelemetry({}))
expectType<() => void>(nexusOpenTelemetry({ tracerProvider: trace.getTracerProvider() }))
expectAssignable<NexusOpenTelemetryOptions>({ tracerProvider: {} as TracerProvider })
expectError(nexusOpenTelemetry({ tracerProvider: 'global' }))
expectError(nexusOpenTelemetry({ tracer: trace.getTracer('x') }))

// ------------------------------------------------------------ the diagnostics channels' contexts

diagnosticsChannel.tracingChannel<unknown, MessageTraceContext>('nexus.message').subscribe({
  start: (context) => {
    expectType<string>(context.route)
    expectType<string>(context.id)
    expectType<unknown>(context.message)
    expectType<boolean>(context.request)
    expectType<string>(context.ctx.id)
  },
  end: (context) => { expectType<true | undefined>(context.async) },
  asyncStart: () => {},
  asyncEnd: (context) => { expectType<unknown>(context.result) },
  error: (context) => { expectType<unknown>(context.error) }
})
diagnosticsChannel.tracingChannel<unknown, PublishTraceContext>('nexus.publish').start.subscribe((message) => {
  const context = message as PublishTraceContext
  // A subscriber fills the carrier; the rooms are the plugin's.
  context.carrier.traceparent = '00-…'
  expectType<readonly string[] | null>(context.rooms)
  expectType<number | undefined>(context.recipients)
})
expectType<string>(({} as AuthTraceContext).route)
expectType<string>(({} as ConnectTraceContext).id)
expectType<boolean | undefined>(({} as SubscribeTraceContext).allowed)
expectType<string>(({} as SubscribeTraceContext).room)
expectType<Readonly<Record<string, string>>>(({} as DeliverEvent).carrier)
expectType<'raw' | 'nexus.v1'>(({} as ConnectionOpenEvent).protocol)
expectType<number>(({} as ConnectionCloseEvent).code)
expectType<'auth' | 'origin' | 'schema' | 'timeout' | 'shutdown'>(({} as ConnectionRefusedEvent).reason)
expectType<string | null>(({} as ConnectionRefusedEvent).route)
expectType<number>(({} as RedisLagEvent).lag)
const published = {} as RedisPublishEvent
if (published.error === undefined) expectType<number>(published.duration)
else expectType<Error>(published.error)
expectError(({} as AuthTraceContext).route = 'x')

// An adapter may carry a broadcast's carrier; it is optional.
expectAssignable<PublishTarget>({ rooms: ['r'], exceptIds: null })
expectAssignable<PublishTarget>({ rooms: null, exceptIds: null, carrier: { traceparent: 'x' } })
expectError<PublishTarget>({ rooms: null, exceptIds: null, carrier: { traceparent: 1 } })
