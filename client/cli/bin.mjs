#!/usr/bin/env node
// `slip` for `npx slip …` / npm bin links: registers tsx's loader, then runs the TypeScript entry.
import { register } from 'tsx/esm/api';

register();
await import(new URL('./main.ts', import.meta.url).href);
