import path from "node:path";
import { defineConfig } from "vite";

// The browser client shares the TypeScript client library (internal/client) and the
// generated protobuf code (gen/) with the CLI and the tests.
const root = path.dirname(new URL(import.meta.url).pathname);
export default defineConfig({
  root,
  base: "/",
  build: { outDir: path.join(root, "dist"), emptyOutDir: true, target: "es2022", sourcemap: true },
  server: { fs: { allow: [path.resolve(root, "..")] } },
});
