import { createHmac } from 'crypto';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { NodeApiError } from 'n8n-workflow';

import { TikTokDmTrigger } from '../nodes/TikTokDmTrigger/TikTokDmTrigger.node';
import { EVENT_TYPES, cursorOf, flatten, parseEvent } from '../nodes/TikTokDmTrigger/event';
import { signingKey, verify } from '../nodes/TikTokDmTrigger/signature';
import {
	REMEMBERED_DELIVERIES,
	REMEMBERED_TRIGGERS,
	firstDelivery,
	triggerKey,
} from '../nodes/TikTokDmTrigger/deliveries';
import { WEBHOOK_URL, triggerContext } from './trigger-context';

const KEY = Buffer.alloc(32, 7);
const SECRET = `whsec_${KEY.toString('base64')}`;
const NOW = 1_790_000_000;

/** `v1,` and the HMAC the gateway sends, computed here independently of the node. */
function signature(key: Buffer, id: string, timestamp: number | string, body: Buffer): string {
	const mac = createHmac('sha256', key).update(`${id}.${timestamp}.`).update(body);
	return `v1,${mac.digest('base64')}`;
}

function headers(body: Buffer, opts: { id?: string; at?: number; key?: Buffer } = {}) {
	const id = opts.id ?? 'evt_42';
	const at = opts.at ?? NOW;
	return {
		'webhook-id': id,
		'webhook-timestamp': String(at),
		'webhook-signature': signature(opts.key ?? KEY, id, at, body),
	};
}

const received = {
	type: 'message.received',
	timestamp: '2026-12-03T10:00:00.000Z',
	data: {
		account: 'sandbox',
		conversation_id: '0:1:7000000000000000001:7000000000000000002',
		conversation_short_id: '7200000000000000001',
		server_message_id: '7712242584654970881',
		client_message_id: null,
		sender_uid: '7000000000000000002',
		created_at_ms: 1796292000000,
		direction: 'inbound',
		kind: 'text',
		text: 'hello',
	},
};

function body(event: unknown = received): Buffer {
	// As the gateway writes it: compact JSON; the node must verify these very bytes.
	return Buffer.from(JSON.stringify(event));
}

describe('Standard Webhooks signature', () => {
	it('verifies the specification example', () => {
		// The published example (spec/standard-webhooks.md), not a real key.
		const published = 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw';
		const h = {
			'webhook-id': 'msg_p5jXN8AQM9LWM0D4loKWxJek',
			'webhook-timestamp': '1614265330',
			'webhook-signature': 'v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=',
		};
		expect(verify(published, h, Buffer.from('{"test": 2432232314}'), 1614265330 + 10)).toEqual({
			ok: true,
			id: 'msg_p5jXN8AQM9LWM0D4loKWxJek',
		});
	});

	it('accepts a good signature on the raw bytes', () => {
		const b = body();
		expect(verify(SECRET, headers(b), b, NOW)).toEqual({ ok: true, id: 'evt_42' });
	});

	it('refuses a tampered body, even one that parses to the same JSON', () => {
		const b = body();
		const h = headers(b);
		const tampered = Buffer.from(b.toString().replace('hello', 'hellO'));
		expect(verify(SECRET, h, tampered, NOW).ok).toBe(false);
		const reformatted = Buffer.from(JSON.stringify(received, null, 1));
		expect(verify(SECRET, h, reformatted, NOW).ok).toBe(false);
	});

	it('refuses a signature made with another secret, and a secret that is not whsec_', () => {
		const b = body();
		const h = headers(b, { key: Buffer.alloc(32, 8) });
		expect(verify(SECRET, h, b, NOW)).toEqual({
			ok: false,
			reason: 'no signature in the webhook-signature header matches',
		});
		expect(verify(KEY.toString('base64'), headers(b), b, NOW).ok).toBe(false);
		expect(signingKey('whsec_')).toBeNull();
		expect(signingKey('whsec_!!!')).toBeNull();
	});

	it('refuses a timestamp more than 5 minutes off either way, and one that is not a number', () => {
		const b = body();
		expect(verify(SECRET, headers(b, { at: NOW - 300 }), b, NOW).ok).toBe(true);
		expect(verify(SECRET, headers(b, { at: NOW + 300 }), b, NOW).ok).toBe(true);
		const old = verify(SECRET, headers(b, { at: NOW - 301 }), b, NOW);
		expect(old).toEqual({
			ok: false,
			reason: 'the webhook-timestamp is more than 5 minutes away from now',
		});
		expect(verify(SECRET, headers(b, { at: NOW + 301 }), b, NOW).ok).toBe(false);
		const h = { ...headers(b), 'webhook-timestamp': '1.79e9' };
		expect(verify(SECRET, h, b, NOW).ok).toBe(false);
	});

	it('accepts any one matching signature of several, space-separated, ignoring other versions', () => {
		const b = body();
		const good = headers(b)['webhook-signature'];
		const wrong = signature(Buffer.alloc(32, 9), 'evt_42', NOW, b);
		const v2 = `v2,${good.slice(3)}`;
		for (const list of [
			`${wrong} ${good}`,
			`${good} ${wrong}`,
			`v1a,xyz ${wrong} v1,${'A'.repeat(44)} ${good}`,
		]) {
			expect(verify(SECRET, { ...headers(b), 'webhook-signature': list }, b, NOW).ok).toBe(true);
		}
		expect(
			verify(SECRET, { ...headers(b), 'webhook-signature': `${wrong} ${v2}` }, b, NOW).ok,
		).toBe(false);
	});

	it('refuses a request without the headers', () => {
		const b = body();
		for (const name of ['webhook-id', 'webhook-timestamp', 'webhook-signature'] as const) {
			const h: Record<string, string> = { ...headers(b) };
			delete h[name];
			expect(verify(SECRET, h, b, NOW).ok).toBe(false);
		}
	});
});

describe('TikTok DM Trigger: registering the webhook', () => {
	const trigger = new TikTokDmTrigger();
	const hooks = trigger.webhookMethods.default;

	it('creates the webhook with its URL and events and keeps the id and secret', async () => {
		const c = triggerContext({
			params: { events: ['message.received', 'reaction'] },
			replies: [
				{
					statusCode: 201,
					body: {
						success: true,
						id: 'wh_1',
						url: WEBHOOK_URL,
						events: ['message.received', 'reaction'],
						secret: SECRET,
						created_at: 1,
					},
				},
			],
		});
		expect(await hooks.create.call(c.hooks)).toBe(true);
		expect(c.requests).toHaveLength(1);
		expect(c.requests[0].credential).toBe('tikTokDmApi');
		expect(c.requests[0].options).toMatchObject({
			method: 'POST',
			url: 'http://127.0.0.1:8787/v1/webhooks',
			json: true,
			body: { url: WEBHOOK_URL, events: ['message.received', 'reaction'] },
		});
		expect(c.staticData).toEqual({ webhookId: 'wh_1', webhookSecret: SECRET });
	});

	it('creates for message.received alone by default', async () => {
		const c = triggerContext({
			replies: [{ statusCode: 201, body: { success: true, id: 'wh_1', secret: SECRET } }],
		});
		await hooks.create.call(c.hooks);
		expect((c.requests[0].options.body as { events: string[] }).events).toEqual([
			'message.received',
		]);
	});

	it("raises the gateway's refusal of a private URL with a hint", async () => {
		const c = triggerContext({
			replies: [
				{
					statusCode: 400,
					body: {
						success: false,
						message: 'the webhook URL reaches a loopback address',
						error: { code: 'webhook_url_not_allowed' },
					},
				},
			],
		});
		const error = (await hooks.create.call(c.hooks).catch((e: unknown) => e)) as NodeApiError;
		expect(error).toBeInstanceOf(NodeApiError);
		expect(error.message).toContain('loopback');
		expect(error.description).toContain('webhook_url_not_allowed');
		expect(error.description).toContain('WEBHOOK_URL');
		expect(c.staticData).toEqual({});
	});

	it('finds its own webhook (same id, URL and events) and deletes a stale one to its URL', async () => {
		const listed = {
			statusCode: 200,
			body: {
				success: true,
				webhooks: [
					{ id: 'wh_0', url: WEBHOOK_URL, events: ['message.received'], created_at: 1 },
					{ id: 'wh_other', url: 'https://example.com/hook', events: ['typing'], created_at: 2 },
					{ id: 'wh_1', url: WEBHOOK_URL, events: ['message.received'], created_at: 3 },
				],
			},
		};
		const c = triggerContext({
			staticData: { webhookId: 'wh_1', webhookSecret: SECRET },
			replies: [listed, { statusCode: 204, body: '' }],
		});
		expect(await hooks.checkExists.call(c.hooks)).toBe(true);
		expect(c.requests.map((r) => [r.options.method, r.options.url])).toEqual([
			['GET', 'http://127.0.0.1:8787/v1/webhooks'],
			['DELETE', 'http://127.0.0.1:8787/v1/webhooks/wh_0'],
		]);
		expect(c.staticData).toEqual({ webhookId: 'wh_1', webhookSecret: SECRET });
	});

	it('does not count a webhook whose events changed, or without the secret, as existing', async () => {
		const listed = () => ({
			statusCode: 200,
			body: { success: true, webhooks: [{ id: 'wh_1', url: WEBHOOK_URL, events: ['typing'] }] },
		});
		const changed = triggerContext({
			staticData: { webhookId: 'wh_1', webhookSecret: SECRET },
			replies: [listed(), { statusCode: 204, body: '' }],
		});
		expect(await hooks.checkExists.call(changed.hooks)).toBe(false);
		expect(changed.requests[1].options.method).toBe('DELETE');
		expect(changed.staticData).toEqual({});
		const lost = triggerContext({
			params: { events: ['typing'] },
			staticData: {},
			replies: [listed(), { statusCode: 204, body: '' }],
		});
		expect(await hooks.checkExists.call(lost.hooks)).toBe(false);
		expect(lost.requests[1].options.url).toBe('http://127.0.0.1:8787/v1/webhooks/wh_1');
	});

	it("deletes its own webhook left at an earlier URL (n8n's WEBHOOK_URL changed)", async () => {
		const c = triggerContext({
			staticData: { webhookId: 'wh_1', webhookSecret: SECRET },
			replies: [
				{
					statusCode: 200,
					body: {
						success: true,
						webhooks: [
							{
								id: 'wh_1',
								url: 'http://old-host:5678/webhook/3f1c/webhook',
								events: ['message.received'],
							},
						],
					},
				},
				{ statusCode: 204, body: '' },
			],
		});
		expect(await hooks.checkExists.call(c.hooks)).toBe(false);
		expect(c.requests[1].options).toMatchObject({
			method: 'DELETE',
			url: 'http://127.0.0.1:8787/v1/webhooks/wh_1',
		});
		expect(c.staticData).toEqual({});
	});

	it('deletes its webhook and forgets it; one already gone counts as deleted', async () => {
		for (const reply of [
			{ statusCode: 204, body: '' },
			{
				statusCode: 404,
				body: { success: false, message: 'no webhook', error: { code: 'not_found' } },
			},
		]) {
			const c = triggerContext({
				staticData: { webhookId: 'wh_1', webhookSecret: SECRET },
				replies: [reply],
			});
			expect(await hooks.delete.call(c.hooks)).toBe(true);
			expect(c.requests[0].options).toMatchObject({
				method: 'DELETE',
				url: 'http://127.0.0.1:8787/v1/webhooks/wh_1',
			});
			expect(c.staticData).toEqual({});
		}
	});

	it('keeps the webhook when the gateway cannot delete it, and logs no secret', async () => {
		const refused = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:8787'), {
			code: 'ECONNREFUSED',
		});
		const c = triggerContext({
			staticData: { webhookId: 'wh_1', webhookSecret: SECRET },
			replies: [refused],
		});
		expect(await hooks.delete.call(c.hooks)).toBe(false);
		expect(c.staticData.webhookId).toBe('wh_1');
		expect(JSON.stringify(c.logged)).not.toContain(SECRET);
		const none = triggerContext({});
		expect(await hooks.delete.call(none.hooks)).toBe(true);
		expect(none.requests).toHaveLength(0);
	});
});

describe('TikTok DM Trigger: a delivery', () => {
	const trigger = new TikTokDmTrigger();

	function deliver(opts: {
		rawBody?: Buffer;
		headers?: Record<string, string>;
		params?: Record<string, unknown>;
		replies?: Parameters<typeof triggerContext>[0]['replies'];
		staticData?: Record<string, unknown>;
		workflowId?: string;
	}) {
		const rawBody = 'rawBody' in opts ? opts.rawBody : body();
		const c = triggerContext({
			workflowId: opts.workflowId,
			params: opts.params,
			staticData: opts.staticData ?? { webhookId: 'wh_1', webhookSecret: SECRET },
			replies: opts.replies,
			headers:
				opts.headers ?? headers(rawBody ?? Buffer.alloc(0), { at: Math.floor(Date.now() / 1000) }),
			rawBody,
		});
		return { ...c, result: trigger.webhook.call(c.webhook) };
	}

	it('starts the workflow with the event flattened: type, timestamp, event_id, cursor, then data', async () => {
		const { result, answered } = deliver({});
		const answer = await result;
		expect(answered.status).toBeUndefined();
		expect(answer.workflowData).toHaveLength(1);
		const [[item]] = answer.workflowData!;
		expect(item.json).toEqual({
			type: 'message.received',
			timestamp: '2026-12-03T10:00:00.000Z',
			event_id: 'evt_42',
			cursor: '42',
			...received.data,
		});
		expect(Object.keys(item.json).slice(0, 4)).toEqual(['type', 'timestamp', 'event_id', 'cursor']);
		expect(item.binary).toBeUndefined();
	});

	it('answers 401 and starts nothing on a bad signature, without the secret in the answer', async () => {
		const b = body();
		const { result, answered } = deliver({
			rawBody: b,
			headers: headers(b, { key: Buffer.alloc(32, 1), at: Math.floor(Date.now() / 1000) }),
		});
		const answer = await result;
		expect(answer).toEqual({ noWebhookResponse: true });
		expect(answered.status).toBe(401);
		expect(JSON.parse(answered.body!).error).toContain('does not verify');
		expect(answered.body).not.toContain(SECRET);
		expect(answered.body).not.toContain(KEY.toString('base64'));
	});

	it('answers 401 to an old delivery', async () => {
		const b = body();
		const { result, answered } = deliver({
			rawBody: b,
			headers: headers(b, { at: 1_600_000_000 }),
		});
		expect((await result).workflowData).toBeUndefined();
		expect(answered.status).toBe(401);
	});

	it('answers 401 when it holds no secret', async () => {
		const { result, answered } = deliver({ staticData: {} });
		expect((await result).workflowData).toBeUndefined();
		expect(answered.status).toBe(401);
	});

	it('answers 400 to a signed body that is not an event, and to no body at all', async () => {
		for (const raw of [
			'not json',
			'[1,2]',
			'{"type":"x"}',
			'{"type":1,"data":{}}',
			'{"type":"x","data":[]}',
		]) {
			const { result, answered } = deliver({ rawBody: Buffer.from(raw) });
			expect((await result).workflowData).toBeUndefined();
			expect(answered.status).toBe(400);
			expect(answered.headers).toEqual({ 'Content-Type': 'application/json' });
		}
		const { result, answered } = deliver({ rawBody: undefined, headers: {} });
		expect((await result).workflowData).toBeUndefined();
		expect(answered.status).toBe(400);
	});

	it("does not start for the account's own send echoed back, unless Direction is All", async () => {
		const echo = { ...received, data: { ...received.data, direction: 'outbound', text: 'thanks' } };
		const skipped = await deliver({ rawBody: body(echo) }).result;
		expect(skipped.workflowData).toBeUndefined();
		expect(skipped.webhookResponse).toMatchObject({ received: true, started: false });
		const all = await deliver({ rawBody: body(echo), params: { direction: 'all' } }).result;
		expect(all.workflowData![0][0].json.text).toBe('thanks');
	});

	it('starts only for the chosen events and accounts', async () => {
		const reaction = { type: 'reaction', timestamp: 't', data: { account: 'shop', changes: [] } };
		expect((await deliver({ rawBody: body(reaction) }).result).workflowData).toBeUndefined();
		const params = { events: ['reaction'], options: { accounts: 'sandbox, support' } };
		expect(
			(await deliver({ rawBody: body(reaction), params }).result).workflowData,
		).toBeUndefined();
		const shop = { events: ['reaction'], options: { accounts: 'sandbox,shop' } };
		expect(
			(await deliver({ rawBody: body(reaction), params: shop }).result).workflowData,
		).toHaveLength(1);
	});

	const image = {
		...received,
		data: {
			...received.data,
			kind: 'image',
			text: null,
			image: { path: 'tos-x/abc', urls: ['http://127.0.0.1:1/im/media/abc'], width: 1, height: 1 },
		},
	};
	const PNG = Buffer.from(
		'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==',
		'base64',
	);

	it("fetches a received image's bytes from /v1/media/{cursor} into binary data", async () => {
		const { result, requests } = deliver({
			rawBody: body(image),
			replies: [{ statusCode: 200, body: PNG, headers: { 'content-type': 'image/png' } } as never],
		});
		const [[item]] = (await result).workflowData!;
		expect(requests[0].options).toMatchObject({
			method: 'GET',
			url: 'http://127.0.0.1:8787/v1/media/42',
			encoding: 'arraybuffer',
			json: false,
		});
		expect(item.binary?.data).toEqual({
			data: PNG.toString('base64'),
			fileName: 'tiktok-image-42.png',
			mimeType: 'image/png',
			fileSize: '70',
		});
		expect(item.json.kind).toBe('image');
		expect(item.json.media_error).toBeUndefined();
	});

	it('still starts, with media_error, when the image cannot be fetched; and not at all with the option off', async () => {
		const failed = deliver({
			rawBody: body(image),
			replies: [
				{
					statusCode: 502,
					body: Buffer.from(
						'{"success":false,"message":"the image does not open","error":{"code":"media_invalid"}}',
					),
				},
			],
		});
		const [[item]] = (await failed.result).workflowData!;
		expect(item.binary).toBeUndefined();
		expect(item.json.media_error).toEqual({
			status: 502,
			code: 'media_invalid',
			message: 'the image does not open',
		});
		const off = deliver({ rawBody: body(image), params: { downloadImage: false } });
		expect((await off.result).workflowData![0][0].binary).toBeUndefined();
		expect(off.requests).toHaveLength(0);
	});

	/** A gateway that does not answer: the request fails only when the node aborts it. */
	const silent = (aborted: AbortSignal[]) => async (options: Record<string, unknown>) =>
		await new Promise((_resolve, reject) => {
			const signal = options.abortSignal as AbortSignal;
			aborted.push(signal);
			signal.addEventListener('abort', () => reject(new Error('canceled')));
		});

	afterEach(() => {
		vi.useRealTimers();
	});

	it('starts the workflow once for a delivery posted again with the same webhook-id', async () => {
		const first = await deliver({ workflowId: 'wf-retried' }).result;
		expect(first.workflowData).toHaveLength(1);
		// The gateway's retry (or a replay): same webhook-id, a new timestamp and signature.
		const b = body();
		const again = deliver({
			workflowId: 'wf-retried',
			rawBody: b,
			headers: headers(b, { at: Math.floor(Date.now() / 1000) + 1 }),
		});
		const answer = await again.result;
		expect(answer.workflowData).toBeUndefined();
		expect(answer.webhookResponse).toEqual({
			received: true,
			started: false,
			reason: 'a repeat of delivery evt_42, which already started the workflow',
		});
		expect(again.answered.status).toBeUndefined();
		// Another event, and the same event at another trigger, still start.
		const next = body();
		const other = await deliver({
			workflowId: 'wf-retried',
			rawBody: next,
			headers: headers(next, { id: 'evt_43', at: Math.floor(Date.now() / 1000) }),
		}).result;
		expect(other.workflowData![0][0].json.event_id).toBe('evt_43');
		expect((await deliver({ workflowId: 'wf-elsewhere' }).result).workflowData).toHaveLength(1);
	});

	it('does not start again for a retry that arrives while the first delivery still fetches its image', async () => {
		vi.useFakeTimers();
		const aborted: AbortSignal[] = [];
		const first = deliver({
			workflowId: 'wf-slow',
			rawBody: body(image),
			replies: [silent(aborted)],
		});
		await vi.advanceTimersByTimeAsync(3000);
		const retry = deliver({
			workflowId: 'wf-slow',
			rawBody: body(image),
			replies: [silent(aborted)],
		});
		const repeat = await retry.result;
		expect(repeat.workflowData).toBeUndefined();
		expect(repeat.webhookResponse).toMatchObject({ received: true, started: false });
		expect(retry.requests).toHaveLength(0);
		await vi.advanceTimersByTimeAsync(4000);
		const [[item]] = (await first.result).workflowData!;
		expect(item.json.media_error).toMatchObject({ code: 'timeout' });
	});

	it('starts with media_error when the image does not come within 7 s, and aborts the download', async () => {
		vi.useFakeTimers();
		const aborted: AbortSignal[] = [];
		const { result } = deliver({ rawBody: body(image), replies: [silent(aborted)] });
		let settled = false;
		void result.then(() => (settled = true));
		await vi.advanceTimersByTimeAsync(6999);
		expect(settled).toBe(false);
		await vi.advanceTimersByTimeAsync(1);
		const [[item]] = (await result).workflowData!;
		expect(item.binary).toBeUndefined();
		expect(item.json.media_error).toEqual({
			code: 'timeout',
			message: 'the gateway did not give the image within 7 s (Image Download Timeout)',
		});
		expect(aborted).toHaveLength(1);
		expect(aborted[0].aborted).toBe(true);
	});

	it('waits for the image as long as the Image Download Timeout option says', async () => {
		const started = Date.now();
		const { result } = deliver({
			rawBody: body(image),
			params: { options: { imageDownloadTimeout: 0.05 } },
			replies: [silent([])],
		});
		const [[item]] = (await result).workflowData!;
		expect(Date.now() - started).toBeLessThan(1000);
		expect(item.json.media_error).toEqual({
			code: 'timeout',
			message: 'the gateway did not give the image within 0.05 s (Image Download Timeout)',
		});
	});

	it('forgets a delivery it failed to hand over, so that the next attempt starts the workflow', async () => {
		const ok = { statusCode: 200, body: PNG, headers: { 'content-type': 'image/png' } } as never;
		const attempt = () => {
			const c = triggerContext({
				workflowId: 'wf-failing',
				staticData: { webhookId: 'wh_1', webhookSecret: SECRET },
				replies: [ok],
				headers: headers(body(image), { at: Math.floor(Date.now() / 1000) }),
				rawBody: body(image),
			});
			return { c, run: () => trigger.webhook.call(c.webhook) };
		};
		const failing = attempt();
		failing.c.webhook.helpers.prepareBinaryData = vi.fn(async () => {
			throw new Error('the binary data store is full');
		});
		await expect(failing.run()).rejects.toThrow('the binary data store is full');
		const next = await attempt().run();
		expect(next.workflowData![0][0].binary?.data.fileName).toBe('tiktok-image-42.png');
		expect((await attempt().run()).workflowData).toBeUndefined();
	});
});

describe('TikTok DM Trigger: description', () => {
	it('offers every event type the gateway delivers, message.received by default', () => {
		const events = new TikTokDmTrigger().description.properties.find((p) => p.name === 'events')!;
		expect((events.options as Array<{ value: string }>).map((o) => o.value).sort()).toEqual(
			[...EVENT_TYPES].sort(),
		);
		expect(events.default).toEqual(['message.received']);
	});

	it('reads cursors and bodies as the gateway sends them', () => {
		expect(cursorOf('evt_42')).toBe('42');
		expect(cursorOf('msg_42')).toBeNull();
		expect(parseEvent(Buffer.from('{"type":"typing","timestamp":"t","data":{"uid":"1"}}'))).toEqual(
			{
				type: 'typing',
				timestamp: 't',
				data: { uid: '1' },
			},
		);
		expect(
			flatten({ type: 'typing', timestamp: 't', data: { type: 'x', uid: '1' } }, 'x').type,
		).toBe('typing');
	});
});

describe('TikTok DM Trigger: remembered deliveries', () => {
	it(`remembers the last ${REMEMBERED_DELIVERIES} delivery ids of a trigger`, () => {
		const trigger = triggerKey('wf-many', 'node-1');
		for (let i = 0; i <= REMEMBERED_DELIVERIES; i++) {
			expect(firstDelivery(trigger, `evt_${i}`)).toBe(true);
		}
		expect(firstDelivery(trigger, `evt_${REMEMBERED_DELIVERIES}`)).toBe(false);
		expect(firstDelivery(trigger, 'evt_1')).toBe(false);
		// The oldest was forgotten.
		expect(firstDelivery(trigger, 'evt_0')).toBe(true);
		expect(firstDelivery(triggerKey('wf-many', 'node-2'), 'evt_1')).toBe(true);
	});

	it(`remembers the deliveries of the last ${REMEMBERED_TRIGGERS} triggers used`, () => {
		const kept = triggerKey('wf-kept', 'node-1');
		const dropped = triggerKey('wf-dropped', 'node-1');
		expect(firstDelivery(dropped, 'evt_1')).toBe(true);
		expect(firstDelivery(kept, 'evt_1')).toBe(true);
		for (let i = 0; i < REMEMBERED_TRIGGERS - 1; i++) {
			firstDelivery(triggerKey(`wf-filler-${i}`, 'node-1'), 'evt_1');
			if (i % 100 === 0) {
				// Used again: stays.
				expect(firstDelivery(kept, 'evt_1')).toBe(false);
			}
		}
		expect(firstDelivery(kept, 'evt_1')).toBe(false);
		expect(firstDelivery(dropped, 'evt_1')).toBe(true);
	});
});
