import { randomBytes } from 'node:crypto';
import { GetSecretValueCommand, PutSecretValueCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { respondTo, type CustomResourceEvent } from './cfn-response';

interface Props {
  SecretArn: string;
  KeyId: string;
}

const client = new SecretsManagerClient({ maxAttempts: 5 });

/** True if the secret already holds a keyring (so a rotated keyring is never overwritten). */
export function isKeyring(text: string | undefined): boolean {
  if (!text) return false;
  try {
    const value = JSON.parse(text) as { currentKeyId?: unknown; keys?: unknown };
    return (
      typeof value.currentKeyId === 'string' &&
      typeof value.keys === 'object' &&
      value.keys !== null &&
      typeof (value.keys as Record<string, unknown>)[value.currentKeyId] === 'string'
    );
  } catch {
    return false;
  }
}

export function newKeyring(keyId: string): string {
  return JSON.stringify({ currentKeyId: keyId, keys: { [keyId]: randomBytes(32).toString('base64') } });
}

/**
 * Writes the first token keyring, `{"currentKeyId":"k1","keys":{"k1":"<base64 of 32 random bytes>"}}`, into
 * the secret when it is created (or replaced). Any later change of the keyring is a manual rotation that
 * this resource never touches: Update and Delete do nothing to the value.
 */
export async function handler(event: CustomResourceEvent<Props>): Promise<void> {
  await respondTo(event, async (e) => {
    const { SecretArn, KeyId } = e.ResourceProperties;
    const secretChanged = e.RequestType === 'Update' && e.OldResourceProperties?.SecretArn !== SecretArn;
    if (e.RequestType === 'Create' || secretChanged) {
      const current = await client.send(new GetSecretValueCommand({ SecretId: SecretArn }));
      if (!isKeyring(current.SecretString)) {
        await client.send(new PutSecretValueCommand({ SecretId: SecretArn, SecretString: newKeyring(KeyId) }));
      }
    }
    return { physicalResourceId: SecretArn };
  });
}
