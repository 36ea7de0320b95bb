import { request } from 'node:https';

/** The fields of a CloudFormation custom resource event that our handlers use. */
export interface CustomResourceEvent<Props = Record<string, unknown>> {
  RequestType: 'Create' | 'Update' | 'Delete';
  ResponseURL: string;
  StackId: string;
  RequestId: string;
  LogicalResourceId: string;
  PhysicalResourceId?: string;
  ResourceProperties: Props & { ServiceToken: string };
  OldResourceProperties?: Props & { ServiceToken: string };
}

export interface CustomResourceResult {
  physicalResourceId: string;
  data?: Record<string, string>;
}

/**
 * Runs a custom resource handler and always answers CloudFormation (a handler that throws without
 * answering leaves the stack waiting for an hour). Deployment-time only; no application code uses this.
 */
export async function respondTo<Props>(
  event: CustomResourceEvent<Props>,
  work: (event: CustomResourceEvent<Props>) => Promise<CustomResourceResult>,
): Promise<void> {
  let body: Record<string, unknown>;
  try {
    const result = await work(event);
    body = { Status: 'SUCCESS', PhysicalResourceId: result.physicalResourceId, Data: result.data ?? {} };
  } catch (error) {
    console.error(JSON.stringify({ level: 'error', msg: 'custom resource failed', error: String(error) }));
    body = {
      Status: 'FAILED',
      Reason: (error instanceof Error ? error.message : String(error)).slice(0, 3000),
      // A failed Create still needs an id; reusing the old one on Update/Delete keeps CloudFormation's view stable.
      PhysicalResourceId: event.PhysicalResourceId ?? `failed-${event.RequestId}`,
    };
  }
  await put(event.ResponseURL, JSON.stringify({ ...body, StackId: event.StackId, RequestId: event.RequestId, LogicalResourceId: event.LogicalResourceId }));
}

function put(url: string, body: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: 'PUT', headers: { 'content-type': '', 'content-length': Buffer.byteLength(body) } }, (res) => {
      res.resume();
      res.on('end', () => (res.statusCode && res.statusCode < 300 ? resolve() : reject(new Error(`response upload returned ${res.statusCode}`))));
    });
    req.on('error', reject);
    req.end(body);
  });
}
