import { GetSecretValueCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import type { Config } from './config';
import { Keyring } from './token';

/** Loads the token keyring from inline JSON (local stack, tests) or Secrets Manager (AWS). */
export async function loadKeyring(config: Pick<Config, 'tokenKeys' | 'region'>): Promise<Keyring> {
  if (!config.tokenKeys) throw new Error('no token keys configured: set SLIPSTREAM_TOKEN_KEYS or SLIPSTREAM_TOKEN_SECRET_ARN');
  if (config.tokenKeys.source === 'inline') return Keyring.fromJson(config.tokenKeys.json);
  const client = new SecretsManagerClient({ region: config.region });
  const secret = await client.send(new GetSecretValueCommand({ SecretId: config.tokenKeys.secretArn }));
  if (!secret.SecretString) throw new Error('token key secret has no string value');
  return Keyring.fromJson(secret.SecretString);
}
