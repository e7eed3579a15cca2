import type { IDataObject, IHttpRequestOptions } from 'n8n-workflow';

import { InputProblem } from './request';

/** The most messages the gateway gives in one page. */
export const MAX_PAGE = 100;

/** The gateway's address without a trailing slash. */
export function base(gatewayUrl: string): string {
	return gatewayUrl.replace(/\/+$/, '');
}

const common = {
	method: 'GET' as const,
	json: true,
	returnFullResponse: true,
	ignoreHttpStatusErrors: true,
};

/** `GET /v1/conversations?account=NAME`: the account's conversations. */
export function listConversationsRequest(gatewayUrl: string, account: string): IHttpRequestOptions {
	if (account.trim() === '') {
		throw new InputProblem('Account is required');
	}
	return {
		...common,
		url: `${base(gatewayUrl)}/v1/conversations`,
		qs: { account: account.trim() },
	};
}

/** What one page of a conversation's history is asked with. */
export interface PageQuery {
	account: string;
	conversationId: string;
	conversationShortId: string;
	/** A previous page's `next_cursor`: older messages than it. Empty: the newest page. */
	before: string;
	limit: number;
}

/** Checks what every page of a history read needs, before any request. */
export function checkPageQuery(q: PageQuery): void {
	if (q.account.trim() === '') {
		throw new InputProblem('Account is required');
	}
	if (q.conversationId.trim() === '') {
		throw new InputProblem('Conversation ID is required');
	}
	if (q.conversationShortId.trim() !== '' && !/^\d+$/.test(q.conversationShortId.trim())) {
		throw new InputProblem('Conversation Short ID must be a number');
	}
	if (q.before.trim() !== '' && !/^\d+$/.test(q.before.trim())) {
		throw new InputProblem('Before must be a cursor (a number) from a previous page');
	}
	if (!Number.isInteger(q.limit) || q.limit < 1 || q.limit > MAX_PAGE) {
		throw new InputProblem(`The page size must be a whole number from 1 to ${MAX_PAGE}`);
	}
}

/**
 * `GET /v1/conversations/{conversation_id}/messages?account=&limit=&before=&conversation_short_id=`:
 * one page of the history, newest first.
 */
export function messagesPageRequest(gatewayUrl: string, q: PageQuery): IHttpRequestOptions {
	checkPageQuery(q);
	const qs: IDataObject = { account: q.account.trim(), limit: q.limit };
	if (q.before.trim() !== '') {
		qs.before = q.before.trim();
	}
	if (q.conversationShortId.trim() !== '') {
		qs.conversation_short_id = q.conversationShortId.trim();
	}
	const id = encodeURIComponent(q.conversationId.trim());
	return { ...common, url: `${base(gatewayUrl)}/v1/conversations/${id}/messages`, qs };
}

/** A page as the gateway answers it. */
export interface Page {
	messages: IDataObject[];
	nextCursor: string | null;
}

/** Reads a page's body; a body of another shape reads as an empty last page. */
export function readPage(body: IDataObject): Page {
	const messages = Array.isArray(body.messages) ? (body.messages as IDataObject[]) : [];
	const next = body.next_cursor;
	return {
		messages,
		nextCursor: typeof next === 'string' && next !== '' ? next : null,
	};
}
