import {
  context as contextApi,
  propagation,
  ROOT_CONTEXT,
  SpanKind,
  SpanStatusCode,
  trace,
  type Attributes,
  type Context,
  type Span,
  type Tracer
} from '@opentelemetry/api'
import { AsyncLocalStorage } from 'node:async_hooks'
import type { TracingChannel } from 'node:diagnostics_channel'
import type { nexusOpenTelemetry as Declared, NexusOpenTelemetryOptions } from '../types/otel'
import {
  authChannel,
  connectChannel,
  connectionCloseChannel,
  connectionOpenChannel,
  deliverChannel,
  messageChannel,
  publishChannel,
  subscribeChannel,
  type AuthTraceContext,
  type ConnectTraceContext,
  type MessageTraceContext,
  type PublishTraceContext,
  type SubscribeTraceContext,
  type ConnectionCloseEvent,
  type ConnectionOpenEvent,
  type DeliverEvent,
  type TraceFields
} from './diagnostics'

// The OpenTelemetry bridge (`fastify-nexus-realtime/otel`): the plugin's
// diagnostics channels turned into spans. It is the channels' only reader
// here: the plugin itself never loads @opentelemetry/api.

const TRACER_NAME = 'fastify-nexus-realtime'
/** rooms listed on a publish span up to this many; past it, their count only */
const MAX_LISTED_ROOMS = 16

/** What each tracing channel's span is called, and how it is placed. */
interface Kind<C extends TraceFields> {
  readonly channel: TracingChannel<unknown, C>
  readonly name: string
  readonly kind: SpanKind
  /** the span's parent: its connection's, or the current one */
  parent (context: C): Context
  attributes (context: C): Attributes
  /** called with the span's context once it is made, before the traced call runs */
  started? (context: C, spanContext: Context): void
  /** called once the traced call is over, before the span ends */
  finish? (span: Span, context: C): void
}

/** The bridge: `nexusOpenTelemetry()` in types/otel.d.ts. */
export function nexusOpenTelemetry (options: NexusOpenTelemetryOptions = {}): () => void {
  const tracer: Tracer = (options.tracerProvider ?? trace.getTracerProvider()).getTracer(TRACER_NAME)
  // The context of the nexus span being run (a message, a connect…), for the
  // spans made inside it: the plugin runs each traced call within the stores
  // bound to its `start` channel.
  const current = new AsyncLocalStorage<Context>()
  const active = (): Context => current.getStore() ?? contextApi.active()
  /** each open connection's context (its span in it), by connection id */
  const connections = new Map<string, { span: Span, context: Context }>()
  const ofConnection = (id: string): Context => connections.get(id)?.context ?? active()
  const undo: Array<() => void> = []

  function traceChannel<C extends TraceFields> (spec: Kind<C>): void {
    const spans = new WeakMap<C, Span>()
    // Made in the store's transform, which runs before the traced call, so that
    // the call (and what it publishes) runs with the span current.
    const transform = (context: C): Context => {
      const parent = spec.parent(context)
      const span = tracer.startSpan(spec.name, { kind: spec.kind, attributes: spec.attributes(context) }, parent)
      spans.set(context, span)
      const spanContext = trace.setSpan(parent, span)
      spec.started?.(context, spanContext)
      return spanContext
    }
    const end = (context: C): void => {
      const span = spans.get(context)
      if (span === undefined) return
      spans.delete(context)
      spec.finish?.(span, context)
      span.end()
    }
    const handlers = {
      // The span is made by the store's transform: nothing to do at start.
      start: noop,
      asyncStart: noop,
      end: (context: C) => { if (context.async !== true) end(context) },
      asyncEnd: end,
      error: (context: C) => {
        const span = spans.get(context)
        if (span === undefined) return
        const error = context.error
        if (error instanceof Error) span.recordException(error)
        span.setStatus({ code: SpanStatusCode.ERROR, message: error instanceof Error ? error.message : String(error) })
      }
    }
    spec.channel.start.bindStore(current, transform)
    spec.channel.subscribe(handlers)
    undo.push(() => {
      spec.channel.unsubscribe(handlers)
      spec.channel.start.unbindStore(current)
    })
  }

  function subscribe<T> (channel: { subscribe: (listener: (message: unknown) => void) => void, unsubscribe: (listener: (message: unknown) => void) => void }, listener: (message: T) => void): void {
    const handler = listener as (message: unknown) => void
    channel.subscribe(handler)
    undo.push(() => { channel.unsubscribe(handler) })
  }

  const ofRoute = (context: { route: string, id: string }): Attributes => ({ 'nexus.route': context.route, 'nexus.connection.id': context.id })

  traceChannel<AuthTraceContext>({
    channel: authChannel,
    name: 'nexus auth',
    kind: SpanKind.INTERNAL,
    parent: active,
    attributes: (context) => ({ 'nexus.route': context.route })
  })
  traceChannel<ConnectTraceContext>({
    channel: connectChannel,
    name: 'nexus connect',
    kind: SpanKind.INTERNAL,
    parent: (context) => ofConnection(context.id),
    attributes: ofRoute
  })
  traceChannel<MessageTraceContext>({
    channel: messageChannel,
    name: 'nexus message',
    kind: SpanKind.INTERNAL,
    parent: (context) => ofConnection(context.id),
    attributes: (context) => ({ ...ofRoute(context), 'nexus.request': context.request })
  })
  traceChannel<SubscribeTraceContext>({
    channel: subscribeChannel,
    name: 'nexus subscribe',
    kind: SpanKind.INTERNAL,
    parent: (context) => ofConnection(context.id),
    attributes: (context) => ({ ...ofRoute(context), 'nexus.room': context.room }),
    finish: (span, context) => { span.setAttribute('nexus.allowed', context.allowed === true) }
  })
  traceChannel<PublishTraceContext>({
    channel: publishChannel,
    name: 'nexus publish',
    kind: SpanKind.PRODUCER,
    parent: active,
    attributes: roomAttributes,
    // The publish span's context travels with the broadcast to the other instances.
    started: (context, spanContext) => { propagation.inject(spanContext, context.carrier) },
    finish: (span, context) => {
      if (context.recipients !== undefined) span.setAttribute('nexus.recipients', context.recipients)
    }
  })
  subscribe<ConnectionOpenEvent>(connectionOpenChannel, (event) => {
    const parent = active()
    const span = tracer.startSpan('nexus connection', {
      kind: SpanKind.INTERNAL,
      attributes: { ...ofRoute(event), 'nexus.protocol': event.protocol }
    }, parent)
    connections.set(event.id, { span, context: trace.setSpan(parent, span) })
  })
  subscribe<ConnectionCloseEvent>(connectionCloseChannel, (event) => {
    const connection = connections.get(event.id)
    if (connection === undefined) return
    connections.delete(event.id)
    const { span } = connection
    span.setAttributes({ 'nexus.close.code': event.code, 'nexus.messages.in': event.messagesIn, 'nexus.messages.out': event.messagesOut })
    // 1011: a handler failed; the other codes are the peer's or the server's ordinary reasons.
    if (event.code === 1011) span.setStatus({ code: SpanStatusCode.ERROR, message: 'closed with 1011' })
    span.end()
  })
  subscribe<DeliverEvent>(deliverChannel, (event) => {
    // The publishing instance's span, when its carrier came along.
    const parent = propagation.extract(ROOT_CONTEXT, event.carrier)
    const span = tracer.startSpan('nexus deliver', { kind: SpanKind.CONSUMER, attributes: { ...roomAttributes(event), 'nexus.recipients': event.recipients } }, parent)
    span.end()
  })

  return function stop () {
    for (const step of undo.splice(0)) step()
    connections.clear()
  }
}

function noop (): void {}

function roomAttributes (context: { rooms: readonly string[] | null }): Attributes {
  const { rooms } = context
  if (rooms === null) return { 'nexus.rooms.all': true }
  return rooms.length <= MAX_LISTED_ROOMS ? { 'nexus.rooms': [...rooms] } : { 'nexus.rooms.count': rooms.length }
}

nexusOpenTelemetry satisfies typeof Declared
