import type { IDataObject } from 'n8n-workflow';

/** The event types the gateway's webhooks deliver (`POST /v1/webhooks` `events`). */
export const EVENT_TYPES = [
	'message.received',
	'message.read',
	'typing',
	'reaction',
	'message.deleted',
	'message.sent',
	'message.failed',
] as const;

/** A delivered event: the webhook body `{"type", "timestamp", "data"}`. */
export interface GatewayEvent {
	type: string;
	timestamp: string;
	data: IDataObject;
}

/** Which events start the workflow. */
export interface Filter {
	events: string[];
	/** Leave out `message.received` events with `direction: outbound` (the account's own sends). */
	inboundOnly: boolean;
	/** When not empty, only events of these accounts. */
	accounts: string[];
}

/** The body as an event; `null` when it is not JSON of that shape. */
export function parseEvent(raw: Buffer): GatewayEvent | null {
	let value: unknown;
	try {
		value = JSON.parse(raw.toString('utf8'));
	} catch {
		return null;
	}
	if (value === null || typeof value !== 'object' || Array.isArray(value)) {
		return null;
	}
	const { type, timestamp, data } = value as Record<string, unknown>;
	if (
		typeof type !== 'string' ||
		type === '' ||
		(timestamp !== undefined && typeof timestamp !== 'string') ||
		data === null ||
		typeof data !== 'object' ||
		Array.isArray(data)
	) {
		return null;
	}
	return { type, timestamp: timestamp ?? '', data: data as IDataObject };
}

/** The event's cursor from its `webhook-id` (`evt_<cursor>`); `null` for another form. */
export function cursorOf(webhookId: string): string | null {
	const match = /^evt_(\d{1,19})$/.exec(webhookId);
	return match ? match[1] : null;
}

/** Why `event` does not start the workflow, or `null` when it does. */
export function skipReason(event: GatewayEvent, filter: Filter): string | null {
	if (!filter.events.includes(event.type)) {
		return `${event.type} is not one of the trigger's events`;
	}
	if (
		filter.inboundOnly &&
		event.type === 'message.received' &&
		event.data.direction === 'outbound'
	) {
		return "an outbound message (the account's own send)";
	}
	if (filter.accounts.length > 0 && !filter.accounts.includes(String(event.data.account ?? ''))) {
		return 'an event of another account';
	}
	return null;
}

/**
 * The output item's JSON: the event's `type` and `timestamp`, its `event_id`
 * (the `webhook-id`, the same on every retry: de-duplicate on it) and
 * `cursor`, then the fields of `data` at the top level (`account`,
 * `conversation_id`, `text`, ...), so a reply can use
 * `{{ $json.conversation_id }}`. A data field with one of the first four names
 * is not copied (none has one today).
 */
export function flatten(event: GatewayEvent, webhookId: string): IDataObject {
	const json: IDataObject = {
		type: event.type,
		timestamp: event.timestamp,
		event_id: webhookId,
		cursor: cursorOf(webhookId),
	};
	for (const [name, value] of Object.entries(event.data)) {
		if (!(name in json)) {
			json[name] = value;
		}
	}
	return json;
}

/** Whether the workflow gets the image's bytes: a received image, and the option on. */
export function wantsImage(event: GatewayEvent, downloadImage: boolean): boolean {
	return downloadImage && event.type === 'message.received' && event.data.kind === 'image';
}

const EXTENSIONS: Record<string, string> = {
	'image/jpeg': 'jpg',
	'image/png': 'png',
	'image/gif': 'gif',
	'image/webp': 'webp',
};

/** A file name for a received image of `mimeType`. */
export function imageFileName(cursor: string, mimeType: string): string {
	return `tiktok-image-${cursor}.${EXTENSIONS[mimeType] ?? 'bin'}`;
}

/** The comma- or space-separated account names of the Accounts option. */
export function accountList(value: string): string[] {
	return value
		.split(/[\s,]+/)
		.map((a) => a.trim())
		.filter((a) => a !== '');
}
