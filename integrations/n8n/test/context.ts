import { vi } from 'vitest';
import type { IBinaryData, IDataObject, IExecuteFunctions, INode } from 'n8n-workflow';

/** One input item: its parameters (as the node reads them) and its binary data. */
export interface Item {
	params: IDataObject;
	binary?: Record<string, { meta: IBinaryData; bytes: Buffer }>;
}

/** What the gateway answers, per call. */
export type Reply = { statusCode: number; body: unknown } | Error;

/** A hand-made IExecuteFunctions: parameters per item, binary data, and a gateway. */
export function context(
	items: Item[],
	replies: Reply[],
	opts: { continueOnFail?: boolean; executionId?: string } = {},
) {
	const node: INode = {
		id: 'node-1',
		name: 'TikTok DM',
		type: 'n8n-nodes-tiktok-dm.tikTokDm',
		typeVersion: 1,
		position: [0, 0],
		parameters: {},
	};
	const requests: Array<{ credential: string; options: IDataObject }> = [];
	const httpRequestWithAuthentication = vi.fn(async function (
		credential: string,
		options: IDataObject,
	) {
		requests.push({ credential, options });
		const reply = replies.shift();
		if (reply === undefined) {
			throw new Error('no reply prepared');
		}
		if (reply instanceof Error) {
			throw reply;
		}
		return reply;
	});
	const ctx = {
		getInputData: () => items.map(() => ({ json: {} })),
		getNodeParameter: (name: string, i: number, fallback: unknown) => {
			const value = items[i].params[name];
			return value === undefined ? fallback : value;
		},
		getNode: () => node,
		getExecutionId: () => opts.executionId ?? 'exec-42',
		continueOnFail: () => opts.continueOnFail ?? false,
		getCredentials: async () => ({
			gatewayUrl: 'http://127.0.0.1:8787/',
			apiKey: 'tdm_x',
			sessionToken: '',
		}),
		helpers: {
			httpRequestWithAuthentication,
			assertBinaryData: (i: number, field: string) => {
				const found = items[i].binary?.[field];
				if (!found) {
					throw new Error(
						`This operation expects the node's input data to contain a binary file '${field}', but none was found`,
					);
				}
				return found.meta;
			},
			getBinaryDataBuffer: async (i: number, field: string) => {
				const found = items[i].binary?.[field];
				if (!found) {
					throw new Error('no binary');
				}
				return found.bytes;
			},
		},
	};
	return { ctx: ctx as unknown as IExecuteFunctions, requests, httpRequestWithAuthentication };
}

export const ids = {
	conversationId: '0:1:7000000000000000001:7000000000000000002',
	conversationShortId: '7200000000000000001',
};

export function sent(n = 1): Reply {
	return {
		statusCode: 200,
		body: {
			id: 'req_1',
			success: true,
			message: n === 1 ? 'sent 1 message' : `sent ${n} messages`,
			messages: [],
			usage: { key: 'k', messages: n, image_bytes: 0, totals: {} },
			quota: null,
		},
	};
}
