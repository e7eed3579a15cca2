#!/usr/bin/env python3
"""End to end: the built nodes in a real, headless n8n against `tiktok-dm serve --sandbox`.

Installs n8n (once, into target/n8n-e2e, as ../README.md describes), starts the
gateway with its in-process sandbox on loopback ports, imports the credentials and
the workflows in workflows.py into a fresh n8n data folder, runs each workflow with
`n8n execute`, and checks what n8n returned and what the sandbox received. Then it
publishes the trigger workflow, serves it with `n8n start` on a loopback port
(the gateway's `serve --sandbox` allows webhooks to loopback), has the sandbox's
bob write to the account, and checks the replies the sandbox received.
Exits non-zero if a check failed. Run from anywhere:

    python3 integrations/n8n/e2e/run.py
"""

import json
import os
import signal
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import workflows  # noqa: E402

HERE = Path(__file__).resolve().parent
PACKAGE = HERE.parent
ROOT = PACKAGE.parent.parent
N8N_VERSION = "2.8.4"
N8N_DIR = ROOT / "target" / "n8n-e2e" / f"n8n-{N8N_VERSION}"
N8N = N8N_DIR / "node_modules" / ".bin" / "n8n"


def log(message):
    print(f"[e2e] {message}", flush=True)


def install_n8n():
    if N8N.exists():
        return
    log(f"installing n8n {N8N_VERSION} into {N8N_DIR} (a few minutes, once)")
    N8N_DIR.mkdir(parents=True, exist_ok=True)
    # xlsx: n8n-nodes-base names a tarball URL this machine cannot reach; the
    # registry copy is the same version.
    (N8N_DIR / "package.json").write_text(
        json.dumps({"name": "n8n-e2e", "version": "0.0.0", "private": True, "overrides": {"xlsx": "0.18.5"}})
    )
    npm = ["npm", "--no-audit", "--no-fund"]
    subprocess.run(npm + ["install", "--ignore-scripts", f"n8n@{N8N_VERSION}"], cwd=N8N_DIR, check=True)
    # npm 11 skips sqlite3's install script; build it from source against local headers.
    subprocess.run(["npm", "rebuild", "sqlite3"], cwd=N8N_DIR, check=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http(method, url, body=None, headers=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


def clean_env():
    return {k: v for k, v in os.environ.items() if not k.startswith("TIKTOK_DM_")}


def start_gateway(tmp):
    subprocess.run(["cargo", "build", "--quiet", "--locked", "-p", "tiktok-dm-cli"], cwd=ROOT, check=True)
    binary = ROOT / "target" / "debug" / "tiktok-dm"
    proc = subprocess.Popen(
        [str(binary), "serve", "--sandbox", "--listen", "127.0.0.1:0", "--database", str(tmp / "gateway.sqlite")],
        stdout=subprocess.PIPE,
        stderr=open(tmp / "gateway.log", "w"),
        env=clean_env(),
        text=True,
    )
    ready = json.loads(proc.stdout.readline())
    log(f"gateway at {ready['url']}, sandbox at {ready['sandbox_url']}")
    return proc, ready


def n8n_env(tmp):
    env = clean_env()
    env.update(
        {
            "N8N_USER_FOLDER": str(tmp / "n8n-home"),
            "N8N_ENCRYPTION_KEY": "tiktok-dm-e2e-encryption-key-0123456789",
            "N8N_DIAGNOSTICS_ENABLED": "false",
            "N8N_VERSION_NOTIFICATIONS_ENABLED": "false",
            "N8N_TEMPLATES_ENABLED": "false",
            "N8N_RUNNERS_BROKER_PORT": str(free_port()),
            "N8N_LOG_LEVEL": "info",
            "PATH": f"{N8N.parent}:{os.environ.get('PATH', '')}",
        }
    )
    return env


def install_node(tmp):
    target = tmp / "n8n-home" / ".n8n" / "nodes" / "node_modules" / "n8n-nodes-tiktok-dm"
    target.mkdir(parents=True)
    shutil.copy(PACKAGE / "package.json", target / "package.json")
    shutil.copytree(PACKAGE / "dist", target / "dist")


def n8n(env, *args, output=None):
    # Never pipe `execute` into something that may close early: write to a file.
    with open(output, "w") if output else open(os.devnull, "w") as out:
        done = subprocess.run([str(N8N), *args], env=env, stdout=out, stderr=subprocess.STDOUT, timeout=300)
    return done.returncode


def run_data(path):
    """The JSON n8n prints after its log lines: from the first line that is `{`."""
    text = Path(path).read_text()
    for i, line in enumerate(text.splitlines(keepends=True)):
        if line.startswith("{"):
            start = sum(len(l) for l in text.splitlines(keepends=True)[:i])
            value, _ = json.JSONDecoder().raw_decode(text[start:])
            return value
    raise AssertionError(f"no JSON in the output of n8n:\n{text[-3000:]}")


def node_items(result, node):
    runs = result["data"]["resultData"]["runData"][node]
    return [item["json"] for item in runs[-1]["data"]["main"][0]] if runs[-1].get("data") else []


class Live:
    """The trigger workflow served by `n8n start`, and what its checks need."""

    def __init__(self, ready, webhook_url, auth):
        self.ready = ready
        self.webhook_url = webhook_url
        self.auth = auth
        # Set by main: stops n8n and starts it again on the same port.
        self.restart = None

    def webhooks(self):
        """The gateway's webhooks of the trigger's API key."""
        status, answer = http("GET", f"{self.ready['url']}/v1/webhooks", headers=self.auth)
        assert status == 200, answer
        return answer["webhooks"]

    def received(self):
        status, messages = http("GET", f"{self.ready['sandbox_url']}/_sandbox/messages")
        assert status == 200
        return messages

    def inbound(self, body):
        """`POST /_sandbox/inbound`: a seeded user writes to the stored account."""
        return http("POST", f"{self.ready['sandbox_url']}/_sandbox/inbound", body)

    def delivered(self):
        """Webhook deliveries the gateway got a 2xx answer to (its /metrics)."""
        with urllib.request.urlopen(f"{self.ready['url']}/metrics", timeout=30) as resp:
            text = resp.read().decode()
        return sum(
            float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith("tiktok_dm_webhook_attempts") and 'outcome="delivered"' in line
        )

    def latest_cursor(self):
        """The cursor of the newest event in the gateway's log (for the trigger's key)."""
        after = 0
        while True:
            status, page = http("GET", f"{self.ready['url']}/v1/events?after={after}&limit=100", headers=self.auth)
            assert status == 200, page
            if not page["events"]:
                return after
            after = page["next_cursor"]

    def replay(self, webhook_id, since):
        """`POST /v1/webhooks/{id}/replay`: the gateway posts the events after
        `since` again, with the webhook-ids they had; answers how many."""
        status, answer = http("POST", f"{self.ready['url']}/v1/webhooks/{webhook_id}/replay", {"since": since}, self.auth)
        assert status == 202, answer
        return answer["queued"]

    def post_to_n8n(self, body, headers):
        req = urllib.request.Request(self.webhook_url, data=body, method="POST", headers=headers)
        req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                return resp.status
        except urllib.error.HTTPError as e:
            return e.code

    @staticmethod
    def wait_for(condition, what, timeout=60):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if condition():
                return
            time.sleep(0.2)
        raise AssertionError(f"no {what} within {timeout} s")


def serve_trigger(env, tmp, ready, setup, port):
    """Starts `n8n start` on `port` and waits until the trigger has registered
    its webhook with the gateway; returns the process (in a session of its own:
    its task runner goes with it) and a `Live`."""
    env = dict(env)
    env.update(
        {
            "N8N_PORT": str(port),
            "N8N_LISTEN_ADDRESS": "127.0.0.1",
            "WEBHOOK_URL": f"http://127.0.0.1:{port}/",
            "N8N_PERSONALIZATION_ENABLED": "false",
            "N8N_RUNNERS_BROKER_PORT": str(free_port()),
        }
    )
    proc = subprocess.Popen(
        [str(N8N), "start"],
        env=env,
        stdout=open(tmp / "n8n-start.log", "a"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    webhook_url = f"http://127.0.0.1:{port}/webhook/{workflows.TRIGGER_WEBHOOK_ID}/webhook"
    auth = {"Authorization": f"Bearer {setup.bound_key}"}

    live = Live(ready, webhook_url, auth)

    def registered():
        if proc.poll() is not None:
            raise AssertionError(f"n8n start exited {proc.returncode}:\n{(tmp / 'n8n-start.log').read_text()[-3000:]}")
        # Registered with the gateway (the first time), and served: an unsigned
        # POST is the trigger's 401 (n8n answers 404 before the workflow is active).
        if not any(w["url"] == webhook_url for w in live.webhooks()):
            return False
        try:
            return live.post_to_n8n(b"{}", {}) == 401
        except OSError:
            return False

    started = time.monotonic()
    try:
        Live.wait_for(registered, "trigger registered and served", timeout=180)
    except AssertionError:
        stop(proc)
        raise
    log(f"n8n serves the trigger at {webhook_url} (after {time.monotonic() - started:.0f} s)")
    return proc, live


def stop(proc):
    """Stops `n8n start` and its children (its own process group)."""
    if proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


def main():
    install_n8n()
    built = [PACKAGE / "dist" / "nodes" / name / f"{name}.node.js" for name in ("TikTokDm", "TikTokDmTrigger")]
    if not all(b.exists() for b in built):
        subprocess.run(["npm", "run", "build"], cwd=PACKAGE, check=True)
    for b in built:
        if not b.exists():
            log(f"the build left no {b.relative_to(PACKAGE)}")
            return 1
    tmp = Path(tempfile.mkdtemp(prefix="tiktok-dm-n8n-e2e-"))
    gateway, ready = start_gateway(tmp)
    try:
        admin = {"Authorization": f"Bearer {ready['admin_key']}"}
        status, quota_key = http(
            "POST", f"{ready['url']}/v1/admin/keys", {"name": "n8n-quota", "daily_limit": 1, "account": "sandbox"}, admin
        )
        assert status == 201, quota_key
        status, unbound = http("POST", f"{ready['url']}/v1/admin/keys", {"name": "n8n-unbound"}, admin)
        assert status == 201, unbound
        status, seed = http("GET", f"{ready['sandbox_url']}/_sandbox/seed")
        assert status == 200, seed
        bob = next(a for a in seed["accounts"] if a["name"] == "bob")
        setup = workflows.Setup(
            gateway_url=ready["url"],
            bound_key=ready["api_key"],
            unbound_key=unbound["key"],
            quota_key=quota_key["key"],
            session="sandbox-session-alice",
            down_url=f"http://127.0.0.1:{free_port()}",
            conversation=ready["conversations"][0],
            peer_uid=str(bob["uid"]),
        )
        env = n8n_env(tmp)
        install_node(tmp)
        (tmp / "credentials.json").write_text(json.dumps(workflows.credentials(setup)))
        wf_dir = tmp / "workflows"
        wf_dir.mkdir()
        for wf in workflows.all_workflows(setup):
            (wf_dir / f"{wf['id']}.json").write_text(json.dumps(wf))
        assert n8n(env, "import:credentials", f"--input={tmp / 'credentials.json'}", output=tmp / "import-creds.out") == 0
        assert n8n(env, "import:workflow", "--separate", f"--input={wf_dir}", output=tmp / "import-wf.out") == 0

        def execute(workflow_id, expect_exit=0):
            out = tmp / f"{workflow_id}.{time.monotonic_ns()}.out"
            code = n8n(env, "execute", f"--id={workflow_id}", "--rawOutput", output=out)
            if code != expect_exit:
                raise AssertionError(f"{workflow_id}: n8n exited {code}\n{out.read_text()[-3000:]}")
            return run_data(out) if expect_exit == 0 else out.read_text()

        def received():
            status, messages = http("GET", f"{ready['sandbox_url']}/_sandbox/messages")
            assert status == 200
            return messages

        failures = 0
        for check in workflows.CHECKS:
            before = len(received())
            try:
                check(execute, node_items, received, before, setup)
                log(f"ok   {check.__name__}")
            except AssertionError as e:
                failures += 1
                log(f"FAIL {check.__name__}: {e}")
        total = len(workflows.CHECKS) + len(workflows.TRIGGER_CHECKS)
        assert n8n(env, "publish:workflow", f"--id={workflows.TRIGGER_WORKFLOW}", output=tmp / "publish.out") == 0
        port = free_port()
        server = []
        try:
            proc, live = serve_trigger(env, tmp, ready, setup, port)
            server.append(proc)

            def restart():
                stop(server.pop())
                proc, _ = serve_trigger(env, tmp, ready, setup, port)
                server.append(proc)

            live.restart = restart
            for check in workflows.TRIGGER_CHECKS:
                try:
                    check(live, setup)
                    log(f"ok   {check.__name__}")
                except AssertionError as e:
                    failures += 1
                    log(f"FAIL {check.__name__}: {e}")
        except AssertionError as e:
            failures += 1
            log(f"FAIL serving the trigger workflow: {e}")
        finally:
            for proc in server:
                stop(proc)
        if failures:
            log(f"{failures} of {total} checks failed; files in {tmp}")
            return 1
        log(f"all {total} checks passed")
        if os.environ.get("E2E_KEEP"):
            log(f"files kept in {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
        return 0
    finally:
        gateway.terminate()
        gateway.wait(timeout=10)


if __name__ == "__main__":
    sys.exit(main())
