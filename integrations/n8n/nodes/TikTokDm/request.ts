import type { IDataObject, IHttpRequestOptions } from 'n8n-workflow';

/** What one item asks to send, after the node's own checks. */
export interface SendInput {
	/** Into a conversation (its ID, and its short ID when known), or to a user by their ID. */
	sendTo: 'conversation' | 'user';
	conversationId: string;
	/** May be empty: the gateway then looks it up in the account's inbox. */
	conversationShortId: string;
	toUid: string;
	text: string;
	image?:
		| { kind: 'binary'; bytes: Buffer; fileName: string; mimeType: string }
		| { kind: 'base64'; value: string };
	account: string;
	idempotencyKey: string;
	waitForDelivery: boolean;
}

/** A check that failed before any request was made. */
export class InputProblem extends Error {}

const BASE64 = /^[A-Za-z0-9+/_-]+={0,2}$/;

/**
 * Accepts raw base64 (either alphabet, with or without padding, whitespace
 * allowed) or a `data:image/...;base64,` URI; returns it as given when valid.
 */
export function checkBase64(value: string): string {
	const trimmed = value.trim();
	if (trimmed === '') {
		throw new InputProblem('The Base64 Image field is empty');
	}
	let payload = trimmed;
	if (trimmed.toLowerCase().startsWith('data:')) {
		const comma = trimmed.indexOf(',');
		if (comma < 0 || !trimmed.slice(0, comma).toLowerCase().endsWith(';base64')) {
			throw new InputProblem('The data URI must look like data:image/png;base64,<data>');
		}
		payload = trimmed.slice(comma + 1);
	}
	const compact = payload.replace(/\s+/g, '');
	if (compact === '' || !BASE64.test(compact)) {
		const bad = compact.search(/[^A-Za-z0-9+/_=-]/);
		throw new InputProblem(
			bad >= 0
				? `The Base64 Image is not valid base64 (unexpected character at position ${bad})`
				: 'The Base64 Image is not valid base64',
		);
	}
	return trimmed;
}

/**
 * The node's own checks, the same the original "TikTok Send" node made.
 * `hasImage`: an image is given (a binary one is read only after these checks).
 */
export function checkInput(input: SendInput, hasImage: boolean): void {
	if (input.sendTo === 'user') {
		if (input.toUid.trim() === '') {
			throw new InputProblem('User ID is required');
		}
		if (!/^\d+$/.test(input.toUid.trim())) {
			throw new InputProblem('User ID must be a number');
		}
	} else {
		if (input.conversationId.trim() === '') {
			throw new InputProblem('Conversation ID is required');
		}
		const shortId = input.conversationShortId.trim();
		if (shortId !== '' && !/^\d+$/.test(shortId)) {
			throw new InputProblem('Conversation Short ID must be a number');
		}
	}
	if (input.text.trim() === '' && !hasImage) {
		throw new InputProblem('Either text or an image must be provided');
	}
}

function quote(value: string): string {
	return value.replace(/[\r\n"\\]/g, '_');
}

/** A multipart/form-data body with the text fields and the image as a file part. */
export function multipart(
	fields: Array<[string, string]>,
	file: { name: string; fileName: string; mimeType: string; bytes: Buffer },
	boundary: string,
): Buffer {
	const parts: Buffer[] = [];
	for (const [name, value] of fields) {
		parts.push(
			Buffer.from(
				`--${boundary}\r\nContent-Disposition: form-data; name="${quote(name)}"\r\n\r\n${value}\r\n`,
				'utf8',
			),
		);
	}
	parts.push(
		Buffer.from(
			`--${boundary}\r\nContent-Disposition: form-data; name="${quote(file.name)}"; filename="${quote(file.fileName)}"\r\nContent-Type: ${quote(file.mimeType)}\r\n\r\n`,
			'utf8',
		),
	);
	parts.push(file.bytes);
	parts.push(Buffer.from(`\r\n--${boundary}--\r\n`, 'utf8'));
	return Buffer.concat(parts);
}

/**
 * Whom the send goes to, as the gateway's fields: `to_uid` alone, or
 * `conversation_id` with `conversation_short_id` when one is given.
 */
export function targetFields(input: SendInput): Array<[string, string]> {
	if (input.sendTo === 'user') {
		return [['to_uid', input.toUid.trim()]];
	}
	const fields: Array<[string, string]> = [['conversation_id', input.conversationId.trim()]];
	if (input.conversationShortId.trim() !== '') {
		fields.push(['conversation_short_id', input.conversationShortId.trim()]);
	}
	return fields;
}

/** The gateway request for one item (JSON, or multipart for binary data). */
export function buildRequest(
	gatewayUrl: string,
	input: SendInput,
	boundary: string,
): IHttpRequestOptions {
	const headers: IDataObject = {};
	if (input.idempotencyKey !== '') {
		headers['Idempotency-Key'] = input.idempotencyKey;
	}
	if (!input.waitForDelivery) {
		headers.Prefer = 'respond-async';
	}
	const url = `${gatewayUrl.replace(/\/+$/, '')}/v1/messages`;
	const common = {
		method: 'POST' as const,
		url,
		headers,
		returnFullResponse: true,
		ignoreHttpStatusErrors: true,
	};
	if (input.image?.kind === 'binary') {
		const fields = targetFields(input);
		if (input.text.trim() !== '') {
			fields.push(['text', input.text]);
		}
		if (input.account !== '') {
			fields.push(['account', input.account]);
		}
		headers['Content-Type'] = `multipart/form-data; boundary=${boundary}`;
		return {
			...common,
			body: multipart(
				fields,
				{
					name: 'image',
					fileName: input.image.fileName,
					mimeType: input.image.mimeType,
					bytes: input.image.bytes,
				},
				boundary,
			),
		};
	}
	const body: IDataObject = Object.fromEntries(targetFields(input));
	if (input.text.trim() !== '') {
		body.text = input.text;
	}
	if (input.image?.kind === 'base64') {
		const value = input.image.value;
		body.image = value.toLowerCase().startsWith('data:') ? { data_uri: value } : { base64: value };
	}
	if (input.account !== '') {
		body.account = input.account;
	}
	return { ...common, json: true, body };
}

/** What the gateway said, as the node reports it. */
export interface GatewayAnswer {
	ok: boolean;
	status: number;
	body: IDataObject;
	code?: string;
	message: string;
	description?: string;
}

/** Reads a full response (`returnFullResponse`) from the gateway. */
export function readAnswer(response: { statusCode?: number; body?: unknown }): GatewayAnswer {
	const status = response.statusCode ?? 0;
	const raw = Buffer.isBuffer(response.body) ? response.body.toString('utf8') : response.body;
	let body: IDataObject = {};
	if (typeof raw === 'string') {
		try {
			body = JSON.parse(raw) as IDataObject;
		} catch {
			body = { message: raw };
		}
	} else if (raw && typeof raw === 'object') {
		body = raw as IDataObject;
	}
	const error = (body.error ?? {}) as IDataObject;
	const message =
		typeof body.message === 'string' && body.message !== ''
			? body.message
			: `The gateway answered HTTP ${status}`;
	const ok = status >= 200 && status < 300 && body.success !== false;
	if (ok) {
		return { ok, status, body, message };
	}
	const code = typeof error.code === 'string' ? error.code : undefined;
	const details = [code ? `Gateway error code: ${code}` : undefined];
	if (error.tiktok_code !== undefined && error.tiktok_code !== null) {
		details.push(`TikTok code: ${String(error.tiktok_code)}`);
	}
	return {
		ok,
		status,
		body,
		code,
		message,
		description: details.filter((d) => d !== undefined).join('. ') || undefined,
	};
}

/** The default idempotency key: the same for a retry of the same item in the same execution. */
export function defaultIdempotencyKey(
	executionId: string,
	nodeId: string,
	itemIndex: number,
): string {
	return `n8n-${executionId}-${nodeId}-${itemIndex}`;
}
