// The OpenTelemetry bridge, `fastify-nexus-realtime/otel`: spans made from the
// plugin's diagnostics channels (README, "Traces"). It needs
// `@opentelemetry/api`, an optional peer dependency of the package, and a
// tracer provider, a context manager and a propagator registered the usual
// way (the OpenTelemetry Node SDK registers all three).
import type { TracerProvider } from '@opentelemetry/api'

export interface NexusOpenTelemetryOptions {
  /**
   * Where the spans go.
   * @default the global tracer provider (`trace.getTracerProvider()`)
   */
  tracerProvider?: TracerProvider
}

/**
 * Subscribes to the plugin's diagnostics channels and makes spans from them,
 * for every app of the process:
 * - `nexus connection`: one per connection, from the upgrade to the close,
 *   a child of the context active during the upgrade (the HTTP request's span
 *   with `@fastify/otel`);
 * - `nexus connect`, `nexus message`, `nexus subscribe`: children of their
 *   connection's span;
 * - `nexus auth`: a child of the request's span;
 * - `nexus publish` (producer): a child of the message being handled, if the
 *   broadcast comes from a handler, else of the active context; its context
 *   travels with the broadcast to the other instances (through the global
 *   propagator);
 * - `nexus deliver` (consumer): on another instance, a child of the publish.
 *
 * Returns a function that unsubscribes it again. Call it once per process.
 */
export declare function nexusOpenTelemetry (options?: NexusOpenTelemetryOptions): () => void
