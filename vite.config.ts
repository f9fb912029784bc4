import react from '@vitejs/plugin-react';
import { defineConfig } from 'vite';

// The web UI: built into dist/web and served by the Hush server at `/`.
export default defineConfig({
  root: 'web',
  plugins: [react()],
  build: { outDir: '../dist/web', emptyOutDir: true, sourcemap: false },
  server: { proxy: { '/api': 'http://127.0.0.1:8080' } },
});
