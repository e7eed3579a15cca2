import { describe, expect, it } from 'vitest';
import { NodeApiError, NodeOperationError } from 'n8n-workflow';

import { TikTokDm } from '../nodes/TikTokDm/TikTokDm.node';
import { buildRequest, type SendInput } from '../nodes/TikTokDm/request';
import {
	listConversationsRequest,
	messagesPageRequest,
	readPage,
} from '../nodes/TikTokDm/conversations';
import { context, ids, sent, type Item, type Reply } from './context';

const PNG = Buffer.from(
	'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==',
	'base64',
);
const BOB = '7000000000000000002';

async function run(items: Item[], replies: Reply[], opts = {}) {
	const c = context(items, replies, opts);
	const result = new TikTokDm().execute.call(c.ctx);
	return { ...c, result };
}

function input(overrides: Partial<SendInput>): SendInput {
	return {
		sendTo: 'conversation',
		conversationId: ids.conversationId,
		conversationShortId: ids.conversationShortId,
		toUid: '',
		text: 'hi',
		account: '',
		idempotencyKey: '',
		waitForDelivery: true,
		...overrides,
	};
}

describe('Message → Send: whom to send to', () => {
	it('leaves conversation_short_id out when it is empty', async () => {
		const { result, requests } = await run(
			[{ params: { conversationId: ids.conversationId, conversationShortId: ' ', text: 'x' } }],
			[sent()],
		);
		await result;
		expect(requests[0].options.body).toEqual({ conversation_id: ids.conversationId, text: 'x' });
	});

	it('sends to a user ID as JSON to_uid (a string), without any conversation id', async () => {
		const params = { sendTo: 'user', toUid: ` ${BOB} `, text: 'hello', ...ids };
		const { result, requests } = await run([{ params }], [sent()]);
		const [out] = await result;
		expect(out[0].json.success).toBe(true);
		expect(requests[0].options.body).toEqual({ to_uid: BOB, text: 'hello' });
	});

	it('sends to a user ID as a multipart text part to_uid', async () => {
		const item: Item = {
			params: { sendTo: 'user', toUid: BOB, imageInputType: 'binary', ...ids },
			binary: {
				data: { meta: { data: '', mimeType: 'image/png', fileName: 'a.png' }, bytes: PNG },
			},
		};
		const { result, requests } = await run([item], [sent()]);
		await result;
		const text = (requests[0].options.body as Buffer).toString('latin1');
		expect(text).toContain(`Content-Disposition: form-data; name="to_uid"\r\n\r\n${BOB}\r\n`);
		expect(text).not.toContain('conversation_id');
		expect(text).not.toContain('conversation_short_id');
	});

	it('builds the same fields in both body kinds', () => {
		const noShort = input({ conversationShortId: '' });
		expect(buildRequest('http://gw', noShort, 'B').body).toEqual({
			conversation_id: ids.conversationId,
			text: 'hi',
		});
		const binary = buildRequest(
			'http://gw',
			{
				...noShort,
				image: { kind: 'binary', bytes: PNG, fileName: 'a.png', mimeType: 'image/png' },
			},
			'B',
		);
		const text = (binary.body as Buffer).toString('latin1');
		expect(text).toContain('name="conversation_id"');
		expect(text).not.toContain('conversation_short_id');
		const toUser = buildRequest('http://gw', input({ sendTo: 'user', toUid: BOB }), 'B');
		expect(toUser.body).toEqual({ to_uid: BOB, text: 'hi' });
	});

	it("reports the gateway's conversation_not_found with its code", async () => {
		const notFound: Reply = {
			statusCode: 404,
			body: {
				success: false,
				message: 'no conversation with user 7000000000000000002 in the inbox of account sandbox',
				error: { code: 'conversation_not_found', message: 'x', retry: 'permanent' },
			},
		};
		const { result } = await run(
			[{ params: { sendTo: 'user', toUid: BOB, text: 'x' } }],
			[notFound],
		);
		const error = (await result.catch((e: unknown) => e)) as NodeApiError;
		expect(error).toBeInstanceOf(NodeApiError);
		expect(error.description).toBe('Gateway error code: conversation_not_found');
		expect(error.httpCode).toBe('404');
	});
});

const conversations = [
	{ conversation_id: ids.conversationId, conversation_short_id: ids.conversationShortId },
	{ conversation_id: '0:1:7000000000000000001:7000000000000000003', conversation_short_id: null },
];

function page(from: number, n: number, next: string | null): Reply {
	const messages = Array.from({ length: n }, (_, i) => ({
		type: 'message.received',
		server_message_id: String(from + i),
		text: `m${from + i}`,
	}));
	return { statusCode: 200, body: { messages, next_cursor: next } };
}

describe('Conversation → List', () => {
	it('GETs /v1/conversations?account= and outputs one item per conversation, paired', async () => {
		const items: Item[] = [
			{ params: { resource: 'conversation', operation: 'list', account: 'sandbox ' } },
		];
		const { result, requests } = await run(items, [{ statusCode: 200, body: { conversations } }]);
		const [out] = await result;
		expect(out.map((o) => o.json)).toEqual(conversations);
		expect(out.map((o) => o.pairedItem)).toEqual([{ item: 0 }, { item: 0 }]);
		const { credential, options } = requests[0];
		expect(credential).toBe('tikTokDmApi');
		expect(options).toMatchObject({
			method: 'GET',
			url: 'http://127.0.0.1:8787/v1/conversations',
			qs: { account: 'sandbox' },
			json: true,
		});
		expect(options.body).toBeUndefined();
	});

	it('refuses an empty account before any request', async () => {
		const { result, requests } = await run(
			[{ params: { resource: 'conversation', operation: 'list' } }],
			[],
		);
		const error = (await result.catch((e: unknown) => e)) as NodeOperationError;
		expect(error).toBeInstanceOf(NodeOperationError);
		expect(error.message).toBe('Account is required');
		expect(requests).toHaveLength(0);
	});

	it("keeps the gateway's error code (account_not_found)", async () => {
		const refusal: Reply = {
			statusCode: 404,
			body: {
				success: false,
				message: 'no stored account named "x" for this API key',
				error: { code: 'account_not_found' },
			},
		};
		const { result } = await run(
			[{ params: { resource: 'conversation', operation: 'list', account: 'x' } }],
			[refusal],
			{ continueOnFail: true },
		);
		const [out] = await result;
		expect(out[0].json.success).toBe(false);
		expect((out[0].json.error as { description: string }).description).toBe(
			'Gateway error code: account_not_found',
		);
	});
});

describe('Conversation → Get Messages', () => {
	const params = {
		resource: 'conversation',
		operation: 'getMessages',
		account: 'sandbox',
		conversationId: ids.conversationId,
	};

	it('asks for one page of the limit (default 50) with the conversation id escaped in the path', async () => {
		const { result, requests } = await run([{ params }], [page(1, 3, null)]);
		const [out] = await result;
		expect(out.map((o) => o.json.text)).toEqual(['m1', 'm2', 'm3']);
		expect(out.every((o) => (o.pairedItem as { item: number }).item === 0)).toBe(true);
		expect(requests).toHaveLength(1);
		expect(requests[0].options).toMatchObject({
			method: 'GET',
			url: `http://127.0.0.1:8787/v1/conversations/${encodeURIComponent(ids.conversationId)}/messages`,
			qs: { account: 'sandbox', limit: 50 },
		});
		expect(requests[0].options.url).toContain('0%3A1%3A7000000000000000001%3A7000000000000000002');
	});

	it('follows next_cursor as before until the limit, asking each page for what is left', async () => {
		const { result, requests } = await run(
			[{ params: { ...params, limit: 120 } }],
			[page(1, 100, '900'), page(101, 20, '800')],
		);
		const [out] = await result;
		expect(out).toHaveLength(120);
		expect(requests.map((r) => r.options.qs)).toEqual([
			{ account: 'sandbox', limit: 100 },
			{ account: 'sandbox', limit: 20, before: '900' },
		]);
	});

	it('with Return All, reads pages of 100 until next_cursor is null; passes Before and the short id', async () => {
		const { result, requests } = await run(
			[
				{
					params: {
						...params,
						returnAll: true,
						historyOptions: { before: '5000', conversationShortId: ids.conversationShortId },
					},
				},
			],
			[page(1, 100, '4000'), page(101, 100, '3000'), page(201, 7, null)],
		);
		const [out] = await result;
		expect(out).toHaveLength(207);
		expect(requests.map((r) => r.options.qs)).toEqual(
			['5000', '4000', '3000'].map((before) => ({
				account: 'sandbox',
				limit: 100,
				before,
				conversation_short_id: ids.conversationShortId,
			})),
		);
	});

	it('stops at a cursor it has seen, and at an empty page', async () => {
		const loop = await run(
			[{ params: { ...params, returnAll: true } }],
			[page(1, 2, '10'), page(3, 2, '10')],
		);
		expect((await loop.result)[0]).toHaveLength(4);
		expect(loop.requests).toHaveLength(2);
		const empty = await run([{ params: { ...params, returnAll: true } }], [page(1, 0, '10')]);
		expect((await empty.result)[0]).toHaveLength(0);
	});

	const invalid: Array<[string, Record<string, unknown>, string]> = [
		['no account', { account: '' }, 'Account is required'],
		['no conversation id', { conversationId: ' ' }, 'Conversation ID is required'],
		[
			'a cursor that is not a number',
			{ historyOptions: { before: 'abc' } },
			'Before must be a cursor',
		],
		[
			'a short id that is not a number',
			{ historyOptions: { conversationShortId: 'x' } },
			'must be a number',
		],
		['a limit of 0', { limit: 0 }, 'Limit must be a whole number'],
	];
	for (const [name, change, message] of invalid) {
		it(`refuses before any request: ${name}`, async () => {
			const { result, requests } = await run([{ params: { ...params, ...change } }], []);
			const error = (await result.catch((e: unknown) => e)) as NodeOperationError;
			expect(error).toBeInstanceOf(NodeOperationError);
			expect(error.message).toContain(message);
			expect(requests).toHaveLength(0);
		});
	}
});

describe('conversation request builders', () => {
	it('trim the gateway URL and read pages of other shapes as an empty last page', () => {
		expect(listConversationsRequest('http://gw///', 'a').url).toBe('http://gw/v1/conversations');
		const q = {
			account: 'a',
			conversationId: '0:1:1:2',
			conversationShortId: '',
			before: '',
			limit: 1,
		};
		expect(messagesPageRequest('http://gw', q).qs).toEqual({ account: 'a', limit: 1 });
		expect(() => messagesPageRequest('http://gw', { ...q, limit: 101 })).toThrow('from 1 to 100');
		expect(readPage({})).toEqual({ messages: [], nextCursor: null });
		expect(readPage({ messages: [{ a: 1 }], next_cursor: '7' })).toEqual({
			messages: [{ a: 1 }],
			nextCursor: '7',
		});
	});
});
