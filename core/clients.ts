import { S3Client } from '@aws-sdk/client-s3';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import type { Config } from './config';

type ClientConfig = Pick<Config, 'region' | 's3Endpoint' | 's3PublicEndpoint' | 's3ForcePathStyle' | 'dynamoDbEndpoint' | 'credentials'>;

/**
 * S3 clients for AWS and for S3-compatible servers (RGW, s3rver). Outside AWS, checksums are sent and
 * checked only when an operation requires them: RGW refuses aws-chunked streamed bodies (411).
 */
export function createS3Client(config: ClientConfig, endpoint = config.s3Endpoint): S3Client {
  const compatible = endpoint !== undefined;
  return new S3Client({
    region: config.region,
    ...(endpoint ? { endpoint } : {}),
    forcePathStyle: config.s3ForcePathStyle,
    ...(config.credentials ? { credentials: config.credentials } : {}),
    ...(compatible ? { requestChecksumCalculation: 'WHEN_REQUIRED', responseChecksumValidation: 'WHEN_REQUIRED' } : {}),
    maxAttempts: 3,
  });
}

/** The client whose presigned URLs a remote client can reach. */
export function createPresignS3Client(config: ClientConfig): S3Client {
  return createS3Client(config, config.s3PublicEndpoint ?? config.s3Endpoint);
}

export function createDocumentClient(config: ClientConfig): DynamoDBDocumentClient {
  const client = new DynamoDBClient({
    region: config.region,
    ...(config.dynamoDbEndpoint
      ? { endpoint: config.dynamoDbEndpoint, credentials: { accessKeyId: 'local', secretAccessKey: 'local' } }
      : {}),
    maxAttempts: 3,
  });
  return DynamoDBDocumentClient.from(client, { marshallOptions: { removeUndefinedValues: true } });
}
