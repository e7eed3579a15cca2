"""The end-to-end workflows, their credentials, and what each must produce.

Every workflow but one starts at a Manual Trigger (where `n8n execute` begins).
Checks get `execute(id)` (the run data n8n printed), `node_items(run, node)`,
`received()` (what the sandbox stored) and `before` (how many messages it held
before).

The one other, "TikTok DM Trigger -> TikTok DM send 'thanks'", runs in a
serving n8n (`n8n start`) with the workflow published; its checks
(TRIGGER_CHECKS) get a `Live` (run.py) that lets the sandbox's bob write and
reads what the sandbox and the gateway saw.
"""

import base64
import hashlib
import hmac
import json
import time
from dataclasses import dataclass

NODE_TYPE = "n8n-nodes-tiktok-dm.tikTokDm"
TRIGGER_TYPE = "n8n-nodes-tiktok-dm.tikTokDmTrigger"
TRIGGER_WORKFLOW = "e2eTrigger"
# The trigger node's webhookId: its production URL is <WEBHOOK_URL>webhook/<this>/webhook.
TRIGGER_WEBHOOK_ID = "6f1f4a52-0d3a-4c47-9a55-3b2f1e0d7c11"
# A complete 1x1 PNG.
PNG_B64 = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="

TEXT = 7
IMAGE = 1802  # private_image


@dataclass
class Setup:
    gateway_url: str
    bound_key: str
    unbound_key: str
    quota_key: str
    session: str
    down_url: str
    conversation: dict
    # The other side of `conversation` (the sandbox's bob).
    peer_uid: str


CREDENTIALS = {
    "bound": "TikTok DM (stored account)",
    "session": "TikTok DM (session)",
    "wrong": "TikTok DM (wrong key)",
    "quota": "TikTok DM (limit 1 a day)",
    "down": "TikTok DM (gateway down)",
}


def credentials(s):
    data = {
        "bound": {"gatewayUrl": s.gateway_url, "apiKey": s.bound_key, "sessionToken": ""},
        "session": {"gatewayUrl": s.gateway_url, "apiKey": s.unbound_key, "sessionToken": s.session},
        "wrong": {"gatewayUrl": s.gateway_url, "apiKey": "tdm_thisKeyWasNeverIssuedByTheGateway0000", "sessionToken": ""},
        "quota": {"gatewayUrl": s.gateway_url, "apiKey": s.quota_key, "sessionToken": ""},
        "down": {"gatewayUrl": s.down_url, "apiKey": s.bound_key, "sessionToken": ""},
    }
    return [
        {"id": f"cred{key.capitalize()}", "name": CREDENTIALS[key], "type": "tikTokDmApi", "data": value}
        for key, value in data.items()
    ]


def node(name, node_type, version, n, parameters):
    return {
        "id": f"00000000-0000-4000-8000-{n:012d}",
        "name": name,
        "type": node_type,
        "typeVersion": version,
        "position": [200 * n, 0],
        "parameters": parameters,
    }


def trigger():
    return node("Start", "n8n-nodes-base.manualTrigger", 1, 1, {})


def credential_ref(credential):
    return {"tikTokDmApi": {"id": f"cred{credential.capitalize()}", "name": CREDENTIALS[credential]}}


def dm(name, s, credential="bound", continue_on_fail=False, n=2, **params):
    parameters = {
        "resource": "message",
        "operation": "send",
        "conversationId": s.conversation["conversation_id"],
        "conversationShortId": str(s.conversation["conversation_short_id"]),
        **params,
    }
    dm_node = node(name, NODE_TYPE, 1, n, parameters)
    dm_node["credentials"] = credential_ref(credential)
    if continue_on_fail:
        dm_node["onError"] = "continueRegularOutput"
    return dm_node


def set_json(name, value, n):
    return node(name, "n8n-nodes-base.set", 3.4, n, {"mode": "raw", "jsonOutput": json.dumps(value), "options": {}})


def split_out(name, field, n):
    return node(name, "n8n-nodes-base.splitOut", 1, n, {"fieldToSplitOut": field, "options": {}})


def to_file(name, n):
    return node(
        name,
        "n8n-nodes-base.convertToFile",
        1.1,
        n,
        {
            "operation": "toBinary",
            "sourceProperty": "b64",
            "binaryPropertyName": "data",
            "options": {"fileName": "pixel.png", "mimeType": "image/png"},
        },
    )


def workflow(wf_id, chain=None, branches=None):
    """`chain`: nodes after Start, one after the other; `branches`: each straight from Start."""
    connections = {}
    if chain:
        names = ["Start"] + [n["name"] for n in chain]
        for a, b in zip(names, names[1:]):
            connections[a] = {"main": [[{"node": b, "type": "main", "index": 0}]]}
    if branches:
        connections["Start"] = {"main": [[{"node": n["name"], "type": "main", "index": 0} for n in branches]]}
    return {
        "id": wf_id,
        "name": f"tiktok-dm e2e {wf_id}",
        "active": False,
        "nodes": [trigger(), *(chain or []), *(branches or [])],
        "connections": connections,
        "settings": {"executionOrder": "v1"},
    }


def all_workflows(s):
    items = [set_json("Items", {"items": [{"text": f"item {i}"} for i in range(3)]}, 2), split_out("Split", "items", 3)]
    return [
        workflow("e2eText", chain=[dm("TikTok DM", s, text="hello from n8n")]),
        workflow(
            "e2eBinary",
            chain=[
                set_json("Image", {"b64": PNG_B64}, 2),
                to_file("To File", 3),
                dm("TikTok DM", s, n=4, imageInputType="binary", binaryPropertyName="data"),
            ],
        ),
        workflow("e2eBase64", chain=[dm("TikTok DM", s, imageInputType="base64", base64Image=PNG_B64)]),
        workflow(
            "e2eTextImage",
            chain=[
                dm(
                    "TikTok DM",
                    s,
                    text="a caption",
                    imageInputType="base64",
                    base64Image=f"data:image/png;base64,{PNG_B64}",
                )
            ],
        ),
        workflow("e2eItems", chain=[*items, dm("TikTok DM", s, n=4, text="={{ $json.text }}")]),
        workflow(
            "e2eInvalid",
            branches=[
                dm("Empty", s, continue_on_fail=True, n=2, text="  "),
                dm("No Conversation", s, continue_on_fail=True, n=3, text="x", conversationId="={{ '' }}"),
                dm("Bad Short ID", s, continue_on_fail=True, n=6, text="x", conversationShortId="72-00"),
                dm("Bad Base64", s, continue_on_fail=True, n=4, imageInputType="base64", base64Image="abc$def"),
                dm("No Binary", s, continue_on_fail=True, n=5, imageInputType="binary"),
            ],
        ),
        workflow("e2eWrongKey", chain=[dm("TikTok DM", s, credential="wrong", continue_on_fail=True, text="x")]),
        workflow(
            "e2eQuota",
            chain=[*items, dm("TikTok DM", s, credential="quota", continue_on_fail=True, n=4, text="={{ $json.text }}")],
        ),
        workflow("e2eDown", chain=[dm("TikTok DM", s, credential="down", continue_on_fail=True, text="x")]),
        workflow("e2eSession", chain=[dm("TikTok DM", s, credential="session", text="with a session")]),
        workflow(
            "e2eRerun",
            chain=[dm("TikTok DM", s, text="exactly once", options={"idempotencyKey": "e2e-rerun-1"})],
        ),
        workflow("e2eStops", chain=[dm("TikTok DM", s, text="")]),
        workflow(
            "e2eAddressing",
            branches=[
                dm("No Short ID", s, n=2, text="without a short id", conversationShortId="={{ '' }}"),
                dm("To User", s, n=3, sendTo="user", toUid=s.peer_uid, text="to a user id"),
                dm("Unknown User", s, n=4, continue_on_fail=True, sendTo="user", toUid="7000000000000000999", text="x"),
            ],
        ),
        workflow(
            "e2eToUserBinary",
            chain=[
                set_json("Image", {"b64": PNG_B64}, 2),
                to_file("To File", 3),
                dm("TikTok DM", s, n=4, sendTo="user", toUid=s.peer_uid, imageInputType="binary", text="a caption"),
            ],
        ),
        workflow(
            "e2eConversations",
            branches=[
                conversation_node("List", s, 2, operation="list"),
                conversation_node("Latest 3", s, 3, operation="getMessages", limit=3),
                conversation_node("All", s, 4, operation="getMessages", returnAll=True),
                conversation_node("Unknown Account", s, 5, operation="list", account="nobody", continue_on_fail=True),
            ],
        ),
        trigger_workflow(s),
    ]


def conversation_node(name, s, n, continue_on_fail=False, **params):
    parameters = {
        "resource": "conversation",
        "account": "sandbox",
        "conversationId": s.conversation["conversation_id"],
        **params,
    }
    read = node(name, NODE_TYPE, 1, n, parameters)
    read["credentials"] = credential_ref("bound")
    if continue_on_fail:
        read["onError"] = "continueRegularOutput"
    return read


def trigger_workflow(s):
    """TikTok DM Trigger (message.received, inbound only, images downloaded) -> a
    TikTok DM send of "thanks" into the same conversation, with the received
    image sent back (binary `data`) when there is one."""
    trigger_node = node(
        "TikTok DM Trigger",
        TRIGGER_TYPE,
        1,
        1,
        {"events": ["message.received"], "direction": "inbound", "downloadImage": True, "options": {}},
    )
    trigger_node["webhookId"] = TRIGGER_WEBHOOK_ID
    trigger_node["credentials"] = credential_ref("bound")
    reply = dm(
        "Reply",
        s,
        conversationId="={{ $json.conversation_id }}",
        conversationShortId="={{ $json.conversation_short_id }}",
        text="thanks",
        imageInputType="={{ $binary.data ? 'binary' : 'none' }}",
        binaryPropertyName="data",
    )
    return {
        "id": TRIGGER_WORKFLOW,
        "name": "TikTok DM Trigger -> TikTok DM send 'thanks'",
        "active": False,
        "nodes": [trigger_node, reply],
        "connections": {"TikTok DM Trigger": {"main": [[{"node": "Reply", "type": "main", "index": 0}]]}},
        "settings": {"executionOrder": "v1"},
    }


def new_messages(received, before):
    return received()[before:]


def text_only(execute, node_items, received, before, s):
    out = node_items(execute("e2eText"), "TikTok DM")
    assert len(out) == 1 and out[0]["success"] is True, out
    assert out[0]["message"] == "sent 1 message", out
    got = new_messages(received, before)
    assert [m["message_type"] for m in got] == [TEXT], got
    assert got[0]["content"]["text"] == "hello from n8n", got
    assert got[0]["client_message_id"] == out[0]["messages"][0]["client_message_id"]
    assert out[0]["usage"]["messages"] == 1 and "totals" in out[0]["usage"], out


def binary_image(execute, node_items, received, before, s):
    out = node_items(execute("e2eBinary"), "TikTok DM")
    assert out[0]["success"] is True, out
    assert [m["kind"] for m in out[0]["messages"]] == ["image"], out
    assert out[0]["usage"]["image_bytes"] == 70, out
    assert [m["message_type"] for m in new_messages(received, before)] == [IMAGE]


def base64_image(execute, node_items, received, before, s):
    out = node_items(execute("e2eBase64"), "TikTok DM")
    assert out[0]["success"] is True and out[0]["usage"]["image_bytes"] == 70, out
    assert [m["message_type"] for m in new_messages(received, before)] == [IMAGE]


def text_and_image(execute, node_items, received, before, s):
    out = node_items(execute("e2eTextImage"), "TikTok DM")
    assert [m["kind"] for m in out[0]["messages"]] == ["image", "text"], out
    got = new_messages(received, before)
    assert [m["message_type"] for m in got] == [IMAGE, TEXT], got
    assert got[1]["content"]["text"] == "a caption"


def several_items(execute, node_items, received, before, s):
    out = node_items(execute("e2eItems"), "TikTok DM")
    assert [o["success"] for o in out] == [True, True, True], out
    got = new_messages(received, before)
    assert sorted(m["content"]["text"] for m in got) == ["item 0", "item 1", "item 2"], got


def validation_errors(execute, node_items, received, before, s):
    run = execute("e2eInvalid")
    expected = {
        "Empty": "Either text or an image must be provided",
        "No Conversation": "Conversation ID is required",
        "Bad Short ID": "Conversation Short ID must be a number",
        "Bad Base64": "not valid base64 (unexpected character at position 3)",
        "No Binary": "data",
    }
    for node, text in expected.items():
        out = node_items(run, node)
        assert len(out) == 1 and out[0]["success"] is False, (node, out)
        assert text in out[0]["message"], (node, out)
    assert new_messages(received, before) == [], "nothing was sent"


def wrong_key(execute, node_items, received, before, s):
    out = node_items(execute("e2eWrongKey"), "TikTok DM")
    assert out[0]["success"] is False, out
    assert out[0]["message"] == "the API key is not valid", out
    assert out[0]["error"]["description"] == "Gateway error code: api_key_invalid", out
    assert new_messages(received, before) == []


def quota_rejection(execute, node_items, received, before, s):
    out = node_items(execute("e2eQuota"), "TikTok DM")
    assert [o["success"] for o in out] == [True, False, False], out
    assert "quota" in out[1]["message"], out
    assert "quota_exceeded" in out[1]["error"]["description"], out
    assert len(new_messages(received, before)) == 1


def gateway_down(execute, node_items, received, before, s):
    out = node_items(execute("e2eDown"), "TikTok DM")
    assert out[0]["success"] is False, out
    assert "refused the connection" in out[0]["message"], out
    assert new_messages(received, before) == []


def session_credential(execute, node_items, received, before, s):
    out = node_items(execute("e2eSession"), "TikTok DM")
    assert out[0]["success"] is True, out
    assert new_messages(received, before)[0]["content"]["text"] == "with a session"


def rerun_sends_once(execute, node_items, received, before, s):
    first = node_items(execute("e2eRerun"), "TikTok DM")
    again = node_items(execute("e2eRerun"), "TikTok DM")
    assert first[0]["success"] is True and again[0]["success"] is True, (first, again)
    assert first[0]["id"] == again[0]["id"], "the second run is answered with the first request"
    assert len(new_messages(received, before)) == 1


def addressing(execute, node_items, received, before, s):
    run = execute("e2eAddressing")
    for node in ("No Short ID", "To User"):
        out = node_items(run, node)
        assert len(out) == 1 and out[0]["success"] is True, (node, out)
    unknown = node_items(run, "Unknown User")
    assert unknown[0]["success"] is False, unknown
    assert "conversation_not_found" in unknown[0]["error"]["description"], unknown
    got = {m["content"]["text"]: m for m in new_messages(received, before)}
    assert sorted(got) == ["to a user id", "without a short id"], got
    for m in got.values():
        # Both into the conversation with bob, with its short id found by the gateway.
        assert m["conversation_id"] == s.conversation["conversation_id"], m
        assert m["conversation_short_id"] == s.conversation["conversation_short_id"], m


def to_user_multipart(execute, node_items, received, before, s):
    out = node_items(execute("e2eToUserBinary"), "TikTok DM")
    assert out[0]["success"] is True and [m["kind"] for m in out[0]["messages"]] == ["image", "text"], out
    got = new_messages(received, before)
    assert [m["message_type"] for m in got] == [IMAGE, TEXT], got
    assert {m["conversation_id"] for m in got} == {s.conversation["conversation_id"]}, got


def conversations(execute, node_items, received, before, s):
    run = execute("e2eConversations")
    listed = node_items(run, "List")
    ours = [c for c in listed if c["conversation_id"] == s.conversation["conversation_id"]]
    assert len(ours) == 1 and ours[0]["conversation_short_id"] == s.conversation["conversation_short_id"], listed
    latest = node_items(run, "Latest 3")
    assert len(latest) == 3, latest
    everything = node_items(run, "All")
    sent = [m for m in received() if m["conversation_id"] == s.conversation["conversation_id"]]
    assert len(everything) == len(sent), (len(everything), len(sent))
    assert [m["server_message_id"] for m in latest] == [m["server_message_id"] for m in everything[:3]]
    # Newest first: the history read after every send holds the last one first.
    assert everything[0]["server_message_id"] == sent[-1]["server_message_id"], (everything[0], sent[-1])
    unknown = node_items(run, "Unknown Account")
    assert unknown[0]["success"] is False and "account_not_found" in unknown[0]["error"]["description"], unknown
    assert new_messages(received, before) == []


def stops_without_continue_on_fail(execute, node_items, received, before, s):
    output = execute("e2eStops", expect_exit=1)
    assert "Either text or an image must be provided" in output, output[-2000:]


CHECKS = [
    text_only,
    binary_image,
    base64_image,
    text_and_image,
    several_items,
    validation_errors,
    wrong_key,
    quota_rejection,
    gateway_down,
    session_credential,
    rerun_sends_once,
    addressing,
    to_user_multipart,
    conversations,
    stops_without_continue_on_fail,
]


# The trigger workflow, in a serving n8n.


def replies(messages):
    """What the account sent (through the gateway), not what bob wrote to it."""
    return [m for m in messages if m["transport"] != "inbound"]


def settle(live, before, deliveries, what):
    """Waits until `deliveries` more webhook deliveries were answered 2xx by n8n
    (each message bob wrote, and the echo of each reply, which the trigger must
    pass over), then a little longer: a reply to an echo would come within it."""
    live.wait_for(lambda: live.delivered() >= before + deliveries, what)
    time.sleep(2)


def trigger_replies_once(live, s):
    conversation = s.conversation["conversation_id"]
    before, delivered = len(live.received()), live.delivered()
    status, answer = live.inbound({"from": "bob", "conversation_id": conversation, "text": "hello"})
    assert status == 201, answer
    live.wait_for(lambda: replies(live.received()[before:]), "the reply 'thanks'")
    settle(live, delivered, 2, "the message and the echo of the reply delivered to n8n")
    got = replies(live.received()[before:])
    assert [(m["message_type"], m["content"]["text"]) for m in got] == [(TEXT, "thanks")], got
    assert got[0]["conversation_id"] == conversation, got
    assert got[0]["conversation_short_id"] == s.conversation["conversation_short_id"], got


def trigger_downloads_image(live, s):
    conversation = s.conversation["conversation_id"]
    before, delivered = len(live.received()), live.delivered()
    status, answer = live.inbound({"from": "bob", "conversation_id": conversation, "image": PNG_B64})
    assert status == 201, answer
    live.wait_for(lambda: len(replies(live.received()[before:])) >= 2, "the image sent back and 'thanks'")
    settle(live, delivered, 3, "the image and the echoes of both replies delivered to n8n")
    got = replies(live.received()[before:])
    assert [m["message_type"] for m in got] == [IMAGE, TEXT], got
    sent_back = got[0]["image"]
    # The trigger put the received image's bytes into binary `data`, and the
    # reply sent exactly those bytes back.
    assert sent_back["size"] == 70, got
    assert sent_back["sha256"] == hashlib.sha256(base64.b64decode(PNG_B64)).hexdigest(), got
    assert got[1]["content"]["text"] == "thanks", got


def trigger_refuses_bad_signature(live, s):
    before = len(live.received())
    data = {
        **{"account": "sandbox", "conversation_id": s.conversation["conversation_id"]},
        **{"conversation_short_id": s.conversation["conversation_short_id"], "direction": "inbound"},
        **{"kind": "text", "text": "forged"},
    }
    body = json.dumps({"type": "message.received", "timestamp": "2026-12-03T10:00:00.000Z", "data": data}).encode()
    now = str(int(time.time()))
    forged = base64.b64encode(hmac.new(b"not the secret", b"evt_999999." + now.encode() + b"." + body, "sha256").digest())
    headers = {"webhook-id": "evt_999999", "webhook-timestamp": now, "webhook-signature": "v1," + forged.decode()}
    status = live.post_to_n8n(body, headers)
    assert status == 401, status
    unsigned = live.post_to_n8n(body, {})
    assert unsigned == 401, unsigned
    # A body that does not parse as the JSON it claims to be: n8n answers it
    # before the node runs.
    malformed = live.post_to_n8n(b'{"type": "message.rec', headers)
    assert malformed == 422, malformed
    time.sleep(2)
    assert replies(live.received()[before:]) == [], "a forged event started the workflow"


def trigger_ignores_a_delivery_posted_again(live, s):
    """An event the gateway posts again with the same webhook-id (here a replay;
    a retry after its webhook timeout comes the same way) is answered without
    starting the workflow again: bob's "hello" gets one "thanks", not two."""
    since = live.latest_cursor()
    trigger_replies_once(live, s)
    before, delivered = len(live.received()), live.delivered()
    ours = [w for w in live.webhooks() if w["url"] == live.webhook_url]
    assert len(ours) == 1, ours
    # "hello" and the echo of "thanks".
    queued = live.replay(ours[0]["id"], since)
    assert queued == 2, queued
    settle(live, delivered, queued, "the replayed events delivered to n8n")
    assert replies(live.received()[before:]) == [], "an event posted again started the workflow again"


def trigger_survives_restart(live, s):
    """n8n started again with the workflow still published finds the trigger's
    webhook (checkExists) instead of registering another, and still verifies
    deliveries with the secret it kept."""
    ours = [w for w in live.webhooks() if w["url"] == live.webhook_url]
    assert len(ours) == 1, ours
    live.restart()
    again = [w for w in live.webhooks() if w["url"] == live.webhook_url]
    assert [w["id"] for w in again] == [ours[0]["id"]], (ours, again)
    trigger_replies_once(live, s)


TRIGGER_CHECKS = [
    trigger_replies_once,
    trigger_downloads_image,
    trigger_refuses_bad_signature,
    trigger_ignores_a_delivery_posted_again,
    trigger_survives_restart,
]
