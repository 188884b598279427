/**
 * Every metric the plugin exports, in one table: its name (after the
 * `prefix`), type, help text, labels and, for histograms, buckets. The README
 * lists the same table; a test checks that both, the dashboard in
 * `examples/` and what a scrape shows agree.
 *
 * Labels never carry a room name, a user or a connection id: `route` is the
 * route's URL pattern, `room_class` a bounded class of rooms, `code` a bucket
 * of close codes.
 */

export type MetricType = 'counter' | 'gauge' | 'histogram'

/**
 * Where a metric's value comes from, which also says when it is registered:
 * `core` always; `history` when some room has a history policy; `presence`
 * when some room has a presence policy; `redis` with
 * the Redis adapter (any adapter whose `stats()` has `redisConnected`).
 */
export type Family = 'core' | 'history' | 'presence' | 'redis'

export interface MetricDefinition {
  readonly name: string
  readonly type: MetricType
  readonly help: string
  readonly labels: readonly string[]
  readonly family: Family
  readonly buckets?: readonly number[]
}

/** Seconds a handler runs: from a synchronous handler to a stuck database call. */
const HANDLER_BUCKETS = [0.001, 0.005, 0.025, 0.1, 0.5, 2.5, 10]
/** Seconds a broadcast takes on this instance: writing to its local sockets, handing it to the adapter. */
const BROADCAST_BUCKETS = [0.0001, 0.0005, 0.001, 0.005, 0.025, 0.1]
/** Local sockets a broadcast was written to: 0 for a room with no member here. */
const RECIPIENT_BUCKETS = [0, 1, 10, 100, 1000, 10000]
/** Seconds a connection lasted: a failed page load to a tab left open all day. */
const CONNECTION_BUCKETS = [1, 10, 60, 600, 3600, 21600]
/** Seconds through Redis: PUBLISH answered, a broadcast from its publish to its receipt. */
const REDIS_BUCKETS = [0.0005, 0.001, 0.005, 0.025, 0.1, 0.5]

export const METRICS = [
  // ------------------------------------------------ connections (diagnostics channels)
  { name: 'nexus_connections', type: 'gauge', family: 'core', labels: ['route'], help: 'Open connections of app.ws routes on this instance, by route pattern' },
  { name: 'nexus_handshakes_total', type: 'counter', family: 'core', labels: ['route', 'outcome'], help: 'WebSocket handshakes by outcome: accepted, or refused by auth, origin, schema, timeout (auth too slow) or shutdown' },
  { name: 'nexus_closes_total', type: 'counter', family: 'core', labels: ['route', 'code'], help: 'Closed connections by close code bucket: 1000, 1001, 1006, 1008, 1011, 1013, 4xxx, other' },
  { name: 'nexus_connection_duration_seconds', type: 'histogram', family: 'core', labels: ['route'], buckets: CONNECTION_BUCKETS, help: 'How long closed connections stayed open' },
  { name: 'nexus_handler_duration_seconds', type: 'histogram', family: 'core', labels: ['route', 'handler'], buckets: HANDLER_BUCKETS, help: 'Time the route handlers took until they returned or settled: auth, onConnect (with beforeConnect), onMessage, authorize (a client subscribe, with the join)' },
  { name: 'nexus_handler_errors_total', type: 'counter', family: 'core', labels: ['route', 'handler'], help: 'Handler calls that threw or rejected (for auth: refusals)' },
  { name: 'nexus_broadcast_duration_seconds', type: 'histogram', family: 'core', labels: ['room_class'], buckets: BROADCAST_BUCKETS, help: 'Time a broadcast took on this instance (local writes and the adapter publish), by room class (all: broadcastAll; mixed: rooms of several classes)' },
  { name: 'nexus_broadcast_recipients', type: 'histogram', family: 'core', labels: ['room_class'], buckets: RECIPIENT_BUCKETS, help: 'Local sockets one broadcast was written to, by room class' },
  // ------------------------------------------------ manager counters (read at scrape time from stats())
  { name: 'nexus_rooms', type: 'gauge', family: 'core', labels: [], help: 'Rooms on this instance' },
  { name: 'nexus_messages_received_total', type: 'counter', family: 'core', labels: [], help: 'Inbound messages received' },
  { name: 'nexus_messages_sent_total', type: 'counter', family: 'core', labels: [], help: 'Frames written by broadcast, broadcastAll and send' },
  { name: 'nexus_broadcasts_total', type: 'counter', family: 'core', labels: [], help: 'Calls of broadcast, broadcastAll and roomManager.broadcast' },
  { name: 'nexus_invalid_messages_total', type: 'counter', family: 'core', labels: [], help: 'Inbound frames answered with INVALID_JSON or INVALID_MESSAGE' },
  { name: 'nexus_rate_limited_total', type: 'counter', family: 'core', labels: [], help: 'Inbound messages dropped by the rate limit' },
  { name: 'nexus_errors_total', type: 'counter', family: 'core', labels: [], help: 'Errors thrown by route handlers or emitted by sockets' },
  { name: 'nexus_slow_consumers_total', type: 'counter', family: 'core', labels: [], help: 'Connections closed with 1013 because their unsent bytes would exceed maxBufferedBytes' },
  { name: 'nexus_heartbeat_timeouts_total', type: 'counter', family: 'core', labels: [], help: 'Connections terminated because they did not answer a heartbeat ping' },
  // ------------------------------------------------ history rooms
  { name: 'nexus_history_appended_total', type: 'counter', family: 'history', labels: [], help: 'Messages stored in a history room' },
  { name: 'nexus_history_failures_total', type: 'counter', family: 'history', labels: [], help: 'Messages of a history room that could not be stored (and were not delivered)' },
  { name: 'nexus_history_replayed_total', type: 'counter', family: 'history', labels: [], help: 'Messages written to resuming clients from history' },
  { name: 'nexus_history_gaps_filled_total', type: 'counter', family: 'history', labels: [], help: 'Gaps in a history room filled from the store' },
  { name: 'nexus_resumes_total', type: 'counter', family: 'history', labels: ['outcome'], help: 'Rooms a client presented a position for: recovered (nothing missed) or failed (could not be replayed exactly)' },
  // ------------------------------------------------ presence rooms
  { name: 'nexus_presence_updates_total', type: 'counter', family: 'presence', labels: [], help: 'Writes of this instance\'s presence changes to the store (at most one per room per window)' },
  { name: 'nexus_presence_failures_total', type: 'counter', family: 'presence', labels: [], help: 'Presence writes that failed (the room is written again, whole, once the store answers)' },
  { name: 'nexus_presence_frames_total', type: 'counter', family: 'presence', labels: [], help: 'Presence frames (snapshots, changes, counts) written to watchers' },
  // ------------------------------------------------ Redis adapter
  { name: 'nexus_redis_connected', type: 'gauge', family: 'redis', labels: [], help: '1 when the connections to Redis are ready and every channel is subscribed, else 0' },
  { name: 'nexus_redis_room_channels', type: 'gauge', family: 'redis', labels: [], help: 'Room channels subscribed: rooms with a member on this instance' },
  { name: 'nexus_redis_published_total', type: 'counter', family: 'redis', labels: [], help: 'Broadcasts published to Redis' },
  { name: 'nexus_redis_publish_errors_total', type: 'counter', family: 'redis', labels: [], help: 'Broadcasts that could not be published (they reached this instance only)' },
  { name: 'nexus_redis_received_total', type: 'counter', family: 'redis', labels: [], help: 'Broadcasts received from other instances, and history messages' },
  { name: 'nexus_redis_delivered_total', type: 'counter', family: 'redis', labels: [], help: 'Frames written to local sockets for broadcasts of other instances' },
  { name: 'nexus_redis_invalid_messages_total', type: 'counter', family: 'redis', labels: [], help: 'Messages from Redis that did not decode, dropped' },
  { name: 'nexus_redis_query_timeouts_total', type: 'counter', family: 'redis', labels: [], help: 'Cluster-wide queries answered without every instance, at their timeout' },
  { name: 'nexus_redis_presence_reaped_total', type: 'counter', family: 'redis', labels: [], help: 'Dead instances whose presence members this instance removed' },
  { name: 'nexus_redis_publish_duration_seconds', type: 'histogram', family: 'redis', labels: [], buckets: REDIS_BUCKETS, help: 'Time from a broadcast\'s PUBLISH to Redis\'s reply' },
  { name: 'nexus_redis_lag_seconds', type: 'histogram', family: 'redis', labels: [], buckets: REDIS_BUCKETS, help: 'Time from a broadcast\'s publish on another instance to its receipt here (clocks of one machine or NTP)' }
] as const satisfies readonly MetricDefinition[]

export type MetricName = typeof METRICS[number]['name']
