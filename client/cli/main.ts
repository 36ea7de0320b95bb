import { runCli } from './cli';
import { processIo } from './io';

/** `slip` entry: `node --import tsx client/cli/main.ts …`, `npm run slip -- …`, or `npx slip …` (bin.mjs). */
const code = await runCli(process.argv.slice(2), processIo());
// Exit explicitly: an interrupted session or idle keep-alive sockets must not hold the process open.
process.stdout.write('', () => process.exit(code));
