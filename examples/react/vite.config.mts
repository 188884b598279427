// Builds the React page: `npm run example:react:build` (`vite build examples/react`)
// writes examples/react/dist/, which examples/react/server.ts serves.
// `npx vite examples/react` runs Vite's dev server instead; it forwards /ws to
// the example server on port 3000, which must be running.
import { defineConfig } from 'vite'
import react from '@vitejs/plugin-react'

export default defineConfig({
  plugins: [react()],
  build: {
    outDir: 'dist',
    emptyOutDir: true
  },
  server: {
    proxy: {
      '/ws': { target: 'ws://localhost:3000', ws: true }
    }
  }
})
