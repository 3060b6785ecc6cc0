import { defineConfig } from 'vite';

// The dashboard is static files the daemon serves (dist/dashboard); it reads /ui/state.
export default defineConfig({
  root: 'dashboard',
  base: './',
  logLevel: 'warn',
  build: { outDir: '../dist/dashboard', emptyOutDir: true, sourcemap: false, target: 'es2022' },
});
