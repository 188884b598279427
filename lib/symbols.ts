/** The Connection behind a ws socket of an `app.ws` route. */
export const kConnection = Symbol('nexus.connection')
/** The WebSocketContext built before the upgrade (by `auth`), stored on the Fastify request. */
export const kContext = Symbol('nexus.context')
/** Set on a Fastify request whose `nexus.v1` handshake `auth` refused: the close to answer it with. */
export const kRefused = Symbol('nexus.refused')
