/**
 * The deliveries a trigger has started the workflow for, so that one the
 * gateway posts again (same `webhook-id`: a retry after its webhook timeout, or
 * a replay) does not start it a second time.
 *
 * Kept in this module, in the memory of the n8n process, not in the node's
 * static data: n8n 2.8.4 reads a production webhook's static data from its
 * database when the request comes in and writes it back only once the node's
 * `webhook()` has returned, so a retry that arrives while the first delivery is
 * still being handled (the very case: the gateway gave up waiting for it)
 * would not see it, and two deliveries handled at once would each write back
 * their own copy (and could write back a webhook secret that a re-activation
 * has replaced meanwhile).
 */

/** How many delivery ids are remembered per trigger node; the oldest is forgotten first. */
export const REMEMBERED_DELIVERIES = 1000;

/** How many trigger nodes (workflow and node) ids are remembered for; the least recently used is forgotten first. */
export const REMEMBERED_TRIGGERS = 1000;

const started = new Map<string, Set<string>>();

/** The key of a trigger node: its workflow's id and its node's id. */
export function triggerKey(workflowId: string | undefined, nodeId: string): string {
	return `${workflowId ?? ''}\u0000${nodeId}`;
}

/**
 * Remembers that `trigger` starts the workflow for delivery `id`; `false`
 * (and nothing changes) when it already did.
 */
export function firstDelivery(trigger: string, id: string): boolean {
	let ids = started.get(trigger);
	if (ids === undefined) {
		ids = new Set();
	} else {
		started.delete(trigger);
	}
	// (Re)inserted last: the map's order is the order of use.
	started.set(trigger, ids);
	if (started.size > REMEMBERED_TRIGGERS) {
		started.delete(started.keys().next().value as string);
	}
	if (ids.has(id)) {
		return false;
	}
	ids.add(id);
	if (ids.size > REMEMBERED_DELIVERIES) {
		ids.delete(ids.values().next().value as string);
	}
	return true;
}

/** Forgets delivery `id` of `trigger` (its handling failed: a retry must start the workflow). */
export function forgetDelivery(trigger: string, id: string): void {
	started.get(trigger)?.delete(id);
}
