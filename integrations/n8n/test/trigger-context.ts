import { vi } from 'vitest';
import type { IDataObject, IHookFunctions, INode, IWebhookFunctions } from 'n8n-workflow';

import type { Reply } from './context';

export const WEBHOOK_URL = 'http://127.0.0.1:5678/webhook/3f1c/webhook';

let workflows = 0;

/** A gateway answer, or a function answering the request (e.g. a promise that settles late or never). */
export type TriggerReply = Reply | ((options: IDataObject) => Promise<unknown>);

/** What the node answered by itself (a refusal), if it did. */
export interface Answered {
	status?: number;
	headers?: Record<string, string>;
	body?: string;
}

/**
 * A hand-made IHookFunctions / IWebhookFunctions: node parameters, static
 * data, a gateway answering `replies` in turn, and for a delivery its headers
 * and raw body.
 */
export function triggerContext(opts: {
	params?: IDataObject;
	staticData?: IDataObject;
	replies?: TriggerReply[];
	headers?: Record<string, string>;
	rawBody?: Buffer;
	/** The workflow's id; by default one of its own, so that deliveries remembered by another test's trigger do not count. */
	workflowId?: string;
}) {
	const node: INode = {
		id: 'trigger-1',
		name: 'TikTok DM Trigger',
		type: 'n8n-nodes-tiktok-dm.tikTokDmTrigger',
		typeVersion: 1,
		position: [0, 0],
		parameters: {},
	};
	const workflowId = opts.workflowId ?? `wf-${++workflows}`;
	const params = opts.params ?? {};
	const staticData: IDataObject = opts.staticData ?? {};
	const replies = [...(opts.replies ?? [])];
	const requests: Array<{ credential: string; options: IDataObject }> = [];
	const answered: Answered = {};
	const logged: Array<{ message: string; meta: unknown }> = [];
	const ctx = {
		getNode: () => node,
		getWorkflow: () => ({ id: workflowId, name: 'A workflow', active: true }),
		getNodeParameter: (name: string, fallback: unknown) =>
			params[name] === undefined ? fallback : params[name],
		getWorkflowStaticData: () => staticData,
		getNodeWebhookUrl: () => WEBHOOK_URL,
		getCredentials: async () => ({
			gatewayUrl: 'http://127.0.0.1:8787/',
			apiKey: 'tdm_x',
			sessionToken: '',
		}),
		getHeaderData: () => opts.headers ?? {},
		getRequestObject: () => ({ rawBody: opts.rawBody, body: {} }),
		getResponseObject: () => ({
			writeHead: (status: number, headers: Record<string, string>) => {
				answered.status = status;
				answered.headers = headers;
			},
			end: (body: string) => {
				answered.body = body;
			},
		}),
		logger: {
			warn: (message: string, meta: unknown) => logged.push({ message, meta }),
		},
		helpers: {
			httpRequestWithAuthentication: vi.fn(async (credential: string, options: IDataObject) => {
				requests.push({ credential, options });
				const reply = replies.shift();
				if (reply === undefined) {
					throw new Error('no reply prepared');
				}
				if (reply instanceof Error) {
					throw reply;
				}
				if (typeof reply === 'function') {
					return await reply(options);
				}
				return reply;
			}),
			prepareBinaryData: vi.fn(async (bytes: Buffer, fileName: string, mimeType: string) => ({
				data: bytes.toString('base64'),
				fileName,
				mimeType,
				fileSize: String(bytes.length),
			})),
		},
	};
	return {
		hooks: ctx as unknown as IHookFunctions,
		webhook: ctx as unknown as IWebhookFunctions,
		staticData,
		requests,
		answered,
		logged,
	};
}
