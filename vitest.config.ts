import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Builds src/client first: the server and the browser tests use the built client.
    globalSetup: ['test/global-setup.ts'],
    // Integration tests start real servers and run sharp; two cores are shared with them.
    pool: 'forks',
    testTimeout: 30_000,
    hookTimeout: 60_000,
  },
});
