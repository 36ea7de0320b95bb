import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestProject } from 'vitest/node';
import { freePort } from '../../local/ports';
import { startDynalite, startS3rver, type ManagedService } from '../../local/services';
import { rgwAvailable, startRgw, type RgwServer } from './rgw';

export interface S3Target {
  name: 's3rver' | 'rgw';
  endpoint: string;
  accessKeyId: string;
  secretAccessKey: string;
}

declare module 'vitest' {
  export interface ProvidedContext {
    s3rver: S3Target;
    rgw: S3Target | null;
    dynamoDbEndpoint: string;
  }
}

/**
 * Real services for the whole run: s3rver and dynalite as child processes, and Ceph RGW (the S3 server
 * with Object Lock) when it is installed. In CI RGW is required; elsewhere its tests skip without it.
 */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const dir = mkdtempSync(join(tmpdir(), 'slipstream-test-'));
  const services: ManagedService[] = [];
  let rgw: RgwServer | undefined;
  const teardown = async () => {
    await Promise.all([...services.map((s) => s.stop()), rgw?.stop()]);
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    const [s3Port, dynamoPort] = [await freePort(), await freePort()];
    const [s3rver, dynalite] = await Promise.all([
      startS3rver({ host: '127.0.0.1', port: s3Port, directory: join(dir, 's3'), logFile: join(dir, 's3rver.log') }),
      startDynalite({ host: '127.0.0.1', port: dynamoPort, logFile: join(dir, 'dynalite.log') }),
    ]);
    services.push(s3rver, dynalite);
    project.provide('s3rver', { name: 's3rver', endpoint: s3rver.endpoint, accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' });
    project.provide('dynamoDbEndpoint', dynalite.endpoint);

    if (rgwAvailable()) {
      rgw = await startRgw();
      project.provide('rgw', { name: 'rgw', endpoint: rgw.endpoint, accessKeyId: rgw.accessKeyId, secretAccessKey: rgw.secretAccessKey });
    } else if (process.env.CI === 'true') {
      throw new Error('Ceph RGW (radosgw) is required in CI: .ci/run installs ceph-mon ceph-osd radosgw ceph-common');
    } else {
      console.warn('Ceph RGW is not installed: the Object Lock tests against RGW will be skipped (apt-get install radosgw ceph-mon ceph-osd ceph-common)');
      project.provide('rgw', null);
    }
  } catch (error) {
    await teardown();
    throw error;
  }
  return teardown;
}
