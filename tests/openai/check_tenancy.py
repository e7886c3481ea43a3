"""Multi-tenancy against a running textnlp server: keys and scopes on every route, exact
quotas under bursts, cross-tenant isolation, a hostile tenant's effect on another, key
revocation and expiry, usage and the audit log, and the official `openai` client with a
tenant key.

    TEXTNLP_ADMIN_KEY=... python check_tenancy.py http://127.0.0.1:PORT path/to/hostile.wasm

Prints `KEY <key>` for every key it creates (host/tests/serve.rs then greps the server's log
and data directories for them) and `ok <check>` per passing check; exits 1 on any failure.
Run by host/tests/serve.rs.
"""

import json
import os
import statistics
import sys
import threading
import time

import httpx
import openai

import checks

URL = sys.argv[1].rstrip("/")
HOSTILE = sys.argv[2]
ADMIN_KEY = os.environ["TEXTNLP_ADMIN_KEY"]
RUN = f"{os.getpid()}"
UNLIMITED = {"requests_per_minute": None, "tokens_per_minute": None, "max_concurrent_sequences": 256}
TENANT_SCOPES = ["generate", "jobs", "read", "plugins:install"]
CHECKS = []


def check(fn):
    CHECKS.append(fn)
    return fn


def session(key=None):
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx.Client(base_url=URL, headers=headers, timeout=120)


admin = session(ADMIN_KEY)


def tenant(name, **limits):
    tid = f"{name}-{RUN}"
    r = admin.post("/v1/admin/tenants", json={"id": tid, "limits": {**UNLIMITED, **limits}})
    assert r.status_code == 201, r.text
    return tid


def key(tid, scopes=TENANT_SCOPES, **extra):
    r = admin.post("/v1/admin/keys", json={"tenant": tid, "scopes": scopes, "name": "check", **extra})
    assert r.status_code == 201, r.text
    k = r.json()["key"]
    print(f"KEY {k}", flush=True)
    return k


def error(r, status, code=None):
    assert r.status_code == status, f"{r.status_code} != {status}: {r.text}"
    body = r.json()["error"]
    assert code is None or body["code"] == code, body
    return body


ALPHA = tenant("alpha", plugin_timeout_ms=4000)
BETA = tenant("beta", plugin_timeout_ms=4000)
A_KEY, B_KEY = key(ALPHA), key(BETA)
A, B = session(A_KEY), session(B_KEY)


def wait_job(s, job_id):
    deadline = time.time() + 180
    while True:
        job = s.get(f"/v1/jobs/{job_id}").json()
        if job["state"] not in ("pending", "running"):
            return job
        assert time.time() < deadline, job
        time.sleep(0.3)


@check
def keys_are_required_and_checked():
    anonymous = session()
    r = anonymous.post("/v1/chat/completions", json={})
    assert error(r, 401, "invalid_api_key") and r.headers["www-authenticate"] == "Bearer"
    wrong = A_KEY[:-1] + ("1" if A_KEY[-1] == "0" else "0")  # the right id, a wrong secret
    for header in ["Bearer sk-not-ours", "Basic abc", "Bearer", f"Bearer {wrong}"]:
        r = httpx.get(URL + "/v1/models", headers={"Authorization": header})
        error(r, 401, "invalid_api_key")
    assert anonymous.get("/healthz").status_code == 200
    assert anonymous.get("/readyz").status_code == 200
    error(anonymous.get("/metrics"), 401)
    error(A.get("/metrics"), 403, "insufficient_scope")
    assert A.get("/v1/models").status_code == 200


@check
def every_route_enforces_its_documented_scopes():
    """Walks /openapi.json: every operation without a key is 401 (public ones excepted), and
    with a key lacking its scopes is 403; an operation's scopes are its `x-scopes`."""
    spec = A.get("/openapi.json").json()
    single = {s: session(key(ALPHA, [s])) for s in ["generate", "jobs", "read", "plugins:install"]}
    anonymous = session()
    walked = 0
    for path, ops in spec["paths"].items():
        concrete = path.replace("{id}", "x").replace("{name}", "x").replace("{namespace}", "x")
        for method, op in ops.items():
            walked += 1
            scopes = op.get("x-scopes")
            r = anonymous.request(method.upper(), concrete)
            if scopes is None:
                assert r.status_code != 401, f"{method} {path} is public: {r.status_code}"
                continue
            assert r.status_code == 401, f"{method} {path} without a key: {r.status_code}"
            if not scopes:
                continue
            lacking = [s for s in single if s not in scopes]
            assert lacking, f"{method} {path}"
            r = single[lacking[0]].request(method.upper(), concrete)
            assert r.status_code == 403, f"{method} {path} with only `{lacking[0]}`: {r.status_code} {r.text}"
    assert walked == sum(len(ops) for ops in spec["paths"].values()) and walked >= 40, walked


JOB_SPEC = {
    "name": "tenant-job",
    "strategy": {"plugin": "template", "config": {
        "template": "Name one {{kind}} fruit.", "variables": {"kind": ["red", "green"]}, "mode": "sample"}},
    "records": 2,
    "seed": 5,
    "generation": {"max_tokens": 8, "concurrency": 2},
    "output": {"formats": ["jsonl"]},
}


def upload(s, lines):
    data = "".join(json.dumps(line) + "\n" for line in lines).encode()
    r = s.post("/v1/files", files={"file": ("requests.jsonl", data)}, data={"purpose": "batch"})
    assert r.status_code == 200, r.text
    return r.json()["id"]


@check
def another_tenants_data_is_not_found():
    # Tenant A's job, file, batch and plugin.
    r = A.post("/v1/jobs", json=JOB_SPEC)
    assert r.status_code == 201, r.text
    job = wait_job(A, r.json()["id"])
    assert job["state"] == "completed" and job["owner"]["tenant"] == ALPHA, job
    line = {"custom_id": "a", "method": "POST", "url": "/v1/chat/completions",
            "body": {"model": "default", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 4}}
    file_id = upload(A, [line])
    batch = A.post("/v1/batches", json={"input_file_id": file_id, "endpoint": "/v1/chat/completions",
                                        "completion_window": "24h"}).json()
    with open(HOSTILE, "rb") as f:
        r = A.post("/v1/plugins", content=f.read(), headers={"content-type": "application/wasm"})
    assert r.status_code == 201, r.text
    plugin = r.json()
    assert plugin["namespace"] == ALPHA and plugin["name"] == "hostile" and plugin["grants"]["model"] is False, plugin

    # Tenant B sees none of it: every id answers 404 (not 403), every list leaves it out.
    for method, path in [
        ("GET", f"/v1/jobs/{job['id']}"), ("GET", f"/v1/jobs/{job['id']}/records"),
        ("GET", f"/v1/jobs/{job['id']}/card"), ("GET", f"/v1/jobs/{job['id']}/events"),
        ("POST", f"/v1/jobs/{job['id']}/cancel"),
        ("GET", f"/v1/files/{file_id}"), ("GET", f"/v1/files/{file_id}/content"),
        ("GET", f"/v1/batches/{batch['id']}"), ("POST", f"/v1/batches/{batch['id']}/cancel"),
        ("DELETE", "/v1/plugins/hostile"), ("GET", f"/v1/usage?tenant={ALPHA}"),
    ]:
        r = B.request(method, path)
        body = error(r, 404)
        assert ALPHA not in json.dumps(body), body
    assert job["id"] not in B.get("/v1/jobs").text
    assert file_id not in B.get("/v1/files").text
    assert batch["id"] not in B.get("/v1/batches").text
    assert all(p["name"] != "hostile" for p in B.get("/v1/plugins").json()["data"])
    error(B.post("/v1/batches", json={"input_file_id": file_id, "endpoint": "/v1/chat/completions",
                                      "completion_window": "24h"}), 404)
    # B's plugin, invoked by name, does not resolve to A's.
    r = B.post("/v1/validate", json={"samples": ["x"], "validators": [{"name": "hostile", "config": {"mode": "ok"}}]})
    assert error(r, 400) and "unknown validator" in r.json()["error"]["message"], r.text
    # The same spec from B is B's own job, with its own id.
    r = B.post("/v1/jobs", json=JOB_SPEC)
    assert r.status_code == 201 and r.json()["id"] != job["id"], r.text
    assert r.json()["owner"]["tenant"] == BETA
    # A still has all of it.
    assert A.get(f"/v1/jobs/{job['id']}/records").status_code == 200
    assert any(p["name"] == "hostile" and p["namespace"] == ALPHA for p in A.get("/v1/plugins").json()["data"])
    r = A.post("/v1/validate", json={"samples": ["x"], "validators": [{"name": "hostile", "config": {"mode": "ok"}}]})
    assert r.status_code == 200, r.text
    assert A.get(f"/v1/files/{file_id}").status_code == 200


@check
def job_size_and_plugin_capabilities_are_the_operators_to_give():
    small = session(key(tenant("zeta", max_job_records=5)))
    body = error(small.post("/v1/jobs", json={**JOB_SPEC, "records": 10}), 400, "job_too_large")
    assert body["param"] == "records", body
    # A tenant's install gets none of the capabilities its manifest asks for.
    provider = os.path.join(os.path.dirname(HOSTILE), "provider_openai.wasm")
    with open(provider, "rb") as f:
        r = A.post("/v1/plugins", content=f.read())
    assert r.status_code == 201, r.text
    entry = r.json()
    assert entry["requested"]["outbound_hosts"] and entry["grants"]["outbound_hosts"] == [], entry
    # Only an admin grants, and only what the manifest asks for.
    error(A.post(f"/v1/admin/plugins/{ALPHA}/{entry['name']}/grants", json={"requested": True}), 403)
    error(admin.post(f"/v1/admin/plugins/{ALPHA}/{entry['name']}/grants",
                     json={"outbound_hosts": ["evil.example"]}), 400, "invalid_plugin")
    r = admin.post(f"/v1/admin/plugins/{ALPHA}/{entry['name']}/grants", json={"requested": True})
    assert r.status_code == 200 and r.json()["grants"]["outbound_hosts"] == entry["requested"]["outbound_hosts"], r.text
    audit = admin.get(f"/v1/admin/audit?tenant={ALPHA}&action=plugin.grant").json()["data"]
    assert [e["target"] for e in audit] == [f"{ALPHA}/{entry['name']}"], audit
    assert A.delete(f"/v1/plugins/{entry['name']}").status_code == 200
    error(A.delete(f"/v1/plugins/{entry['name']}"), 404)


def timed(fn):
    started = time.time()
    result = fn()
    return result, time.time() - started


def b_chat():
    r = B.post("/v1/chat/completions", json={
        "model": "default", "messages": [{"role": "user", "content": "Name a colour."}],
        "max_tokens": 16, "seed": 1, "temperature": 0})
    assert r.status_code == 200, r.text


def b_validate():
    r = B.post("/v1/validate", json={"samples": ["a short text"], "validators": ["length"]})
    assert r.status_code == 200, r.text


@check
def a_hostile_plugin_does_not_hold_up_another_tenant():
    """A's plugin spins until A's 4 s call deadline, four calls at once; B's chats and
    validations meanwhile must all finish before the first of A's calls ends (so before
    A's deadline), whatever A does."""
    alone = sorted(timed(b_chat)[1] for _ in range(3))
    ended = []

    def a_spin():
        r = A.post("/v1/validate", json={"samples": ["x"], "validators": [{"name": "hostile", "config": {"mode": "loop"}}]})
        ended.append((time.time(), r.status_code, r.text))

    spinners = [threading.Thread(target=a_spin) for _ in range(4)]
    started = time.time()
    for t in spinners:
        t.start()
    time.sleep(0.5)  # A's calls are spinning now
    loaded = []
    # B's requests at once, as a tenant's clients send them (and so that a loaded CI
    # machine's slowness is not added up four times).
    b_threads = [threading.Thread(target=lambda f=f: loaded.append(timed(f)[1]))
                 for f in (b_chat, b_chat, b_chat, b_validate)]
    for t in b_threads:
        t.start()
    for t in b_threads:
        t.join()
    b_done = time.time()
    assert len(loaded) == 4, "a request of B failed"
    for t in spinners:
        t.join()
    first_a = min(at for at, _, _ in ended)
    print(f"  B chat alone: median {statistics.median(alone) * 1000:.0f} ms; while A's plugin spins: "
          f"{', '.join(f'{s * 1000:.0f}' for s in loaded)} ms; A's first call ended after "
          f"{first_a - started:.1f} s", flush=True)
    assert b_done < first_a, f"B finished {b_done - started:.1f}s in, A's first call ended {first_a - started:.1f}s in"
    assert all(code == 413 and "time limit" in text for _, code, text in ended), ended


@check
def token_quota_is_exact_under_a_burst():
    tid = tenant("gamma", tokens_per_minute=600)
    s = session(key(tid))
    assert s.get("/v1/models").status_code == 200  # the key is verified (argon2) once, before the burst
    prompt = "Count: one two three"
    first = s.post("/v1/completions", json={"model": "default", "prompt": prompt, "max_tokens": 1}).json()
    probe = first["usage"]["prompt_tokens"]
    left = 600 - (probe + 1)
    # Each request needs `need` tokens, so that exactly 5 fit in what is left and a 6th
    # would need over 10 s more of refill (10 tokens/s): the burst takes far less.
    need = left // 5
    max_tokens = need - probe
    results = []

    def one():
        r = s.post("/v1/completions", json={"model": "default", "prompt": prompt, "max_tokens": max_tokens,
                                            "temperature": 0, "ignore_eos": True})
        results.append(r)

    threads = [threading.Thread(target=one) for _ in range(30)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ok = [r for r in results if r.status_code == 200]
    limited = [r for r in results if r.status_code == 429]
    assert len(ok) + len(limited) == 30, [r.text for r in results if r.status_code not in (200, 429)]
    used = sum(r.json()["usage"]["prompt_tokens"] + r.json()["usage"]["completion_tokens"] for r in ok)
    print(f"  30 requests of {probe}+{max_tokens} tokens against 600 tokens/min: {len(ok)} accepted "
          f"({used} tokens), {len(limited)} refused", flush=True)
    assert all(r.json()["usage"]["prompt_tokens"] == probe for r in ok)
    assert len(ok) == 5 and used <= left, (len(ok), used, left)
    for r in limited:
        assert int(r.headers["retry-after"]) >= 1, r.headers
        assert r.headers["x-ratelimit-limit-tokens"] == "600", r.headers
        assert r.json()["error"]["code"] == "rate_limit_exceeded"
    # More than the whole budget in one request can never pass: 400, not 429.
    r = s.post("/v1/completions", json={"model": "default", "prompt": prompt, "max_tokens": 700})
    error(r, 400, "request_too_large")


@check
def request_quota_is_exact_under_a_burst():
    tid = tenant("delta", requests_per_minute=10)
    s = session(key(tid))
    assert s.get("/v1/models").status_code == 200  # 1 of 10
    codes = []
    threads = [threading.Thread(target=lambda: codes.append(s.get("/v1/models"))) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ok = [r for r in codes if r.status_code == 200]
    assert len(ok) == 9, [r.status_code for r in codes]
    assert ok[0].headers["x-ratelimit-limit-requests"] == "10"
    limited = [r for r in codes if r.status_code == 429]
    assert len(limited) == 11 and all(int(r.headers["retry-after"]) >= 1 for r in limited)
    usage = s.get("/v1/usage")
    assert usage.status_code == 429  # the usage route counts too
    usage = admin.get(f"/v1/usage?tenant={tid}").json()
    assert usage["total"]["requests"] == 10 and usage["total"]["rate_limited"] == 12, usage


@check
def concurrent_sequences_are_capped():
    tid = tenant("epsilon", max_concurrent_sequences=2)
    s = session(key(tid))
    body = {"model": "default", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 4}
    error(s.post("/v1/chat/completions", json={**body, "n": 3}), 400, "request_too_large")
    assert s.post("/v1/chat/completions", json={**body, "n": 2}).status_code == 200


@check
def revoked_and_expired_keys_are_refused_at_once():
    k = key(BETA)
    s = session(k)
    assert s.get("/v1/models").status_code == 200
    key_id = k.split("_")[1]
    assert admin.delete(f"/v1/admin/keys/{key_id}").status_code == 200
    assert "revoked" in error(s.get("/v1/models"), 401)["message"]
    short = session(key(BETA, expires_in="1s"))
    time.sleep(2.1)
    assert "expired" in error(short.get("/v1/models"), 401)["message"]
    audit = admin.get("/v1/admin/audit?limit=1000").json()["data"]
    actions = {(e["action"], e["target"]) for e in audit}
    assert ("key.revoke", key_id) in actions, actions
    failures = [e for e in audit if e["action"] == "auth.failure" and e["actor"] == f"tnlp_{key_id}"]
    assert failures and "revoked" in failures[-1]["detail"], failures
    assert any(e["action"] == "plugin.install" and e["target"] == f"{ALPHA}/hostile" for e in audit)
    assert any(e["action"] == "auth.forbidden" for e in audit)
    assert any(e["action"] == "tenant.create" and e["target"] == ALPHA for e in audit)
    # The audit log names keys by their public id only.
    text = json.dumps(audit)
    for secret in [A_KEY, B_KEY, k, ADMIN_KEY]:
        assert secret.split("_")[2] not in text


@check
def usage_is_per_tenant_and_per_key():
    a = A.get("/v1/usage").json()
    assert a["tenant"] == ALPHA and a["total"]["requests"] > 0 and a["total"]["completion_tokens"] > 0, a
    assert a["total"]["job_records"] >= 2, a
    assert f"tnlp_{A_KEY.split('_')[1]}" in {k["key"] for k in a["keys"]}, a
    b = B.get("/v1/usage").json()
    assert all(k["key"] != f"tnlp_{A_KEY.split('_')[1]}" for k in b["keys"]), b
    metrics = admin.get("/metrics").text
    assert f'textnlp_tenant_usage_total{{kind="completion_tokens",tenant="{ALPHA}"}}' in metrics, metrics[-2000:]


@check
def the_openai_client_works_with_a_tenant_key():
    client = openai.OpenAI(base_url=URL + "/v1", api_key=A_KEY, max_retries=0)
    model = client.models.list().data[0].id
    r = client.chat.completions.create(model=model, messages=[{"role": "user", "content": "Say hi."}],
                                       max_tokens=8, seed=3)
    assert r.choices[0].message.content and r.usage.completion_tokens <= 8
    bad = openai.OpenAI(base_url=URL + "/v1", api_key="tnlp_000000000000_" + "0" * 48, max_retries=0)
    try:
        bad.models.list()
        raise AssertionError("an unknown key was accepted")
    except openai.AuthenticationError:
        pass
    reader = openai.OpenAI(base_url=URL + "/v1", api_key=key(ALPHA, ["read"]), max_retries=0)
    try:
        reader.chat.completions.create(model=model, messages=[{"role": "user", "content": "Hi"}], max_tokens=2)
        raise AssertionError("a read-only key generated text")
    except openai.PermissionDeniedError:
        pass


def main():
    return checks.run(CHECKS, "tenancy checks")


if __name__ == "__main__":
    sys.exit(main())
