// Loaded with NODE_OPTIONS=--import=… into a process the benchmark starts (the engine), because Node 20
// does not allow --cpu-prof in NODE_OPTIONS. Samples the process with the inspector's profiler from the
// first SIGUSR2 (sent just before the measured transfer, so start-up and module loading stay out) and
// writes a .cpuprofile into SLIPSTREAM_BENCH_CPU_PROFILE_DIR when the process exits (the engine exits on
// SIGTERM).
import { writeFileSync } from 'node:fs';
import { Session } from 'node:inspector';
import { join } from 'node:path';

const dir = process.env.SLIPSTREAM_BENCH_CPU_PROFILE_DIR;
if (dir) {
  const session = new Session();
  session.connect();
  let started = false;
  process.on('SIGUSR2', () => {
    if (started) return;
    started = true;
    session.post('Profiler.enable');
    session.post('Profiler.setSamplingInterval', { interval: Number(process.env.SLIPSTREAM_BENCH_CPU_PROFILE_INTERVAL_US ?? 500) });
    session.post('Profiler.start');
  });
  process.on('exit', () => {
    if (!started) return;
    // In-thread inspector calls complete synchronously, so this works inside 'exit'.
    session.post('Profiler.stop', (error, result) => {
      if (!error) writeFileSync(join(dir, `engine-${process.pid}.cpuprofile`), JSON.stringify(result.profile));
    });
  });
}
