import { createHmac, timingSafeEqual } from 'crypto';

/** What every gateway webhook secret starts with (Standard Webhooks). */
export const SECRET_PREFIX = 'whsec_';

/** How far a webhook's timestamp may be from now, in seconds (Standard Webhooks' 5 minutes). */
export const TOLERANCE_SECS = 5 * 60;

/** The three Standard Webhooks headers, as n8n gives them (lower case). */
export interface SignedHeaders {
	'webhook-id'?: string | string[];
	'webhook-timestamp'?: string | string[];
	'webhook-signature'?: string | string[];
}

/** Why a request was refused; never a secret or a signature. */
export type Verdict = { ok: true; id: string } | { ok: false; reason: string };

function one(value: string | string[] | undefined): string {
	return (Array.isArray(value) ? value[0] : value) ?? '';
}

/** The HMAC key of a `whsec_` secret: its base64 part decoded; `null` when it is not one. */
export function signingKey(secret: string): Buffer | null {
	if (!secret.startsWith(SECRET_PREFIX)) {
		return null;
	}
	const encoded = secret.slice(SECRET_PREFIX.length);
	if (encoded === '' || !/^[A-Za-z0-9+/]+={0,2}$/.test(encoded)) {
		return null;
	}
	const key = Buffer.from(encoded, 'base64');
	return key.length > 0 ? key : null;
}

/** `v1,` and the base64 HMAC-SHA256 of `{id}.{timestamp}.{body}`. */
export function sign(key: Buffer, id: string, timestamp: string, body: Buffer): string {
	const mac = createHmac('sha256', key);
	mac.update(`${id}.${timestamp}.`, 'utf8');
	mac.update(body);
	return `v1,${mac.digest('base64')}`;
}

/**
 * Checks a delivery as the Standard Webhooks specification says: the
 * timestamp within `TOLERANCE_SECS` of `nowSecs`, and one of the
 * space-separated `v1,` signatures equal (in constant time) to the HMAC of
 * the exact bytes received.
 */
export function verify(
	secret: string,
	headers: SignedHeaders,
	rawBody: Buffer,
	nowSecs: number,
): Verdict {
	const key = signingKey(secret);
	if (key === null) {
		return { ok: false, reason: 'the stored webhook secret is not a whsec_ secret' };
	}
	const id = one(headers['webhook-id']);
	const timestamp = one(headers['webhook-timestamp']);
	const signatures = one(headers['webhook-signature']);
	if (id === '' || timestamp === '' || signatures === '') {
		return {
			ok: false,
			reason: 'the webhook-id, webhook-timestamp or webhook-signature header is missing',
		};
	}
	if (!/^\d{1,15}$/.test(timestamp)) {
		return { ok: false, reason: 'the webhook-timestamp header is not Unix seconds' };
	}
	if (Math.abs(nowSecs - Number(timestamp)) > TOLERANCE_SECS) {
		return { ok: false, reason: 'the webhook-timestamp is more than 5 minutes away from now' };
	}
	const expected = Buffer.from(sign(key, id, timestamp, rawBody).slice(3), 'base64');
	for (const candidate of signatures.split(' ')) {
		const comma = candidate.indexOf(',');
		if (comma < 0 || candidate.slice(0, comma) !== 'v1') {
			continue;
		}
		const given = Buffer.from(candidate.slice(comma + 1), 'base64');
		if (given.length === expected.length && timingSafeEqual(given, expected)) {
			return { ok: true, id };
		}
	}
	return { ok: false, reason: 'no signature in the webhook-signature header matches' };
}
