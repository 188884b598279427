import type { CloseCode as CloseCodeType, ErrorFrameCode as ErrorFrameCodeType } from '../types/index'

/** Close codes the plugin sends (RFC 6455, section 7.4.1). */
export const CloseCode: typeof CloseCodeType = Object.freeze({
  GOING_AWAY: 1001,
  PROTOCOL_ERROR: 1002,
  INVALID_PAYLOAD: 1007,
  POLICY_VIOLATION: 1008,
  MESSAGE_TOO_BIG: 1009,
  INTERNAL_ERROR: 1011,
  TRY_AGAIN_LATER: 1013
} as const)

/** `code` of the error frames sent to clients. */
export const ErrorFrameCode: typeof ErrorFrameCodeType = Object.freeze({
  INVALID_JSON: 'INVALID_JSON',
  INVALID_MESSAGE: 'INVALID_MESSAGE',
  RATE_LIMITED: 'RATE_LIMITED',
  INVALID_FRAME: 'INVALID_FRAME',
  INTERNAL: 'INTERNAL',
  NOT_ENABLED: 'NOT_ENABLED',
  INVALID_ROOM: 'INVALID_ROOM',
  FORBIDDEN: 'FORBIDDEN',
  LIMIT: 'LIMIT',
  TIMEOUT: 'TIMEOUT'
} as const)

/** The code ws reports when a connection ended without a close frame from the peer. */
export const ABNORMAL_CLOSURE = 1006

/** Room names are non-empty strings up to this many characters. */
export const MAX_ROOM_NAME_LENGTH = 256

/** ws's OPEN readyState, kept here so the hot path compares against a constant. */
export const OPEN = 1

/**
 * Inbound messages held for one connection before its socket is paused: a
 * client that sends faster than `onMessage` completes is slowed down at the
 * TCP level instead of growing the server's memory.
 */
export const INBOUND_HIGH_WATER_MARK = 1024

/**
 * How long a peer closed for misbehaving has to complete its close before it
 * is terminated: a slow consumer (1013) has stopped reading, so the close
 * frame may never get through; a flooder (1008) is no longer read, so its
 * answer would never be seen.
 */
export const CLOSE_GRACE_MS = 1000

/** Validation errors sent back in an INVALID_MESSAGE frame, at most. */
export const MAX_REPORTED_ERRORS = 10

/** Rooms one connection may hold by its own subscribes, by default. */
export const DEFAULT_MAX_ROOMS = 128

/** Milliseconds `rooms.authorize` may take, by default. */
export const DEFAULT_AUTHORIZE_TIMEOUT = 10_000

/** The longest delay setTimeout honours. */
export const MAX_TIMEOUT = 2 ** 31 - 1

/** How long a `nexus.v1` connection that said it presents positions waits for them before its connect phase starts without. */
export const POSITIONS_WAIT_MS = 10_000
