import { randomBytes } from 'crypto';
import type {
	IDataObject,
	IExecuteFunctions,
	IHttpRequestOptions,
	INodeExecutionData,
	INodeType,
	INodeTypeDescription,
	JsonObject,
} from 'n8n-workflow';
import { NodeApiError, NodeConnectionTypes, NodeOperationError } from 'n8n-workflow';

import {
	MAX_PAGE,
	listConversationsRequest,
	messagesPageRequest,
	readPage,
	type PageQuery,
} from './conversations';
import {
	InputProblem,
	buildRequest,
	checkBase64,
	checkInput,
	defaultIdempotencyKey,
	readAnswer,
	type SendInput,
} from './request';

/**
 * Programmatic rather than declarative: a send takes binary input, checks that
 * text and image are not both empty, picks JSON or multipart by the image's
 * kind, and shapes the gateway's errors; reading a history follows its pages.
 * None of that is expressible as routing rules.
 */
export class TikTokDm implements INodeType {
	description: INodeTypeDescription = {
		displayName: 'TikTok DM',
		name: 'tikTokDm',
		icon: { light: 'file:../../icons/tiktokDm.svg', dark: 'file:../../icons/tiktokDm.dark.svg' },
		group: ['output'],
		version: [1],
		subtitle: '={{$parameter["operation"] + ": " + $parameter["resource"]}}',
		description:
			'Send TikTok direct messages (text and images) and read conversations through the tiktok-dm gateway',
		defaults: {
			name: 'TikTok DM',
		},
		inputs: [NodeConnectionTypes.Main],
		outputs: [NodeConnectionTypes.Main],
		usableAsTool: true,
		credentials: [
			{
				name: 'tikTokDmApi',
				required: true,
			},
		],
		properties: [
			{
				displayName: 'Resource',
				name: 'resource',
				type: 'options',
				noDataExpression: true,
				options: [
					{ name: 'Conversation', value: 'conversation' },
					{ name: 'Message', value: 'message' },
				],
				default: 'message',
			},
			{
				displayName: 'Operation',
				name: 'operation',
				type: 'options',
				noDataExpression: true,
				displayOptions: { show: { resource: ['message'] } },
				options: [
					{
						name: 'Send',
						value: 'send',
						description:
							'Send a text, an image, or an image with its caption into a conversation or to a user',
						action: 'Send a direct message',
					},
				],
				default: 'send',
			},
			{
				displayName: 'Operation',
				name: 'operation',
				type: 'options',
				noDataExpression: true,
				displayOptions: { show: { resource: ['conversation'] } },
				options: [
					{
						name: 'Get Messages',
						value: 'getMessages',
						description: "Read a conversation's history, newest first",
						action: 'Get the messages of a conversation',
					},
					{
						name: 'List',
						value: 'list',
						description: "List an account's conversations with their short IDs",
						action: 'List conversations',
					},
				],
				default: 'list',
			},
			{
				displayName: 'Account',
				name: 'account',
				type: 'string',
				required: true,
				default: '',
				placeholder: 'sandbox',
				description: 'The account stored in the gateway whose conversations to read',
				displayOptions: { show: { resource: ['conversation'] } },
			},
			{
				displayName: 'Conversation ID',
				name: 'conversationId',
				type: 'string',
				required: true,
				default: '',
				placeholder: '0:1:7000000000000000001:7000000000000000002',
				description: "The conversation's ID, of the form 0:1:UID:UID",
				displayOptions: { show: { resource: ['conversation'], operation: ['getMessages'] } },
			},
			{
				displayName: 'Return All',
				name: 'returnAll',
				type: 'boolean',
				default: false,
				description: 'Whether to return all results or only up to a given limit',
				displayOptions: { show: { resource: ['conversation'], operation: ['getMessages'] } },
			},
			{
				displayName: 'Limit',
				name: 'limit',
				type: 'number',
				typeOptions: { minValue: 1 },
				default: 50,
				description: 'Max number of results to return',
				displayOptions: {
					show: { resource: ['conversation'], operation: ['getMessages'], returnAll: [false] },
				},
			},
			{
				displayName: 'Options',
				name: 'historyOptions',
				type: 'collection',
				placeholder: 'Add Option',
				default: {},
				displayOptions: { show: { resource: ['conversation'], operation: ['getMessages'] } },
				options: [
					{
						displayName: 'Before',
						name: 'before',
						type: 'string',
						default: '',
						description:
							"Start with the messages older than this cursor (a page's next_cursor). Empty: start with the newest.",
					},
					{
						displayName: 'Conversation Short ID',
						name: 'conversationShortId',
						type: 'string',
						default: '',
						description: "The conversation's short ID, passed on to TikTok when known",
					},
				],
			},
			{
				displayName: 'Send To',
				name: 'sendTo',
				type: 'options',
				options: [
					{
						name: 'Conversation',
						value: 'conversation',
						description: 'Into a conversation, by its ID',
					},
					{
						name: 'User ID',
						value: 'user',
						description: 'To a user, by their numeric user ID (the gateway finds the conversation)',
					},
				],
				default: 'conversation',
				displayOptions: { show: { resource: ['message'], operation: ['send'] } },
			},
			{
				displayName: 'Conversation ID',
				name: 'conversationId',
				type: 'string',
				required: true,
				default: '',
				placeholder: '0:1:7000000000000000001:7000000000000000002',
				description: "The conversation's ID, of the form 0:1:UID:UID",
				displayOptions: {
					show: { resource: ['message'], operation: ['send'], sendTo: ['conversation'] },
				},
			},
			{
				displayName: 'Conversation Short ID',
				name: 'conversationShortId',
				type: 'string',
				default: '',
				placeholder: '7200000000000000001',
				description:
					"The conversation's short ID, a number. Leave empty to have the gateway look it up in the account's inbox.",
				displayOptions: {
					show: { resource: ['message'], operation: ['send'], sendTo: ['conversation'] },
				},
			},
			{
				displayName: 'User ID',
				name: 'toUid',
				type: 'string',
				required: true,
				default: '',
				placeholder: '7000000000000000002',
				description:
					"The recipient's numeric TikTok user ID; the gateway sends into the account's conversation with them",
				displayOptions: { show: { resource: ['message'], operation: ['send'], sendTo: ['user'] } },
			},
			{
				displayName: 'Text',
				name: 'text',
				type: 'string',
				typeOptions: { rows: 3 },
				default: '',
				description:
					'The message text. May be empty when an image is sent; sent after the image as its caption.',
				displayOptions: { show: { resource: ['message'], operation: ['send'] } },
			},
			{
				displayName: 'Image Input Type',
				name: 'imageInputType',
				type: 'options',
				options: [
					{ name: 'None', value: 'none', description: 'Send text only' },
					{
						name: 'Binary',
						value: 'binary',
						description: 'An image from a binary property of the input item',
					},
					{
						name: 'Base64',
						value: 'base64',
						description: 'An image as a base64 string or a data URI',
					},
				],
				default: 'none',
				displayOptions: { show: { resource: ['message'], operation: ['send'] } },
			},
			{
				displayName: 'Image Binary Field',
				name: 'binaryPropertyName',
				type: 'string',
				default: 'data',
				description: 'The binary property of the input item that holds the image',
				displayOptions: {
					show: { resource: ['message'], operation: ['send'], imageInputType: ['binary'] },
				},
			},
			{
				displayName: 'Base64 Image',
				name: 'base64Image',
				type: 'string',
				typeOptions: { rows: 2 },
				default: '',
				description: 'The image as base64 (raw, or a data:image/...;base64, URI)',
				displayOptions: {
					show: { resource: ['message'], operation: ['send'], imageInputType: ['base64'] },
				},
			},
			{
				displayName: 'Options',
				name: 'options',
				type: 'collection',
				placeholder: 'Add Option',
				default: {},
				displayOptions: { show: { resource: ['message'], operation: ['send'] } },
				options: [
					{
						displayName: 'Account',
						name: 'account',
						type: 'string',
						default: '',
						description:
							'Send as this account stored in the gateway (instead of the session in the credential)',
					},
					{
						displayName: 'Idempotency Key',
						name: 'idempotencyKey',
						type: 'string',
						default: '',
						description:
							'A repeat with the same key returns the first result instead of sending again. Default: the execution ID, the node and the item index, which covers retries inside one execution (Retry On Fail). A new execution has a new ID: to make re-running a workflow safe, set a key from your data, such as an expression with your order ID.',
					},
					{
						displayName: 'Wait for Delivery',
						name: 'waitForDelivery',
						type: 'boolean',
						default: true,
						description:
							'Whether to wait until TikTok has the message (otherwise the gateway answers as soon as it has accepted it)',
					},
				],
			},
		],
	};

	async execute(this: IExecuteFunctions): Promise<INodeExecutionData[][]> {
		const items = this.getInputData();
		const out: INodeExecutionData[] = [];
		const credentials = await this.getCredentials('tikTokDmApi');
		const gatewayUrl = String(credentials.gatewayUrl ?? '');
		for (let itemIndex = 0; itemIndex < items.length; itemIndex++) {
			try {
				const resource = this.getNodeParameter('resource', itemIndex, 'message') as string;
				const operation = this.getNodeParameter('operation', itemIndex, 'send') as string;
				let answers: IDataObject[];
				if (resource === 'conversation' && operation === 'list') {
					answers = await listConversations(this, gatewayUrl, itemIndex);
				} else if (resource === 'conversation' && operation === 'getMessages') {
					answers = await getMessages(this, gatewayUrl, itemIndex);
				} else if (resource === 'message' && operation === 'send') {
					const input = readItem(this, itemIndex);
					answers = [await send(this, gatewayUrl, input, itemIndex)];
				} else {
					throw new NodeOperationError(
						this.getNode(),
						`The operation "${operation}" of "${resource}" is not known`,
						{ itemIndex },
					);
				}
				for (const json of answers) {
					out.push({ json, pairedItem: { item: itemIndex } });
				}
			} catch (error) {
				if (this.continueOnFail()) {
					const message = error instanceof Error ? error.message : String(error);
					const description =
						error instanceof NodeApiError || error instanceof NodeOperationError
							? error.description
							: undefined;
					out.push({
						json: { success: false, message, error: { message, description } },
						pairedItem: { item: itemIndex },
					});
					continue;
				}
				// Both constructors hand back an error that already is one of theirs.
				if (error instanceof NodeApiError) {
					throw new NodeApiError(this.getNode(), error as unknown as JsonObject, { itemIndex });
				}
				throw new NodeOperationError(this.getNode(), error as Error, { itemIndex });
			}
		}
		return [out];
	}
}

/** Runs `build`, turning an `InputProblem` into the item's `NodeOperationError`. */
function checked<T>(ctx: IExecuteFunctions, itemIndex: number, build: () => T): T {
	try {
		return build();
	} catch (error) {
		if (error instanceof InputProblem) {
			throw new NodeOperationError(ctx.getNode(), error.message, { itemIndex });
		}
		throw new NodeOperationError(ctx.getNode(), error as Error, { itemIndex });
	}
}

/** Sends `request` with the credential; a failed call or answer is a `NodeApiError`. */
async function call(
	ctx: IExecuteFunctions,
	request: IHttpRequestOptions,
	itemIndex: number,
): Promise<IDataObject> {
	let response;
	try {
		response = await ctx.helpers.httpRequestWithAuthentication.call(ctx, 'tikTokDmApi', request);
	} catch (error) {
		throw new NodeApiError(ctx.getNode(), error as JsonObject, { itemIndex });
	}
	const answer = readAnswer(response as { statusCode?: number; body?: unknown });
	if (!answer.ok) {
		throw new NodeApiError(ctx.getNode(), answer.body as JsonObject, {
			itemIndex,
			message: answer.message,
			description: answer.description,
			httpCode: String(answer.status),
		});
	}
	return answer.body;
}

/** Conversation → List: one output item per conversation. */
async function listConversations(
	ctx: IExecuteFunctions,
	gatewayUrl: string,
	itemIndex: number,
): Promise<IDataObject[]> {
	const account = String(ctx.getNodeParameter('account', itemIndex, '') ?? '');
	const request = checked(ctx, itemIndex, () => listConversationsRequest(gatewayUrl, account));
	const body = await call(ctx, request, itemIndex);
	return Array.isArray(body.conversations) ? (body.conversations as IDataObject[]) : [];
}

/**
 * Conversation → Get Messages: one output item per message, newest first,
 * following `next_cursor` until the limit (or, with Return All, the end).
 */
async function getMessages(
	ctx: IExecuteFunctions,
	gatewayUrl: string,
	itemIndex: number,
): Promise<IDataObject[]> {
	const param = (name: string, fallback: unknown) =>
		ctx.getNodeParameter(name, itemIndex, fallback);
	const options = param('historyOptions', {}) as IDataObject;
	const returnAll = param('returnAll', false) === true;
	const limit = returnAll ? Infinity : Number(param('limit', 50));
	if (!returnAll && (!Number.isInteger(limit) || limit < 1)) {
		throw new NodeOperationError(ctx.getNode(), 'Limit must be a whole number of at least 1', {
			itemIndex,
		});
	}
	const query: PageQuery = {
		account: String(param('account', '') ?? ''),
		conversationId: String(param('conversationId', '') ?? ''),
		conversationShortId: String(options.conversationShortId ?? ''),
		before: String(options.before ?? ''),
		limit: Math.min(limit, MAX_PAGE),
	};
	const messages: IDataObject[] = [];
	const seen = new Set<string>();
	for (;;) {
		query.limit = Math.min(limit - messages.length, MAX_PAGE);
		const request = checked(ctx, itemIndex, () => messagesPageRequest(gatewayUrl, query));
		const page = readPage(await call(ctx, request, itemIndex));
		messages.push(...page.messages.slice(0, limit - messages.length));
		// A cursor seen before would read the same pages again.
		if (
			page.nextCursor === null ||
			page.messages.length === 0 ||
			messages.length >= limit ||
			seen.has(page.nextCursor)
		) {
			return messages;
		}
		seen.add(page.nextCursor);
		query.before = page.nextCursor;
	}
}

/** One item's parameters, checked; throws `NodeOperationError` before any request. */
function readItem(ctx: IExecuteFunctions, itemIndex: number): SendInput & { binaryField?: string } {
	const param = (name: string, fallback: unknown) =>
		ctx.getNodeParameter(name, itemIndex, fallback);
	const options = param('options', {}) as IDataObject;
	const kind = param('imageInputType', 'none') as string;
	const nodeId = ctx.getNode().id ?? ctx.getNode().name;
	const executionId = ctx.getExecutionId();
	const sendTo = param('sendTo', 'conversation') === 'user' ? 'user' : 'conversation';
	const input: SendInput & { binaryField?: string } = {
		sendTo,
		conversationId: sendTo === 'conversation' ? String(param('conversationId', '') ?? '') : '',
		conversationShortId:
			sendTo === 'conversation' ? String(param('conversationShortId', '') ?? '') : '',
		toUid: sendTo === 'user' ? String(param('toUid', '') ?? '') : '',
		text: String(param('text', '') ?? ''),
		account: String(options.account ?? '').trim(),
		idempotencyKey:
			String(options.idempotencyKey ?? '').trim() ||
			(executionId ? defaultIdempotencyKey(executionId, nodeId, itemIndex) : ''),
		waitForDelivery: options.waitForDelivery !== false,
	};
	checked(ctx, itemIndex, () => {
		if (kind === 'base64') {
			input.image = { kind: 'base64', value: checkBase64(String(param('base64Image', '') ?? '')) };
		} else if (kind === 'binary') {
			input.binaryField = String(param('binaryPropertyName', 'data') ?? 'data');
		}
		checkInput(input, input.image !== undefined || input.binaryField !== undefined);
	});
	return input;
}

async function send(
	ctx: IExecuteFunctions,
	gatewayUrl: string,
	input: SendInput & { binaryField?: string },
	itemIndex: number,
): Promise<IDataObject> {
	if (input.binaryField !== undefined) {
		let meta;
		let bytes: Buffer;
		try {
			meta = ctx.helpers.assertBinaryData(itemIndex, input.binaryField);
			bytes = await ctx.helpers.getBinaryDataBuffer(itemIndex, input.binaryField);
		} catch (error) {
			throw new NodeOperationError(ctx.getNode(), error as Error, {
				itemIndex,
				description: `The image could not be read from the binary field "${input.binaryField}"`,
			});
		}
		if (bytes.length === 0) {
			throw new NodeOperationError(
				ctx.getNode(),
				`The binary field "${input.binaryField}" is empty`,
				{ itemIndex },
			);
		}
		input.image = {
			kind: 'binary',
			bytes,
			fileName: meta.fileName ?? 'image',
			mimeType: meta.mimeType || 'application/octet-stream',
		};
	}
	const boundary = `tiktokdm${randomBytes(12).toString('hex')}`;
	return await call(ctx, buildRequest(gatewayUrl, input, boundary), itemIndex);
}
