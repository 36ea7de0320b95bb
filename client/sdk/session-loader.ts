import { SessionUnavailableError } from './errors';
import type { SessionModule } from './session-types';

export type ModuleImporter = () => Promise<unknown>;

/** Lazy: the session pulls in the protocol core and sockets, which config, ls and prefs never need. */
const importSession: ModuleImporter = () => import('./session');

let loaded: Promise<SessionModule> | undefined;

/** The UDP session module, loaded on first use; `SessionUnavailableError` if it is missing or incomplete. */
export function loadSessionModule(importer: ModuleImporter = importSession): Promise<SessionModule> {
  if (importer !== importSession) return load(importer);
  loaded ??= load(importer).catch((error: unknown) => {
    loaded = undefined; // a later call may find it (e.g. in a long-lived process after an install)
    throw error;
  });
  return loaded;
}

async function load(importer: ModuleImporter): Promise<SessionModule> {
  let module: unknown;
  try {
    module = await importer();
  } catch (error) {
    throw new SessionUnavailableError({ cause: error });
  }
  const candidate = module as Partial<SessionModule> | undefined;
  if (typeof candidate?.runUdpSession !== 'function') {
    throw new SessionUnavailableError({ cause: new Error('client/sdk/session.ts does not export runUdpSession') });
  }
  return {
    runUdpSession: candidate.runUdpSession,
    ...(typeof candidate.checkUdp === 'function' ? { checkUdp: candidate.checkUdp } : {}),
  };
}
