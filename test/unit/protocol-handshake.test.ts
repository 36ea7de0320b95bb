import { describe, expect, it } from 'vitest';
import { cleanLink } from '../sim/link';
import { plainUpload, scenarioFrom, type Scenario } from '../sim/scenario';
import { runScenario } from '../sim/world';

/**
 * A 1 MiB upload over 300 ms whose first ServerHello is lost, together with the server's flow credit
 * (MAX_DATA) sent right after it: a client without keys could not have read that credit anyway.
 */
function lostServerHello(): Scenario {
  const draft = plainUpload({ ...cleanLink(150), rateMbps: 100, queueMs: 100 }, 1024 * 1024, 100_000);
  return scenarioFrom(1, 'lost-server-hello', { ...draft, s2c: { ...draft.s2c, blackouts: [{ startMs: 149, endMs: 152 }] } });
}

describe('handshake', () => {
  it('sends again what the server sent before the client had keys, once its first packet opens', () => {
    const lines: string[] = [];
    const result = runScenario(lostServerHello(), { trace: (line) => lines.push(line) });
    expect(result.failures).toEqual([]);
    const at = (pattern: RegExp) => Number(lines.find((line) => pattern.test(line))?.trim().split(/\s+/)[0]);
    const connectedMs = at(/client event connected/);
    const firstDataMs = at(/client → pn=\d+\(1400 B\)/);
    expect(lines.some((line) => /ServerHello.*dropped/.test(line))).toBe(true);
    // The client's first packet reaches the server half a round trip after it connected, the credit
    // comes back in the other half. Left to the probe timer and loss detection, it took 720 ms here.
    expect(firstDataMs - connectedMs).toBeLessThan(300 + 5);
  });
});
