/// <reference types="vitest/config" />
import { defineConfig } from "vite";

const here = (p: string) => new URL(p, import.meta.url).pathname;

// Builds ONE self-contained ES module, ../tb_plugin/static/index.js, that
// TensorBoard imports from its plugin iframe (data/plugin_entry.html does
// `import("./index.js").then((m) => void m.render())`). Everything (ECharts,
// CSS) is bundled: TensorBoard's CSP blocks external scripts, fonts and CSS.
// Built as an app entry with its exports preserved (rather than library mode)
// so that esbuild minifies whitespace too.
export default defineConfig({
  // ECharts' code branches on process.env.NODE_ENV.
  define: { "process.env.NODE_ENV": JSON.stringify("production") },
  build: {
    outDir: here("../tb_plugin/static"),
    emptyOutDir: false,
    target: "es2020",
    minify: "esbuild",
    sourcemap: false,
    modulePreload: false,
    copyPublicDir: false,
    reportCompressedSize: true,
    chunkSizeWarningLimit: 800,
    rollupOptions: {
      input: here("./src/index.ts"),
      preserveEntrySignatures: "strict",
      output: {
        format: "es",
        entryFileNames: "index.js",
        inlineDynamicImports: true,
      },
    },
  },
  test: {
    environment: "jsdom",
    globals: true,
    include: ["tests/**/*.test.ts"],
  },
});
