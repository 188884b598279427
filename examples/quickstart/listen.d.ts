// The types of the plugin's opt-in `listen: 'positional'` (server.ts registers
// the plugin with it), so that the seed's `app.listen(3000, () => …)` also
// type-checks. An app installed from npm writes
// `import type {} from 'fastify-nexus-realtime/listen'`; this repository
// reaches the same file by its path.
import type {} from '../../types/listen'
