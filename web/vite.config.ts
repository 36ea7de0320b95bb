import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vite';

/**
 * The console (web/README.md). `base: './'`: asset URLs are relative, so the same build works at `/` of
 * the local stack, at the root of CloudFront, and under a reverse proxy's path prefix.
 */
export default defineConfig({
  root: fileURLToPath(new URL('.', import.meta.url)),
  base: './',
  logLevel: 'warn',
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    target: 'es2022',
    // The bundle is small; one file per kind keeps the page at three requests.
    cssCodeSplit: false,
    reportCompressedSize: false,
  },
});
