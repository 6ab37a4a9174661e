import { defineConfig } from 'vitest/config';
import react from '@vitejs/plugin-react';

// In development the API runs separately (`remora tap` / `remora serve` on
// :8899); in production the remora binary serves these files and /graphql itself.
const api = process.env.REMORA_API ?? 'http://localhost:8899';

export default defineConfig({
  plugins: [react()],
  server: {
    proxy: {
      '/graphql': { target: api, ws: true, changeOrigin: true },
    },
  },
  preview: {
    proxy: {
      '/graphql': { target: api, ws: true, changeOrigin: true },
    },
  },
  build: {
    target: 'es2022',
    chunkSizeWarningLimit: 700,
  },
  test: {
    include: ['src/**/*.test.ts', 'e2e/**/*.test.mjs'],
    environment: 'node',
  },
});
