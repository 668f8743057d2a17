import path from 'node:path';
import { defineConfig } from 'vite';

// The web page is a plain Vite build of Preact components; the server serves web/dist.
// JSX goes through esbuild's automatic runtime, so no framework plugin is needed.
export default defineConfig({
  root: import.meta.dirname,
  base: '/',
  esbuild: { jsx: 'automatic', jsxImportSource: 'preact' },
  build: { outDir: path.join(import.meta.dirname, 'dist'), emptyOutDir: true, sourcemap: true },
  server: { proxy: { '/api': 'http://127.0.0.1:8080' } },
});
