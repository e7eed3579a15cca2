import type {
	IDataObject,
	IHookFunctions,
	IHttpRequestOptions,
	INodeExecutionData,
	INodeType,
	INodeTypeDescription,
	IWebhookFunctions,
	IWebhookResponseData,
	JsonObject,
} from 'n8n-workflow';
import { NodeApiError, NodeConnectionTypes, sleep } from 'n8n-workflow';

import { base } from '../TikTokDm/conversations';
import { readAnswer, type GatewayAnswer } from '../TikTokDm/request';
import {
	accountList,
	cursorOf,
	flatten,
	imageFileName,
	parseEvent,
	skipReason,
	wantsImage,
	type Filter,
} from './event';
import { firstDelivery, forgetDelivery, triggerKey } from './deliveries';
import { verify, type SignedHeaders } from './signature';

/**
 * How long the image download may take by default, in seconds: well below the
 * gateway's default webhook timeout (`webhook_timeout_ms`, 10 s), after which
 * it would post the event again.
 */
export const DEFAULT_IMAGE_TIMEOUT_SECONDS = 7;

/** The Image Download Timeout option in milliseconds (the default when unset or not a positive number; at most 60 s). */
export function imageTimeoutMs(value: unknown): number {
	const seconds = Number(value ?? DEFAULT_IMAGE_TIMEOUT_SECONDS);
	return Number.isFinite(seconds) && seconds > 0
		? Math.round(Math.min(seconds, 60) * 1000)
		: DEFAULT_IMAGE_TIMEOUT_SECONDS * 1000;
}

/** What the node keeps in its static data between activation and deliveries. */
interface Registration extends IDataObject {
	webhookId?: string;
	webhookSecret?: string;
}

type GatewayContext = IHookFunctions | IWebhookFunctions;

/** Calls the gateway with the credential; a failed connection is a `NodeApiError`. */
async function gateway(
	ctx: GatewayContext,
	request: Omit<IHttpRequestOptions, 'url'> & { path: string },
): Promise<GatewayAnswer & { headers: IDataObject; raw: unknown }> {
	const credentials = await ctx.getCredentials('tikTokDmApi');
	const { path, ...rest } = request;
	const options: IHttpRequestOptions = {
		...rest,
		url: `${base(String(credentials.gatewayUrl ?? ''))}${path}`,
		returnFullResponse: true,
		ignoreHttpStatusErrors: true,
	};
	let response: { statusCode?: number; body?: unknown; headers?: IDataObject };
	try {
		response = (await ctx.helpers.httpRequestWithAuthentication.call(
			ctx,
			'tikTokDmApi',
			options,
		)) as typeof response;
	} catch (error) {
		throw new NodeApiError(ctx.getNode(), error as JsonObject);
	}
	const status = response.statusCode ?? 0;
	const headers = response.headers ?? {};
	if (options.encoding === 'arraybuffer' && status >= 200 && status < 300) {
		// Bytes (an image): not read as an answer.
		return { ok: true, status, body: {}, message: '', headers, raw: response.body };
	}
	return { ...readAnswer(response), headers, raw: response.body };
}

/** A gateway answer that is not a success, as the node's error. */
function failure(ctx: GatewayContext, answer: GatewayAnswer, what: string): NodeApiError {
	const hint =
		answer.code === 'webhook_url_not_allowed'
			? ". The gateway posts only to public addresses unless allow_private_webhooks is set; set n8n's WEBHOOK_URL to an address the gateway may reach"
			: '';
	return new NodeApiError(ctx.getNode(), answer.body as JsonObject, {
		message: `${what}: ${answer.message}`,
		description: (answer.description ?? '') + hint || undefined,
		httpCode: String(answer.status),
	});
}

function webhookUrl(ctx: IHookFunctions): string {
	return ctx.getNodeWebhookUrl('default') ?? '';
}

function sameUrl(a: string, b: string): boolean {
	try {
		return new URL(a).href === new URL(b).href;
	} catch {
		return a === b;
	}
}

function selectedEvents(ctx: IHookFunctions | IWebhookFunctions): string[] {
	const events = ctx.getNodeParameter('events', ['message.received']) as string[];
	return Array.isArray(events) ? events : [];
}

/** Answers the request itself (no workflow run) with `status` and `{"error": message}`. */
function refuse(ctx: IWebhookFunctions, status: number, message: string): IWebhookResponseData {
	const res = ctx.getResponseObject();
	res.writeHead(status, { 'Content-Type': 'application/json' });
	res.end(JSON.stringify({ error: message }));
	return { noWebhookResponse: true };
}

/**
 * The received image's bytes from `GET /v1/media/{cursor}` as binary property
 * `data`; when the gateway cannot give them within `timeoutMs` (it connects the
 * account and downloads from TikTok, which may take a minute, while the
 * delivery waits for the answer), `media_error` in the item says why (the
 * event still starts the workflow).
 */
async function attachImage(
	ctx: IWebhookFunctions,
	item: INodeExecutionData,
	cursor: string | null,
	timeoutMs: number,
): Promise<void> {
	if (cursor === null) {
		item.json.media_error = { message: 'the webhook-id names no event cursor' };
		return;
	}
	const abort = new AbortController();
	const fetched = gateway(ctx, {
		method: 'GET',
		path: `/v1/media/${encodeURIComponent(cursor)}`,
		encoding: 'arraybuffer',
		json: false,
		abortSignal: abort.signal,
	});
	let answer;
	try {
		// `null`: the time ran out first.
		answer = await Promise.race([fetched, sleep(timeoutMs).then(() => null)]);
	} catch (error) {
		item.json.media_error = { message: (error as Error).message };
		return;
	}
	if (answer === null) {
		// The request is abandoned (its late failure is ignored).
		fetched.catch(() => undefined);
		abort.abort();
		item.json.media_error = {
			code: 'timeout',
			message: `the gateway did not give the image within ${timeoutMs / 1000} s (Image Download Timeout)`,
		};
		return;
	}
	if (answer.status !== 200) {
		item.json.media_error = { status: answer.status, code: answer.code, message: answer.message };
		return;
	}
	const raw = answer.raw;
	const bytes = Buffer.isBuffer(raw)
		? raw
		: raw instanceof ArrayBuffer
			? Buffer.from(raw)
			: Buffer.from(String(raw ?? ''), 'binary');
	const mimeType =
		String(answer.headers['content-type'] ?? 'application/octet-stream')
			.split(';')[0]
			.trim() || 'application/octet-stream';
	item.binary = {
		data: await ctx.helpers.prepareBinaryData(bytes, imageFileName(cursor, mimeType), mimeType),
	};
}

/**
 * Starts a workflow on the gateway's webhook events: on activation it
 * registers its webhook URL with the gateway (`POST /v1/webhooks`) and keeps
 * the webhook's id and signing secret in its static data; each delivery is
 * checked against that secret (Standard Webhooks) before anything else.
 */
export class TikTokDmTrigger implements INodeType {
	description: INodeTypeDescription = {
		displayName: 'TikTok DM Trigger',
		name: 'tikTokDmTrigger',
		icon: { light: 'file:../../icons/tiktokDm.svg', dark: 'file:../../icons/tiktokDm.dark.svg' },
		group: ['trigger'],
		version: [1],
		subtitle: '={{$parameter["events"].join(", ")}}',
		description:
			'Starts the workflow when a TikTok DM arrives (or is read, reacted to, deleted, sent or failed), through the tiktok-dm gateway',
		defaults: {
			name: 'TikTok DM Trigger',
		},
		inputs: [],
		outputs: [NodeConnectionTypes.Main],
		credentials: [
			{
				name: 'tikTokDmApi',
				required: true,
			},
		],
		webhooks: [
			{
				name: 'default',
				httpMethod: 'POST',
				responseMode: 'onReceived',
				path: 'webhook',
			},
		],
		properties: [
			{
				displayName: 'Events',
				name: 'events',
				type: 'multiOptions',
				required: true,
				options: [
					{
						name: 'Message Deleted',
						value: 'message.deleted',
						description: 'A message was deleted (message.deleted)',
					},
					{
						name: 'Message Failed',
						value: 'message.failed',
						description: 'A message sent through the gateway failed (message.failed)',
					},
					{
						name: 'Message Read',
						value: 'message.read',
						description: 'The other side read the conversation (message.read)',
					},
					{
						name: 'Message Received',
						value: 'message.received',
						description: 'A message in one of the accounts’ conversations (message.received)',
					},
					{
						name: 'Message Sent',
						value: 'message.sent',
						description: 'A message sent through the gateway was delivered (message.sent)',
					},
					{
						name: 'Reaction',
						value: 'reaction',
						description: 'A reaction was added or removed (reaction)',
					},
					{
						name: 'Typing',
						value: 'typing',
						description: 'The other side is typing (typing)',
					},
				],
				default: ['message.received'],
				description: 'The events that start the workflow',
			},
			{
				displayName: 'Direction',
				name: 'direction',
				type: 'options',
				options: [
					{
						name: 'Inbound Only',
						value: 'inbound',
						description:
							'Messages to the account; its own sends, which come back as message.received with direction outbound, do not start the workflow (so a reply cannot answer itself)',
					},
					{
						name: 'All',
						value: 'all',
						description: 'Also the account’s own sends, from this gateway or another device',
					},
				],
				default: 'inbound',
				description: 'Which received messages start the workflow (message.received only)',
			},
			{
				displayName: 'Download Image',
				name: 'downloadImage',
				type: 'boolean',
				default: true,
				description:
					'Whether a received image is fetched from the gateway (decrypted) into the binary property "data"',
			},
			{
				displayName: 'Options',
				name: 'options',
				type: 'collection',
				placeholder: 'Add Option',
				default: {},
				options: [
					{
						displayName: 'Accounts',
						name: 'accounts',
						type: 'string',
						default: '',
						placeholder: 'shop, support',
						description:
							'Only events of these stored accounts (names separated by commas). Empty: every account the API key may use.',
					},
					{
						displayName: 'Image Download Timeout',
						name: 'imageDownloadTimeout',
						type: 'number',
						typeOptions: { minValue: 1, maxValue: 60, numberPrecision: 1 },
						default: DEFAULT_IMAGE_TIMEOUT_SECONDS,
						description:
							"Seconds to wait for a received image's bytes before the workflow starts without them (with media_error). Keep it below the gateway's webhook timeout (webhook_timeout_ms, 10 s by default), or the gateway posts the event again.",
					},
				],
			},
		],
	};

	webhookMethods = {
		default: {
			/**
			 * Whether the gateway still has this node's webhook (same id, URL and
			 * events, and its secret held). Any other webhook to this URL (whose
			 * secret the node does not hold, so it could never be verified), and
			 * the node's own at another URL, are deleted.
			 */
			async checkExists(this: IHookFunctions): Promise<boolean> {
				const data = this.getWorkflowStaticData('node') as Registration;
				const url = webhookUrl(this);
				const events = selectedEvents(this);
				const answer = await gateway(this, { method: 'GET', path: '/v1/webhooks', json: true });
				if (!answer.ok) {
					throw failure(this, answer, 'The gateway did not list its webhooks');
				}
				const listed = Array.isArray(answer.body.webhooks)
					? (answer.body.webhooks as IDataObject[])
					: [];
				let exists = false;
				for (const webhook of listed) {
					// Ours: the one it registered (perhaps at an earlier URL, when n8n's
					// WEBHOOK_URL changed), or any to its URL.
					const ours =
						(data.webhookId !== undefined && webhook.id === data.webhookId) ||
						sameUrl(String(webhook.url ?? ''), url);
					if (!ours) {
						continue;
					}
					const theirs = Array.isArray(webhook.events) ? (webhook.events as string[]) : [];
					const same =
						webhook.id === data.webhookId &&
						sameUrl(String(webhook.url ?? ''), url) &&
						typeof data.webhookSecret === 'string' &&
						theirs.length === events.length &&
						events.every((e) => theirs.includes(e));
					if (same) {
						exists = true;
						continue;
					}
					const removed = await gateway(this, {
						method: 'DELETE',
						path: `/v1/webhooks/${encodeURIComponent(String(webhook.id))}`,
						json: true,
					});
					if (!removed.ok && removed.status !== 404) {
						throw failure(this, removed, 'The gateway did not delete an old webhook');
					}
				}
				if (!exists) {
					delete data.webhookId;
					delete data.webhookSecret;
				}
				return exists;
			},

			/** Registers the node's URL for its events and keeps the webhook's id and secret. */
			async create(this: IHookFunctions): Promise<boolean> {
				const data = this.getWorkflowStaticData('node') as Registration;
				const answer = await gateway(this, {
					method: 'POST',
					path: '/v1/webhooks',
					json: true,
					body: { url: webhookUrl(this), events: selectedEvents(this) },
				});
				if (!answer.ok) {
					throw failure(this, answer, 'The gateway did not create the webhook');
				}
				const { id, secret } = answer.body;
				if (typeof id !== 'string' || typeof secret !== 'string') {
					throw new NodeApiError(this.getNode(), answer.body as JsonObject, {
						message: 'The gateway created the webhook but did not answer with its id and secret',
					});
				}
				data.webhookId = id;
				data.webhookSecret = secret;
				return true;
			},

			/** Removes the webhook (one already gone counts as removed). */
			async delete(this: IHookFunctions): Promise<boolean> {
				const data = this.getWorkflowStaticData('node') as Registration;
				if (data.webhookId === undefined) {
					return true;
				}
				let answer;
				try {
					answer = await gateway(this, {
						method: 'DELETE',
						path: `/v1/webhooks/${encodeURIComponent(data.webhookId)}`,
						json: true,
					});
				} catch (error) {
					this.logger.warn('TikTok DM Trigger: the gateway could not delete the webhook', {
						webhookId: data.webhookId,
						error: (error as Error).message,
					});
					return false;
				}
				if (!answer.ok && answer.status !== 404) {
					this.logger.warn('TikTok DM Trigger: the gateway did not delete the webhook', {
						webhookId: data.webhookId,
						status: answer.status,
						error: answer.message,
					});
					return false;
				}
				delete data.webhookId;
				delete data.webhookSecret;
				return true;
			},
		},
	};

	async webhook(this: IWebhookFunctions): Promise<IWebhookResponseData> {
		const data = this.getWorkflowStaticData('node') as Registration;
		const secret = typeof data.webhookSecret === 'string' ? data.webhookSecret : '';
		if (secret === '') {
			return refuse(
				this,
				401,
				'this trigger holds no webhook secret; deactivate and activate the workflow again',
			);
		}
		const raw: unknown = this.getRequestObject().rawBody;
		if (!Buffer.isBuffer(raw)) {
			return refuse(this, 400, 'the request has no body');
		}
		const verdict = verify(
			secret,
			this.getHeaderData() as SignedHeaders,
			raw,
			Math.floor(Date.now() / 1000),
		);
		if (!verdict.ok) {
			return refuse(this, 401, `the signature does not verify: ${verdict.reason}`);
		}
		const event = parseEvent(raw);
		if (event === null) {
			return refuse(this, 400, 'the body is not an event: {"type", "timestamp", "data"}');
		}
		const options = this.getNodeParameter('options', {}) as IDataObject;
		const filter: Filter = {
			events: selectedEvents(this),
			inboundOnly: this.getNodeParameter('direction', 'inbound') !== 'all',
			accounts: accountList(String(options.accounts ?? '')),
		};
		const skipped = skipReason(event, filter);
		if (skipped !== null) {
			return { webhookResponse: { received: true, started: false, reason: skipped } };
		}
		// A delivery this trigger already started the workflow for (or is still
		// handling): the gateway posted it again, after its webhook timeout or in
		// a replay. Answered 200 so that it stops.
		const trigger = triggerKey(this.getWorkflow().id, this.getNode().id);
		if (!firstDelivery(trigger, verdict.id)) {
			return {
				webhookResponse: {
					received: true,
					started: false,
					reason: `a repeat of delivery ${verdict.id}, which already started the workflow`,
				},
			};
		}
		let handled = false;
		try {
			const item: INodeExecutionData = { json: flatten(event, verdict.id) };
			if (wantsImage(event, this.getNodeParameter('downloadImage', true) !== false)) {
				await attachImage(
					this,
					item,
					cursorOf(verdict.id),
					imageTimeoutMs(options.imageDownloadTimeout),
				);
			}
			handled = true;
			return { workflowData: [[item]] };
		} finally {
			if (!handled) {
				// Failed before the workflow could start: the gateway's next attempt must start it.
				forgetDelivery(trigger, verdict.id);
			}
		}
	}
}
