import { describe, expect, it } from 'vitest';
import { NodeApiError, NodeOperationError } from 'n8n-workflow';

import { TikTokDm } from '../nodes/TikTokDm/TikTokDm.node';
import { TikTokDmApi } from '../credentials/TikTokDmApi.credentials';
import { checkBase64, multipart, readAnswer } from '../nodes/TikTokDm/request';
import { context, ids, sent, type Item } from './context';

const PNG = Buffer.from(
	'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==',
	'base64',
);

async function run(items: Item[], replies: Parameters<typeof context>[1], opts = {}) {
	const c = context(items, replies, opts);
	const node = new TikTokDm();
	const result = node.execute.call(c.ctx);
	return { ...c, result };
}

describe('TikTok DM node', () => {
	it('sends text as JSON with the default idempotency key and answers in the gateway shape', async () => {
		const { result, requests } = await run([{ params: { ...ids, text: 'hello' } }], [sent()]);
		const [out] = await result;
		expect(out).toHaveLength(1);
		expect(out[0].json.success).toBe(true);
		expect(out[0].json.message).toBe('sent 1 message');
		expect(out[0].pairedItem).toEqual({ item: 0 });
		expect(requests).toHaveLength(1);
		const { credential, options } = requests[0];
		expect(credential).toBe('tikTokDmApi');
		expect(options.url).toBe('http://127.0.0.1:8787/v1/messages');
		expect(options.method).toBe('POST');
		expect(options.json).toBe(true);
		expect(options.body).toEqual({
			...{ conversation_id: ids.conversationId, conversation_short_id: ids.conversationShortId },
			text: 'hello',
		});
		const headers = options.headers as Record<string, string>;
		expect(Object.keys(headers)).toEqual(['Idempotency-Key']);
		expect(headers['Idempotency-Key']).toBe(['n8n', 'exec-42', 'node-1', '0'].join('-'));
	});

	it('processes every item with its own parameters and pairs each output', async () => {
		const items = [0, 1, 2].map((i) => ({ params: { ...ids, text: `item ${i}` } }));
		const { result, requests } = await run(items, [sent(), sent(), sent()]);
		const [out] = await result;
		expect(out.map((o) => o.pairedItem)).toEqual([{ item: 0 }, { item: 1 }, { item: 2 }]);
		expect(requests.map((r) => (r.options.body as { text: string }).text)).toEqual([
			'item 0',
			'item 1',
			'item 2',
		]);
		expect(
			requests.map((r) => (r.options.headers as Record<string, string>)['Idempotency-Key']),
		).toEqual(['n8n-exec-42-node-1-0', 'n8n-exec-42-node-1-1', 'n8n-exec-42-node-1-2']);
	});

	it('sends a binary image as multipart with its caption', async () => {
		const item: Item = {
			params: { ...ids, text: 'caption', imageInputType: 'binary', binaryPropertyName: 'photo' },
			binary: {
				photo: { meta: { data: '', mimeType: 'image/png', fileName: 'a.png' }, bytes: PNG },
			},
		};
		const { result, requests } = await run([item], [sent(2)]);
		await result;
		const options = requests[0].options;
		const headers = options.headers as Record<string, string>;
		const boundary = headers['Content-Type'].replace('multipart/form-data; boundary=', '');
		expect(boundary).toMatch(/^tiktokdm[0-9a-f]{24}$/);
		expect(options.json).toBeUndefined();
		const body = options.body as Buffer;
		const text = body.toString('latin1');
		expect(text).toContain('name="conversation_id"\r\n\r\n' + ids.conversationId);
		expect(text).toContain('name="text"\r\n\r\ncaption');
		expect(text).toContain('name="image"; filename="a.png"\r\nContent-Type: image/png\r\n\r\n');
		const start = body.indexOf(PNG);
		expect(start).toBeGreaterThan(0);
		expect(text.endsWith(`\r\n--${boundary}--\r\n`)).toBe(true);
	});

	it('sends base64 and data URIs as JSON, and an image without text', async () => {
		const b64 = PNG.toString('base64');
		const items: Item[] = [
			{ params: { ...ids, imageInputType: 'base64', base64Image: b64 } },
			{ params: { ...ids, imageInputType: 'base64', base64Image: `data:image/png;base64,${b64}` } },
		];
		const { result, requests } = await run(items, [sent(), sent()]);
		await result;
		expect(requests[0].options.body).toEqual({
			conversation_id: ids.conversationId,
			conversation_short_id: ids.conversationShortId,
			image: { base64: b64 },
		});
		expect((requests[1].options.body as { image: unknown }).image).toEqual({
			data_uri: `data:image/png;base64,${b64}`,
		});
	});

	it('passes the options: account, an explicit idempotency key, and not waiting', async () => {
		const item = {
			params: {
				...ids,
				text: 'x',
				options: { account: 'shop', idempotencyKey: 'order-17', waitForDelivery: false },
			},
		};
		const { result, requests } = await run(
			[item],
			[{ statusCode: 202, body: { success: true, message: 'accepted; delivery in progress' } }],
		);
		const [out] = await result;
		expect(out[0].json.message).toBe('accepted; delivery in progress');
		expect(requests[0].options.headers).toEqual({
			'Idempotency-Key': 'order-17',
			Prefer: 'respond-async',
		});
		expect((requests[0].options.body as { account: string }).account).toBe('shop');
	});

	it('leaves the idempotency key out when there is no execution id to build it from', async () => {
		const { result, requests } = await run([{ params: { ...ids, text: 'x' } }], [sent()], {
			executionId: '',
		});
		await result;
		expect(requests[0].options.headers).toEqual({});
	});

	const invalid: Array<[string, Item, string]> = [
		[
			'text and image both empty',
			{ params: { ...ids, text: '  ' } },
			'Either text or an image must be provided',
		],
		[
			'conversation id missing',
			{ params: { conversationShortId: '1', text: 'x' } },
			'Conversation ID is required',
		],
		['user id missing', { params: { sendTo: 'user', text: 'x' } }, 'User ID is required'],
		[
			'user id not a number',
			{ params: { sendTo: 'user', toUid: '@bob', text: 'x' } },
			'User ID must be a number',
		],
		[
			'short id not a number',
			{ params: { ...ids, conversationShortId: '12ab', text: 'x' } },
			'Conversation Short ID must be a number',
		],
		[
			'bad base64',
			{ params: { ...ids, imageInputType: 'base64', base64Image: 'abc$def' } },
			'not valid base64 (unexpected character at position 3)',
		],
		[
			'empty base64',
			{ params: { ...ids, imageInputType: 'base64', base64Image: ' ' } },
			'The Base64 Image field is empty',
		],
		[
			'malformed data URI',
			{ params: { ...ids, imageInputType: 'base64', base64Image: 'data:image/png,abc' } },
			'data URI must look like',
		],
		[
			'binary property missing',
			{ params: { ...ids, imageInputType: 'binary' } },
			"binary file 'data'",
		],
		[
			'binary property empty',
			{
				params: { ...ids, imageInputType: 'binary' },
				binary: { data: { meta: { data: '', mimeType: 'image/png' }, bytes: Buffer.alloc(0) } },
			},
			'The binary field "data" is empty',
		],
	];
	for (const [name, item, message] of invalid) {
		it(`refuses before any request: ${name}`, async () => {
			const { result, requests } = await run([item], []);
			const error = await result.catch((e: unknown) => e);
			expect(error).toBeInstanceOf(NodeOperationError);
			expect(
				(error as NodeOperationError).message + String((error as NodeOperationError).description),
			).toContain(message);
			expect((error as NodeOperationError).context.itemIndex).toBe(0);
			expect(requests).toHaveLength(0);
		});
	}

	it("keeps the gateway's error code and TikTok's tip in a NodeApiError", async () => {
		const rejection = {
			statusCode: 422,
			body: {
				success: false,
				message:
					'TikTok refused the message (code 7193): You can only send up to 1 message before this user accepts your message request.',
				messages: [],
				usage: null,
				quota: null,
				error: { code: 'business_rejected', message: '…', tiktok_code: 7193 },
			},
		};
		const { result } = await run([{ params: { ...ids, text: 'x' } }], [rejection]);
		const error = (await result.catch((e: unknown) => e)) as NodeApiError;
		expect(error).toBeInstanceOf(NodeApiError);
		expect(error.message).toContain('accepts your message request');
		expect(error.description).toBe('Gateway error code: business_rejected. TikTok code: 7193');
		expect(error.httpCode).toBe('422');
		expect(error.context.itemIndex).toBe(0);
	});

	it('wraps a connection failure in a NodeApiError', async () => {
		const refused = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:8787'), {
			code: 'ECONNREFUSED',
		});
		const { result } = await run([{ params: { ...ids, text: 'x' } }], [refused]);
		const error = (await result.catch((e: unknown) => e)) as NodeApiError;
		expect(error).toBeInstanceOf(NodeApiError);
		expect(error.context.itemIndex).toBe(0);
	});

	it('with continueOnFail, returns {success: false, message, error} and goes on with the next item', async () => {
		const quota = {
			statusCode: 429,
			body: {
				success: false,
				message: 'the daily quota of 1 messages is used up',
				error: { code: 'quota_exceeded', message: 'x' },
			},
		};
		const items: Item[] = [
			{ params: { ...ids, text: '' } },
			{ params: { ...ids, text: 'over quota' } },
			{ params: { ...ids, text: 'fine' } },
		];
		const { result, requests } = await run(items, [quota, sent()], { continueOnFail: true });
		const [out] = await result;
		expect(out.map((o) => o.json.success)).toEqual([false, false, true]);
		expect(out[0].json.message).toBe('Either text or an image must be provided');
		expect(out[1].json.message).toBe('the daily quota of 1 messages is used up');
		expect((out[1].json.error as { description: string }).description).toBe(
			'Gateway error code: quota_exceeded',
		);
		expect(out.map((o) => o.pairedItem)).toEqual([{ item: 0 }, { item: 1 }, { item: 2 }]);
		expect(requests).toHaveLength(2);
	});
});

describe('TikTok DM API credential', () => {
	it('sends the key and the session as headers and tests them against /v1/usage', () => {
		const cred = new TikTokDmApi();
		expect(cred.name).toBe('tikTokDmApi');
		expect(cred.authenticate).toEqual({
			type: 'generic',
			properties: {
				headers: {
					Authorization: '=Bearer {{$credentials.apiKey}}',
					'X-TikTok-Session': '={{$credentials.sessionToken}}',
				},
			},
		});
		expect(cred.test.request.url).toBe('/v1/usage');
		expect(cred.test.request.method).toBe('GET');
		expect(cred.test.request.baseURL).toContain('$credentials.gatewayUrl');
		const secret = cred.properties.filter((p) => p.typeOptions?.password).map((p) => p.name);
		expect(secret).toEqual(['apiKey', 'sessionToken']);
	});
});

describe('request helpers', () => {
	it('accept base64 in either alphabet, padded or not, wrapped, or as a data URI', () => {
		for (const ok of [
			'aGVsbG8=',
			'aGVsbG8',
			'a-_b',
			'aGVs\nbG8=',
			'data:image/png;base64,aGVsbG8=',
		]) {
			expect(checkBase64(ok)).toBe(ok.trim());
		}
	});

	it('build a multipart body byte for byte', () => {
		const body = multipart(
			[['a', '1']],
			{ name: 'image', fileName: 'x.png', mimeType: 'image/png', bytes: Buffer.from([0, 255]) },
			'B',
		);
		expect(
			body.equals(
				Buffer.concat([
					Buffer.from(
						'--B\r\nContent-Disposition: form-data; name="a"\r\n\r\n1\r\n--B\r\nContent-Disposition: form-data; name="image"; filename="x.png"\r\nContent-Type: image/png\r\n\r\n',
					),
					Buffer.from([0, 255]),
					Buffer.from('\r\n--B--\r\n'),
				]),
			),
		).toBe(true);
	});

	it('read answers given as objects, strings or buffers', () => {
		expect(readAnswer({ statusCode: 200, body: { success: true, message: 'ok' } }).ok).toBe(true);
		expect(
			readAnswer({
				statusCode: 401,
				body: '{"success":false,"message":"no key","error":{"code":"api_key_invalid"}}',
			}).code,
		).toBe('api_key_invalid');
		expect(readAnswer({ statusCode: 502, body: Buffer.from('bad gateway') }).message).toBe(
			'bad gateway',
		);
		expect(readAnswer({ statusCode: 200, body: { success: false, message: 'm' } }).ok).toBe(false);
	});
});
