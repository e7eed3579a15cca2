#!/usr/bin/env python3
"""End to end: the built node in a real, headless n8n against `tiktok-dm serve --sandbox`.

Installs n8n (once, into target/n8n-e2e, as ../README.md describes), starts the
gateway with its in-process sandbox on loopback ports, imports the credentials and
the workflows in workflows.py into a fresh n8n data folder, runs each workflow with
`n8n execute`, and checks what n8n returned and what the sandbox received.
Exits non-zero on the first failed check. Run from anywhere:

    python3 integrations/n8n/e2e/run.py
"""

import json
import os
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


def main():
    install_n8n()
    built = PACKAGE / "dist" / "nodes" / "TikTokDm" / "TikTokDm.node.js"
    if not built.exists():
        subprocess.run(["npm", "run", "build"], cwd=PACKAGE, check=True)
    if not built.exists():
        log(f"the build left no {built.relative_to(PACKAGE)}")
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
        setup = workflows.Setup(
            gateway_url=ready["url"],
            bound_key=ready["api_key"],
            unbound_key=unbound["key"],
            quota_key=quota_key["key"],
            session="sandbox-session-alice",
            down_url=f"http://127.0.0.1:{free_port()}",
            conversation=ready["conversations"][0],
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
        if failures:
            log(f"{failures} of {len(workflows.CHECKS)} checks failed; files in {tmp}")
            return 1
        log(f"all {len(workflows.CHECKS)} checks passed")
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
