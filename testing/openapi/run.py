#!/usr/bin/env python3
"""The gateway against its own OpenAPI document, with Schemathesis.

Starts `tiktok-dm serve --sandbox` on loopback ports, on a SQLite file and then
on PostgreSQL (a schema of its own on the server the tests use:
TDM_TEST_POSTGRES_URL, by default the local `test` database), then lets Schemathesis
(pinned below, installed once into target/openapi-check) generate requests from
/openapi.json: valid ones, invalid ones, requests without or with a wrong key,
and chains of requests along the document's links. It checks every answer:
no 5xx that the document does not list, status codes, content types, headers
and bodies as documented, invalid requests refused, and keys enforced. Then it
checks the gateway's log: no panic, neither key, no webhook secret.

Without a PostgreSQL server (or without `psql`) the PostgreSQL run is skipped,
and says so; with TDM_REQUIRE_POSTGRES=1 (as `.ci/run` sets) that is a failure
instead.

One check is left out: `positive_data_acceptance` expects every request that
fits the schema to succeed, but a schema cannot say "a real PNG" or "a cookie
with a sessionid", so the gateway rightly refuses some of them. The `events`
operation is left out too: its long poll may hold each request for a minute;
the gateway's tests check its answers against the document.

Exits non-zero on any failure. Run from anywhere:

    python3 testing/openapi/run.py
"""

import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCHEMATHESIS = "schemathesis==4.32.5"
VENV = ROOT / "target" / "openapi-check" / "venv"
ST = VENV / "bin" / "schemathesis"
SEED = "20261126"
EXAMPLES = "100"


def log(message):
    print(f"[openapi] {message}", flush=True)


def install():
    marker = VENV / f".{SCHEMATHESIS}"
    if marker.exists():
        return
    log(f"installing {SCHEMATHESIS} into {VENV} (once)")
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(VENV)], check=True)
    pip = [str(VENV / "bin" / "pip"), "install", "--quiet", "--disable-pip-version-check"]
    subprocess.run(pip + [SCHEMATHESIS], check=True)
    marker.touch()


POSTGRES = os.environ.get("TDM_TEST_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/test")
# Any 32 bytes, base64: PostgreSQL needs the master key given.
MASTER_KEY = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="


# A server that cannot be reached fails the run instead of skipping its PostgreSQL part.
REQUIRE_POSTGRES = os.environ.get("TDM_REQUIRE_POSTGRES", "") not in ("", "0")


def redacted(text):
    """`text` (a database URL, or a message that may quote one) without a password."""
    # Up to the last '@': a password with a stray '@' is hidden whole.
    text = re.sub(r"(\b[a-z]+://[^:@/?\s]*:)\S*@", r"\1***@", text)
    return re.sub(r"(\bpassword\s*=\s*)('(?:[^'\\]|\\.)*'|[^&\s]*)", r"\1***", text)


def postgres_unreachable():
    """Why the PostgreSQL server cannot be used here, or None when it can."""
    command = ["psql", "-X", "-q", "-tA", POSTGRES, "-c", "SELECT 1"]
    try:
        result = subprocess.run(
            command,
            env={**os.environ, "PGCONNECT_TIMEOUT": "3"},
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=15,
        )
    except FileNotFoundError:
        return "psql is not installed"
    except subprocess.TimeoutExpired:
        return "no answer within 15 s"
    if result.returncode != 0:
        return redacted(" ".join(result.stderr.split())) or f"psql exited with status {result.returncode}"
    return None


def psql(sql):
    subprocess.run(["psql", "-q", "-v", "ON_ERROR_STOP=1", POSTGRES, "-c", sql], check=True, stdout=subprocess.DEVNULL)


def start_gateway(workdir, database=None):
    env = {k: v for k, v in os.environ.items() if not k.startswith("TIKTOK_DM_")}
    env["TIKTOK_DM_LOG"] = "debug"
    command = [str(ROOT / "target" / "debug" / "tiktok-dm"), "serve", "--sandbox", "--listen", "127.0.0.1:0"]
    if database:
        command += ["--database", database]
        env["TIKTOK_DM_MASTER_KEY"] = MASTER_KEY
    stderr = open(workdir / "gateway.log", "w")
    proc = subprocess.Popen(
        command,
        cwd=workdir,
        env=env,
        stdout=subprocess.PIPE,
        stderr=stderr,
        text=True,
    )
    line = proc.stdout.readline()
    if not line:
        proc.wait(timeout=10)
        sys.exit(f"[openapi] the gateway did not start:\n{(workdir / 'gateway.log').read_text()}")
    return proc, json.loads(line)


def schemathesis(url, key, tags, report):
    command = [str(ST), "run", f"{url}/openapi.json", "--header", f"Authorization: Bearer {key}"]
    for tag in tags:
        command += ["--include-tag", tag]
    command += [
        "--checks", "all",
        "--exclude-checks", "positive_data_acceptance",
        "--max-examples", EXAMPLES,
        "--seed", SEED,
        "--workers", "1",
        "--report", "junit",
        "--report-junit-path", str(report),
    ]
    log(f"schemathesis on the {', '.join(tags)} operations")
    # Its cache (.schemathesis/) goes beside the reports, not into the checkout.
    return subprocess.run(command, cwd=report.parent, env={**os.environ, "NO_COLOR": "1"}).returncode


def check_backend(name, database=None):
    """Both Schemathesis runs against one gateway; returns what failed."""
    with tempfile.TemporaryDirectory(prefix="tdm-openapi-") as tmp:
        workdir = Path(tmp)
        proc, ready = start_gateway(workdir, database)
        failed = []
        try:
            for tags, key in ((["messages", "operations", "webhooks", "conversations"], ready["api_key"]), (["admin"], ready["admin_key"])):
                report = ROOT / "target" / "openapi-check" / f"{name}-{tags[0]}.xml"
                if schemathesis(ready["url"], key, tags, report) != 0:
                    failed.append(f"{name}: {tags[0]}")
        finally:
            # A gateway that is gone before it is told to stop has crashed.
            if proc.poll() is not None:
                failed.append(f"{name}: the gateway exited by itself with status {proc.returncode}")
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
        logged = (workdir / "gateway.log").read_text()
        if "panicked" in logged:
            failed.append(f"{name}: a panic in the gateway's log")
        if "whsec_" in logged:
            failed.append(f"{name}: a webhook secret in the gateway's log")
        for secret in ("api_key", "admin_key"):
            if ready[secret] in logged:
                failed.append(f"{name}: the {secret} in the gateway's log")
        if failed:
            tail = "\n".join(logged.splitlines()[-40:])
            log(f"the gateway's log on {name} ends:\n{tail}")
        else:
            log(f"{name}: passed ({len(logged.splitlines())} log lines checked)")
        return failed


def main():
    unreachable = postgres_unreachable()
    if unreachable and REQUIRE_POSTGRES:
        sys.exit(
            f"[openapi] the PostgreSQL run needs a server at {redacted(POSTGRES)} "
            f"(TDM_TEST_POSTGRES_URL): {unreachable}; "
            "TDM_REQUIRE_POSTGRES=1 is set, so this fails instead of skipping"
        )
    install()
    subprocess.run(["cargo", "build", "--quiet", "--locked", "-p", "tiktok-dm-cli"], cwd=ROOT, check=True)
    failed = check_backend("sqlite")
    if unreachable:
        log(
            f"skipped: the PostgreSQL run (no server at {redacted(POSTGRES)}: {unreachable}); "
            "to run it start PostgreSQL or set TDM_TEST_POSTGRES_URL, "
            "and set TDM_REQUIRE_POSTGRES=1 to make its absence a failure"
        )
    else:
        schema = f"tdm_openapi_{os.getpid()}"
        psql(f"CREATE SCHEMA {schema}")
        try:
            joiner = "&" if "?" in POSTGRES else "?"
            failed += check_backend("postgres", f"{POSTGRES}{joiner}options=-csearch_path%3D{schema}")
        finally:
            psql(f"DROP SCHEMA {schema} CASCADE")
    if failed:
        sys.exit(f"[openapi] failed: {', '.join(failed)}")


if __name__ == "__main__":
    start = time.monotonic()
    main()
    log(f"took {time.monotonic() - start:.0f} s")
