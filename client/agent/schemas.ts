import { z } from 'zod';
import { bucketNameSchema, keyPrefixSchema, objectKeyProblem, transferStatusSchema } from '../../contracts';

/**
 * The local agent's HTTP API (`slip agent`), shared by the agent and the console page: browser-safe
 * (zod and contracts only). Every request but `GET /v1/agent` carries the pairing token in this header;
 * a custom header also forces a CORS preflight, so only allow-listed origins get that far.
 */
export const agentTokenHeader = 'x-slipstream-agent-token';
export const defaultAgentPort = 55_002;
export const agentApiVersion = 1;

/** A path inside a shared folder, `/`-separated; `''` is the folder itself. Checked again against the disk. */
export function sharePathProblem(path: string): string | undefined {
  if (path === '') return undefined;
  const problem = objectKeyProblem(path);
  if (problem) return problem;
  if (path.endsWith('/')) return 'must not end with "/"';
  return undefined;
}

export const sharePathSchema = z
  .string()
  .max(4096)
  .superRefine((path, ctx) => {
    const problem = sharePathProblem(path);
    if (problem) ctx.addIssue({ code: 'custom', message: `path ${problem}` });
  });

/** `GET /v1/agent`: answered without the token, so the page can tell "not running" from "not paired". */
export const agentInfoSchema = z.object({
  service: z.literal('slipstream-agent'),
  apiVersion: z.number().int(),
  /** The request carried the right pairing token. */
  paired: z.boolean(),
  shares: z.number().int(),
});
export type AgentInfo = z.infer<typeof agentInfoSchema>;

export const shareSchema = z.object({ id: z.string(), name: z.string() });
export const shareListSchema = z.object({ shares: z.array(shareSchema) });
export type Share = z.infer<typeof shareSchema>;

export const shareEntrySchema = z.object({
  name: z.string(),
  /** Inside the share, `/`-separated: what an upload request names. */
  path: z.string(),
  type: z.enum(['file', 'folder']),
  sizeBytes: z.number().int().nullable(),
  modified: z.string(),
});
export type ShareEntry = z.infer<typeof shareEntrySchema>;

export const shareEntriesSchema = z.object({
  share: z.string(),
  path: z.string(),
  entries: z.array(shareEntrySchema),
  /** More entries than one answer holds; the first ones (folders, then files, by name) are shown. */
  truncated: z.boolean(),
});
export type ShareEntries = z.infer<typeof shareEntriesSchema>;

export const shareEntriesQuerySchema = z.strictObject({ path: sharePathSchema.default('') });

/** Paths per upload request: a page picks a handful of entries (folders expand on the agent). */
export const maxAgentUploadPaths = 100;

/** The API the agent calls for the page, with the page's own key (it is never stored). */
const apiAccess = {
  endpoint: z.url({ protocol: /^https?$/ }).max(2048),
  apiKey: z.string().min(1).max(512),
  bucket: bucketNameSchema,
};

export const agentUploadRequestSchema = z.strictObject({
  direction: z.literal('upload'),
  ...apiAccess,
  /** Below this prefix: `prefix/<name>`, folders as `prefix/<folder>/…`. */
  prefix: keyPrefixSchema.default(''),
  share: z.string().min(1).max(64),
  paths: z.array(sharePathSchema.refine((p) => p !== '', { message: 'name a file or folder inside the share' })).min(1).max(maxAgentUploadPaths),
});

export const agentDownloadRequestSchema = z.strictObject({
  direction: z.literal('download'),
  ...apiAccess,
  /** An object key, or a prefix ending in `/` (a whole folder). */
  key: z.string().superRefine((key, ctx) => {
    const problem = objectKeyProblem(key.endsWith('/') ? key.slice(0, -1) : key);
    if (problem) ctx.addIssue({ code: 'custom', message: `key ${problem}` });
  }),
});

export const agentTransferRequestSchema = z.discriminatedUnion('direction', [agentUploadRequestSchema, agentDownloadRequestSchema]);
export type AgentTransferRequest = z.infer<typeof agentTransferRequestSchema>;

export const agentTransferSchema = z.object({
  id: z.string(),
  direction: z.enum(['upload', 'download']),
  /** What the user picked: a file or folder name, or "N items". */
  name: z.string(),
  bucket: z.string(),
  status: transferStatusSchema,
  bytesDone: z.number(),
  bytesTotal: z.number().nullable(),
  filesDone: z.number().int(),
  filesTotal: z.number().int().nullable(),
  rateKbps: z.number(),
  /** What moves the bytes now: the UDP engine, or HTTPS when UDP is blocked. */
  transport: z.enum(['udp', 'http']),
  createdAt: z.string(),
  elapsedMs: z.number(),
  /** The service's transfer ids, once set up. */
  transferIds: z.array(z.string()),
  error: z.object({ code: z.string(), message: z.string() }).nullable(),
});
export type AgentTransfer = z.infer<typeof agentTransferSchema>;

export const agentTransferListSchema = z.object({ transfers: z.array(agentTransferSchema) });
