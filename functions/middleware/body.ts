import type { Context, MiddlewareHandler } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import { XMLParser, XMLValidator } from 'fast-xml-parser';
import type { z } from 'zod';
import { ServiceError } from '../../core/errors';
import { zodMessage } from '../errors';

/** 413 above `maxBytes`, whether or not the client declared a length. */
export function limitBody(maxBytes: number): MiddlewareHandler {
  return bodyLimit({
    maxSize: maxBytes,
    onError: () => {
      throw new ServiceError('PayloadTooLarge', `request body is larger than ${maxBytes} bytes`);
    },
  });
}

function mediaType(c: Context): string {
  return (c.req.header('content-type') ?? '').split(';')[0]!.trim().toLowerCase();
}

export function isXmlRequest(c: Context): boolean {
  return ['application/xml', 'text/xml'].includes(mediaType(c));
}

/** Reads a JSON body and validates it: 415 for another media type, 400 for bad JSON or a bad shape. */
export async function readJson<T extends z.ZodType>(c: Context, schema: T): Promise<z.infer<T>> {
  const type = mediaType(c);
  if (type !== 'application/json') {
    throw new ServiceError('UnsupportedMediaType', `send the body as application/json (got ${type || 'no content type'})`);
  }
  return parseJsonText(await c.req.text(), schema);
}

export function parseJsonText<T extends z.ZodType>(text: string, schema: T): z.infer<T> {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new ServiceError('MalformedJSON', `request body is not valid JSON: ${(error as Error).message}`);
  }
  const parsed = schema.safeParse(value);
  if (!parsed.success) throw new ServiceError('ValidationError', zodMessage(parsed.error));
  return parsed.data;
}

const xmlParser = new XMLParser({ ignoreAttributes: true, parseTagValue: false, trimValues: true, processEntities: false });

/** Parses XML without entity expansion (no billion-laughs) and returns the element tree as plain objects. */
export function parseXmlText(text: string): Record<string, unknown> {
  const valid = XMLValidator.validate(text);
  if (valid !== true) {
    throw new ServiceError('MalformedXML', `request body is not well-formed XML: ${valid.err.msg} (line ${valid.err.line})`);
  }
  if (/<!DOCTYPE|<!ENTITY/i.test(text)) throw new ServiceError('MalformedXML', 'DOCTYPE and ENTITY declarations are not accepted');
  return xmlParser.parse(text) as Record<string, unknown>;
}

export function xmlEscape(text: string): string {
  return text.replace(/[<>&'"]/g, (ch) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', "'": '&apos;', '"': '&quot;' })[ch]!);
}
