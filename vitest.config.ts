import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    // verbose: each test printed as it ends, so a log cut off by CI still shows where the run stood.
    // The watchdog turns a worker that stopped answering into a failure with its stack (docs/testing.md).
    reporters: ["verbose", "./test/support/hang-watchdog.ts"],
    projects: [
      {
        test: {
          name: "unit",
          setupFiles: ["test/support/leaks.ts"],
          include: ["internal/**/*.spec.ts", "web/src/**/*.spec.ts", "bench/**/*.spec.ts", "test/support/**/*.spec.ts"],
          testTimeout: 20_000,
          // Hooks open embedded databases (PGlite, SQLite) and servers: vitest's 10 s default is
          // a quiet machine's figure, and a busy one takes several times longer.
          hookTimeout: 60_000,
        },
      },
      {
        test: {
          name: "servers",
          setupFiles: ["test/support/leaks.ts"],
          include: ["test/servers/**/*.test.ts"],
          // Longer than waitFor's 60 s default, so a slow outcome is reported by the wait that gave up.
          testTimeout: 120_000,
          // Hooks start servers (etcd with TLS), run migrations and wait for them the same way.
          hookTimeout: 120_000,
        },
      },
      {
        test: {
          name: "e2e",
          setupFiles: ["test/support/leaks.ts"],
          include: ["test/e2e/**/*.test.ts", "test/browser/**/*.test.ts"],
          testTimeout: 120_000,
          hookTimeout: 180_000,
          // expect.poll waits for an outcome; a loaded machine may take far longer than a quiet one.
          expect: { poll: { timeout: 30_000 } },
          // Each file runs its own cluster of real processes: one file at a time on 2 cores.
          fileParallelism: false,
        },
      },
    ],
  },
});
