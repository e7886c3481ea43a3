"""Drives a running textnlp server with the official `openai` Python client, as users do.

    python check_server.py http://127.0.0.1:PORT          # every check; exit 1 on any failure
    python check_server.py http://127.0.0.1:PORT --load N # N concurrent long streams (for the
                                                          # shutdown test); prints how each ended
    python check_server.py http://127.0.0.1:PORT --make-key  # a new tenant and its key (printed)

Requests carry the tenant key in $TEXTNLP_API_KEY, as any OpenAI client's `api_key`;
$TEXTNLP_ADMIN_KEY (the server's bootstrap key) makes tenants and reads /metrics.

Each check asserts specific values (texts, finish reasons, token counts, error codes), not
just "no exception". Run by host/tests/serve.rs after scripts/setup.sh installed the client.
"""

import json
import os
import sys
import threading
import time

import httpx
import openai

import checks

URL = sys.argv[1].rstrip("/")
KEY = os.environ.get("TEXTNLP_API_KEY", "")
ADMIN_KEY = os.environ.get("TEXTNLP_ADMIN_KEY", "")
client = openai.OpenAI(base_url=URL + "/v1", api_key=KEY or "none", max_retries=0, timeout=120)
# Plain HTTP with the same tenant key, for the native routes.
http = httpx.Client(headers={"Authorization": f"Bearer {KEY}"}, timeout=30)
admin = httpx.Client(headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=30)
MODEL = None
CHECKS = []


def check(fn):
    CHECKS.append(fn)
    return fn


def chat(content, **kw):
    return client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": content}], **kw
    )


def extra(obj, key):
    return (obj.model_extra or {}).get(key)


def expect_error(exc_type, fn, *, code=None, param=None, words=()):
    try:
        fn()
    except exc_type as e:
        body = e.body if isinstance(e.body, dict) else {}
        assert code is None or body.get("code") == code, f"code {body.get('code')!r} != {code!r}: {body}"
        assert param is None or body.get("param") == param, f"param {body.get('param')!r} != {param!r}"
        for w in words:
            assert w in str(e), f"{w!r} not in {e}"
        return e
    raise AssertionError(f"expected {exc_type.__name__}")


@check
def models_list_the_served_model():
    global MODEL
    models = client.models.list().data
    assert len(models) == 1 and models[0].id, models
    MODEL = models[0].id


@check
def chat_non_streaming_with_usage_and_seed():
    r = chat("Name a colour.", max_tokens=12, seed=7, temperature=0.8)
    c = r.choices[0]
    assert c.message.role == "assistant" and c.message.content, r
    assert c.finish_reason in ("stop", "length"), c.finish_reason
    assert 1 <= r.usage.completion_tokens <= 12 and r.usage.prompt_tokens > 5, r.usage
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens
    assert extra(r, "seed") == 7, r.model_extra
    assert r.system_fingerprint.startswith("textnlp-"), r.system_fingerprint


@check
def chat_streaming_token_by_token_with_usage():
    stream = chat(
        "Write one sentence about the sea.",
        max_tokens=24,
        seed=3,
        stream=True,
        stream_options={"include_usage": True},
    )
    deltas, finish, usage, chunks = [], None, None, 0
    for chunk in stream:
        chunks += 1
        if chunk.usage is not None:
            usage = chunk.usage
            assert chunk.choices == [], "the usage chunk has no choices"
            continue
        ch = chunk.choices[0]
        if ch.delta.content:
            deltas.append(ch.delta.content)
        if ch.finish_reason:
            finish = ch.finish_reason
    assert len(deltas) >= 5, f"streamed in {len(deltas)} pieces, expected token by token"
    assert finish in ("stop", "length") and usage is not None
    assert usage.completion_tokens >= len(deltas)
    same = chat("Write one sentence about the sea.", max_tokens=24, seed=3)
    assert same.choices[0].message.content == "".join(deltas), "stream and non-stream differ"


@check
def completions_streaming_and_not():
    r = client.completions.create(model=MODEL, prompt="The capital of France is", max_tokens=6, temperature=0)
    assert r.object == "text_completion" and r.choices[0].text
    text = "".join(
        c.choices[0].text
        for c in client.completions.create(
            model=MODEL, prompt="The capital of France is", max_tokens=6, temperature=0, stream=True
        )
        if c.choices
    )
    assert text == r.choices[0].text, (text, r.choices[0].text)


@check
def n_choices_differ_and_reproduce():
    kw = dict(max_tokens=24, n=2, seed=11, temperature=1.2)
    r = chat("List some random words.", **kw)
    assert [c.index for c in r.choices] == [0, 1], r.choices
    texts = [c.message.content for c in r.choices]
    assert texts[0] != texts[1], f"n=2 gave identical choices: {texts}"
    again = [c.message.content for c in chat("List some random words.", **kw).choices]
    assert again == texts, (again, texts)
    assert 2 <= r.usage.completion_tokens <= 48, r.usage  # both choices are counted
    assert r.usage.prompt_tokens == 2 * chat("List some random words.", max_tokens=1, seed=1).usage.prompt_tokens


@check
def seed_reproduces_while_other_requests_run():
    kw = dict(max_tokens=32, seed=1234, temperature=0.9)
    alone = chat("Tell me a short story about a fox.", **kw).choices[0].message.content
    stop = threading.Event()
    errors = []

    def background(i):
        while not stop.is_set():
            try:
                # Closed explicitly: an abandoned stream closed later by the garbage collector
                # can deadlock httpx's connection pool.
                with chat(f"Count to {20 + i} slowly, item {i}.", max_tokens=48, stream=True) as s:
                    for _ in s:
                        if stop.is_set():
                            break
            except Exception as e:  # noqa: BLE001 - reported below
                errors.append(e)
                return

    threads = [threading.Thread(target=background, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    time.sleep(1.0)
    busy = [chat("Tell me a short story about a fox.", **kw).choices[0].message.content for _ in range(2)]
    stop.set()
    for t in threads:
        t.join()
    assert not errors, errors
    assert busy == [alone, alone], f"seeded output changed under load:\n{alone!r}\n{busy!r}"
    fresh = [extra(chat("Say a word.", max_tokens=4), "seed") for _ in range(2)]
    assert fresh[0] != fresh[1], f"requests without a seed got the same seed {fresh}"


@check
def stop_sequences_cut_the_text():
    r = client.completions.create(
        model=MODEL, prompt="1, 2, 3, 4, 5,", max_tokens=30, temperature=0, stop=[" 8"]
    )
    c = r.choices[0]
    assert c.finish_reason == "stop", (c.finish_reason, c.text)
    assert " 8" not in c.text and "7" in c.text, c.text
    assert r.usage.completion_tokens < 30


@check
def max_tokens_is_exact():
    r = client.completions.create(
        model=MODEL, prompt="Once upon a time", max_tokens=5, temperature=0.7, seed=5,
        extra_body={"ignore_eos": True},
    )
    assert r.choices[0].finish_reason == "length" and r.usage.completion_tokens == 5, r


@check
def logprobs_chat_and_completions():
    r = chat("Say yes.", max_tokens=6, logprobs=True, top_logprobs=3, seed=2)
    content = r.choices[0].logprobs.content
    assert len(content) == r.usage.completion_tokens, (len(content), r.usage)
    for t in content:
        assert t.logprob <= 0 and len(t.top_logprobs) == 3
        tops = [x.logprob for x in t.top_logprobs]
        assert tops == sorted(tops, reverse=True) and tops[0] >= t.logprob - 1e-6
    assert "".join(t.token for t in content).startswith(r.choices[0].message.content[:1])
    c = client.completions.create(model=MODEL, prompt="Hello", max_tokens=4, logprobs=2, temperature=0)
    lp = c.choices[0].logprobs
    assert len(lp.tokens) == 4 and len(lp.top_logprobs) == 4 and len(lp.text_offset) == 4
    # Greedy: each chosen token is the most likely one.
    for tok, l, top in zip(lp.tokens, lp.token_logprobs, lp.top_logprobs):
        assert abs(max(top.values()) - l) < 1e-5, (tok, l, top)


@check
def logit_bias_forces_and_bans_tokens():
    ids = http.post(URL + "/v1/tokenize", json={"text": " banana", "add_special": False}).json()["tokens"]
    piece = http.post(URL + "/v1/detokenize", json={"tokens": ids[:1]}).json()["text"]
    r = client.completions.create(model=MODEL, prompt="Fruit:", max_tokens=3, seed=4,
                                  logit_bias={str(ids[0]): 100}, extra_body={"ignore_eos": True})
    assert r.choices[0].text == piece * 3, (r.choices[0].text, piece)
    greedy = client.completions.create(model=MODEL, prompt="The capital of France is", max_tokens=1, temperature=0)
    first = http.post(URL + "/v1/tokenize", json={"text": greedy.choices[0].text, "add_special": False}).json()["tokens"][0]
    banned = client.completions.create(model=MODEL, prompt="The capital of France is", max_tokens=1,
                                       temperature=0, logit_bias={str(first): -100})
    assert banned.choices[0].text != greedy.choices[0].text, banned.choices[0].text


@check
def unknown_parameter_is_a_400_naming_it():
    expect_error(
        openai.BadRequestError,
        lambda: chat("hi", max_tokens=2, extra_body={"frobnicate": 1, "best_of": 2}),
        code="unsupported_parameter",
        words=("frobnicate", "best_of"),
    )
    expect_error(openai.BadRequestError, lambda: chat("hi", temperature=5), param="temperature")
    expect_error(openai.BadRequestError, lambda: chat("hi", top_logprobs=2), param="top_logprobs")


@check
def over_long_prompt_is_a_400_unless_truncation_is_asked_for():
    long = "word " * 9000
    expect_error(
        openai.BadRequestError,
        lambda: chat(long, max_tokens=8),
        code="context_length_exceeded",
    )
    r = chat(long, max_tokens=4, extra_body={"truncate_prompt": True})
    dropped = extra(r, "truncated_prompt_tokens")
    assert dropped and dropped > 0, r.model_extra
    assert r.usage.prompt_tokens + 4 <= client.models.list().data[0].model_extra["max_model_len"]


@check
def bad_route_and_bad_model_are_404():
    expect_error(openai.NotFoundError, lambda: client.models.retrieve("no-such-model"))
    expect_error(openai.NotFoundError, lambda: client.chat.completions.create(
        model="no-such-model", messages=[{"role": "user", "content": "hi"}], max_tokens=2),
        code="model_not_found")


def metric(name):
    text = admin.get(URL + "/metrics", timeout=10).text
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} missing from /metrics")


@check
def disconnect_mid_stream_frees_the_sequence():
    before = metric("textnlp_sequences_cancelled_total")
    stream = chat("Write a very long essay about rivers.", max_tokens=1500, stream=True,
                  extra_body={"ignore_eos": True})
    for i, _ in enumerate(stream):
        if i == 3:
            break
    stream.close()
    deadline = time.time() + 10
    while time.time() < deadline:
        if metric("textnlp_sequences_cancelled_total") > before and metric("textnlp_num_requests_running") == 0:
            return
        time.sleep(0.1)
    raise AssertionError("the abandoned stream's sequence was not freed")


@check
def native_routes():
    r = http.post(URL + "/v1/generate", json={"prompts": ["Say hi.", "Say bye."], "max_tokens": 8, "seed": 9}, timeout=60).json()
    assert len(r["texts"]) == 2 and r["seed"] == 9 and r["usage"]["completion_tokens"] <= 16, r
    again = http.post(URL + "/v1/generate", json={"prompts": ["Say bye."], "max_tokens": 8, "seed": 9}, timeout=60).json()
    assert again["texts"][0] != "" and len(again["texts"]) == 1
    toks = http.post(URL + "/v1/tokenize", json={"text": "Hello world", "add_special": False}).json()
    assert toks["count"] == len(toks["tokens"]) > 0
    text = http.post(URL + "/v1/detokenize", json={"tokens": toks["tokens"]}).json()["text"]
    assert text == "Hello world", text
    assert http.get(URL + "/healthz").status_code == 200
    assert http.get(URL + "/readyz").json()["ready"] is True
    spec = http.get(URL + "/openapi.json").json()
    assert "/v1/chat/completions" in spec["paths"]


@check
def validate_route():
    from sacrebleu.metrics import BLEU

    hyps = ["The cat sat on the mat.", "Mail me at jane.doe@example.com today", "Hello world"]
    refs = ["The cat is sitting on the mat.", "Mail me today", "Hello there world"]
    body = {
        "samples": hyps,
        "references": refs,
        "validators": [
            {"name": "bleu", "action": "annotate"},
            {"name": "pii", "action": "redact"},
            {"name": "perplexity", "action": "annotate"},
            {"name": "length", "config": {"unit": "words", "min": 3}},
        ],
    }
    r = http.post(URL + "/v1/validate", json=body, timeout=120)
    assert r.status_code == 200, r.text
    report = r.json()
    assert report["object"] == "validation"
    bleu = report["validators"][0]
    metric = BLEU()
    expected = metric.corpus_score(hyps, [refs])
    # The metrics leave the plugin as f64 and JSON keeps every digit: equal, not close.
    assert bleu["corpus"]["bleu"] == expected.score, (bleu["corpus"], expected.score)
    assert bleu["corpus"]["bleu|" + str(metric.get_signature())] == expected.score
    assert len(bleu["sha256"]) == 64 and bleu["rejected"] == 0
    pii = report["validators"][1]
    assert pii["rewritten"] == 1 and report["samples"][1]["text"] == "Mail me at [EMAIL] today", report["samples"][1]
    ppl = [s["results"]["perplexity"]["scores"]["perplexity"] for s in report["samples"]]
    assert all(p > 1 for p in ppl), ppl
    assert [s["keep"] for s in report["samples"]] == [True, True, False], report["samples"]
    assert report["samples"][2]["dropped_by"]["validator"] == "length"
    assert report["summary"] == {"count": 3, "kept": 2, "dropped": 1, "rewritten": 1}, report["summary"]

    bad = http.post(URL + "/v1/validate", json={"samples": ["x"], "validators": ["nope"]})
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "validators", bad.text
    assert "bleu" in bad.json()["error"]["message"]
    bad = http.post(URL + "/v1/validate", json={"samples": ["x"], "validators": [{"name": "length", "action": "redact"}]})
    assert bad.status_code == 400 and "does not rewrite" in bad.json()["error"]["message"], bad.text
    bad = http.post(URL + "/v1/validate", json={"samples": ["x"], "validators": [{"name": "bleu"}]})
    assert bad.status_code == 400 and "no reference" in bad.json()["error"]["message"], bad.text
    bad = http.post(URL + "/v1/validate", json={"samples": ["x"], "validators": [{"name": "length", "config": {"min": -1}}]})
    assert bad.status_code == 400 and "min" in bad.json()["error"]["message"], bad.text
    bad = http.post(URL + "/v1/validate", json={"samples": [], "validators": ["length"]})
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "samples", bad.text


@check
def jobs_routes():
    spec = {
        "name": "http-job",
        "strategy": {
            "plugin": "template",
            "config": {
                "template": "Name one {{kind}} fruit.",
                "variables": {"kind": ["red", "yellow", "green"]},
                "mode": "sample",
            },
        },
        "records": 6,
        "seed": 3,
        "generation": {"max_tokens": 12, "concurrency": 4},
        "validators": [{"plugin": "length", "config": {"min": 1}, "action": "annotate"}],
        "output": {"formats": ["jsonl"]},
    }
    r = http.post(URL + "/v1/jobs", json=spec, timeout=120)
    assert r.status_code == 201, r.text
    job = r.json()
    assert job["object"] == "dataset.job" and job["id"].startswith("http-job-"), job
    job_id = job["id"]
    deadline = time.time() + 180
    while job["state"] not in ("completed", "failed", "exhausted", "cancelled"):
        assert time.time() < deadline, job
        time.sleep(0.5)
        job = http.get(f"{URL}/v1/jobs/{job_id}").json()
    assert job["state"] == "completed", job
    assert job["counts"]["accepted"] == 6 and job["usage"]["completion_tokens"] > 0, job
    assert len(job["provenance"]["model_sha256"]) == 64, job["provenance"]
    assert job["provenance"]["strategy"]["name"] == "template"

    # The same spec is the same job, not a second one.
    again = http.post(URL + "/v1/jobs", json=spec, timeout=120).json()
    assert again["id"] == job_id and again["state"] == "completed", again
    listed = http.get(URL + "/v1/jobs").json()
    assert [j["id"] for j in listed["data"]].count(job_id) == 1, listed

    # A finished job's event stream is its final state.
    with http.stream("GET", f"{URL}/v1/jobs/{job_id}/events", timeout=30) as events:
        assert events.headers["content-type"].startswith("text/event-stream")
        data = [json.loads(line[5:]) for line in events.iter_lines() if line.startswith("data:")]
    assert data and data[-1]["state"] == "completed" and data[-1]["counts"]["accepted"] == 6, data

    lines = http.get(f"{URL}/v1/jobs/{job_id}/records").text.splitlines()
    records = [json.loads(line) for line in lines]
    assert [r["index"] for r in records] == sorted(r["index"] for r in records) and len(records) == 6
    assert all(r["metadata"]["kind"] in ("red", "yellow", "green") for r in records), records
    assert all("length" in r["validation"] for r in records), records[0]
    csv_text = http.get(f"{URL}/v1/jobs/{job_id}/records?format=csv").text
    assert csv_text.splitlines()[0] == "index,prompt,completion,kind", csv_text[:200]
    md = http.get(f"{URL}/v1/jobs/{job_id}/records?format=md").text
    assert md.startswith("# http-job") and md.count("## Record") == 6, md[:200]
    card = http.get(f"{URL}/v1/jobs/{job_id}/card", timeout=60).json()
    assert card["records"] == 6 and card["plugins"]["validators"][0]["name"] == "length", card
    assert card["corpus_metrics"]["length"]["count"] == 6.0, card["corpus_metrics"]

    cancelled = http.post(f"{URL}/v1/jobs/{job_id}/cancel").json()
    assert cancelled["state"] == "completed", cancelled  # a finished job stays finished
    assert http.get(URL + "/v1/jobs/http-job-000000000000").status_code == 404
    bad = http.post(URL + "/v1/jobs", json=dict(spec, records=0))
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "records", bad.text
    bad = http.post(URL + "/v1/jobs", json=dict(spec, strategy=dict(spec["strategy"], files={"x": "/etc/passwd"})))
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "strategy.files", bad.text
    # Network grants are the operator's: a spec cannot give its provider hosts on the server.
    bad = http.post(URL + "/v1/jobs", json=dict(spec, name="remote", model="provider:openai/gpt-x",
                                                 provider={"config": {"base_url": "http://10.0.0.1/v1"}, "hosts": ["10.0.0.1"]}))
    assert bad.status_code == 400 and "operator" in bad.json()["error"]["message"], bad.text
    bad = http.post(URL + "/v1/jobs", json=dict(spec, name="other", strategy={"plugin": "template", "config": {"mode": "x"}}))
    assert bad.status_code == 400 and "strategy.config" in bad.json()["error"]["message"], bad.text


@check
def batch_api_with_the_openai_client():
    lines = [
        {"custom_id": f"q{i}", "method": "POST", "url": "/v1/chat/completions",
         "body": {"model": MODEL, "messages": [{"role": "user", "content": f"Count to {i + 2}."}],
                  "max_tokens": 8, "seed": i, "temperature": 0}}
        for i in range(5)
    ]
    # A request the chat route refuses goes to the error file, with its status and error body.
    lines.append({"custom_id": "bad", "method": "POST", "url": "/v1/chat/completions",
                  "body": {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "frobnicate": 1}})
    data = "".join(json.dumps(line) + "\n" for line in lines).encode()
    uploaded = client.files.create(file=("requests.jsonl", data), purpose="batch")
    assert uploaded.purpose == "batch" and uploaded.bytes == len(data), uploaded
    assert client.files.retrieve(uploaded.id).filename == "requests.jsonl"
    batch = client.batches.create(input_file_id=uploaded.id, endpoint="/v1/chat/completions",
                                  completion_window="24h", metadata={"purpose": "test"})
    assert batch.status in ("in_progress", "completed") and batch.request_counts.total == 6, batch
    deadline = time.time() + 120
    while batch.status not in ("completed", "failed", "cancelled"):
        assert time.time() < deadline, batch
        time.sleep(0.3)
        batch = client.batches.retrieve(batch.id)
    assert batch.status == "completed", batch
    assert (batch.request_counts.completed, batch.request_counts.failed) == (5, 1), batch.request_counts
    assert batch.metadata == {"purpose": "test"}
    out = [json.loads(l) for l in client.files.content(batch.output_file_id).text.splitlines()]
    assert [o["custom_id"] for o in out] == [f"q{i}" for i in range(5)], out
    for o, line in zip(out, lines):
        assert o["response"]["status_code"] == 200 and o["error"] is None, o
        body = o["response"]["body"]
        assert body["object"] == "chat.completion" and body["usage"]["completion_tokens"] <= 8, body
        # The same request on the chat route gives the same text (same seed, greedy).
        direct = client.chat.completions.create(**line["body"])
        assert direct.choices[0].message.content == body["choices"][0]["message"]["content"]
    errors = [json.loads(l) for l in client.files.content(batch.error_file_id).text.splitlines()]
    assert len(errors) == 1 and errors[0]["custom_id"] == "bad", errors
    assert errors[0]["response"]["status_code"] == 400
    assert "frobnicate" in errors[0]["response"]["body"]["error"]["message"], errors
    assert client.batches.cancel(batch.id).status == "completed"
    assert any(b.id == batch.id for b in client.batches.list().data)

    # A file whose lines do not fit the endpoint: the batch fails up front, naming the line.
    wrong = client.files.create(file=("wrong.jsonl", (json.dumps(dict(lines[0], url="/v1/embeddings")) + "\n").encode()), purpose="batch")
    failed = client.batches.create(input_file_id=wrong.id, endpoint="/v1/chat/completions", completion_window="24h")
    assert failed.status == "failed" and failed.errors.data[0].line == 1, failed
    expect_error(openai.BadRequestError, lambda: client.batches.create(
        input_file_id=wrong.id, endpoint="/v1/embeddings", completion_window="24h"), param="endpoint")
    expect_error(openai.NotFoundError, lambda: client.batches.retrieve("batch_nope"))
    expect_error(openai.BadRequestError, lambda: client.files.create(file=("x.jsonl", b"{}"), purpose="fine-tune"), param="purpose")


def say(line):
    """One whole line per write, so lines from several threads never interleave."""
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def load(n):
    """N concurrent long streams; prints one line per stream saying how it ended."""
    def one(i):
        try:
            got = 0
            for _ in chat(f"Write a long story number {i}.", max_tokens=1500, stream=True,
                          extra_body={"ignore_eos": True}):
                got += 1
            say(f"stream {i}: ended after {got} chunks")
        except Exception as e:  # noqa: BLE001 - the point is to report it
            say(f"stream {i}: {type(e).__name__}: {e}")

    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def overload(n):
    """N concurrent requests against a server with a tiny queue: some must get 429 with a
    Retry-After header, every other one must succeed."""
    results = []

    def one(i):
        try:
            r = client.with_raw_response.chat.completions.create(
                model=MODEL, messages=[{"role": "user", "content": f"Story {i}"}],
                max_tokens=64, extra_body={"ignore_eos": True})
            results.append(("ok", r.parse().usage.completion_tokens))
        except openai.RateLimitError as e:
            results.append(("429", e.response.headers.get("retry-after")))
        except Exception as e:  # noqa: BLE001 - any other outcome fails the check below
            results.append(("error", repr(e)))

    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    print(results, flush=True)
    limited = [r for r in results if r[0] == "429"]
    assert limited, "no request was refused although the queue holds 2"
    assert all(r[1] and int(r[1]) >= 1 for r in limited), limited
    assert all(r == ("ok", 64) for r in results if r[0] != "429"), results


def batch_submit(n):
    """Uploads n chat requests and starts a batch on them; prints the batch id."""
    lines = [
        {"custom_id": f"r{i}", "method": "POST", "url": "/v1/chat/completions",
         "body": {"model": "default", "messages": [{"role": "user", "content": f"Tell a story about the number {i}."}],
                  "max_tokens": 48, "seed": i}}
        for i in range(n)
    ]
    data = "".join(json.dumps(line) + "\n" for line in lines).encode()
    uploaded = client.files.create(file=("requests.jsonl", data), purpose="batch")
    batch = client.batches.create(input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h")
    print(batch.id, flush=True)


def batch_wait(batch_id, n):
    """Waits for the batch; checks that its output has every request once, in order."""
    deadline = time.time() + 300
    batch = client.batches.retrieve(batch_id)
    while batch.status != "completed":
        assert batch.status == "in_progress" and time.time() < deadline, batch
        time.sleep(0.5)
        batch = client.batches.retrieve(batch_id)
    assert batch.request_counts.completed == n and batch.request_counts.failed == 0, batch
    out = [json.loads(l) for l in client.files.content(batch.output_file_id).text.splitlines()]
    assert [o["custom_id"] for o in out] == [f"r{i}" for i in range(n)], [o["custom_id"] for o in out]
    assert all(o["response"]["status_code"] == 200 for o in out)
    print(f"batch {batch_id}: {n} results", flush=True)


def make_key():
    """A tenant without rate limits (the checks measure the server, not quotas) and a key
    with every tenant scope; prints the key."""
    tenant = f"check-{os.getpid()}"
    limits = {"requests_per_minute": None, "tokens_per_minute": None, "max_concurrent_sequences": 4096}
    r = admin.post(URL + "/v1/admin/tenants", json={"id": tenant, "limits": limits})
    assert r.status_code == 201, r.text
    r = admin.post(URL + "/v1/admin/keys", json={
        "tenant": tenant, "scopes": ["generate", "jobs", "read", "plugins:install"], "name": "check_server"})
    assert r.status_code == 201, r.text
    print(r.json()["key"], flush=True)


def main():
    global MODEL
    if "--make-key" in sys.argv:
        make_key()
        return 0
    if "--batch-submit" in sys.argv:
        batch_submit(int(sys.argv[sys.argv.index("--batch-submit") + 1]))
        return 0
    if "--batch-progress" in sys.argv:
        batch = client.batches.retrieve(sys.argv[sys.argv.index("--batch-progress") + 1])
        print(batch.status, batch.request_counts.completed, flush=True)
        return 0
    if "--batch-wait" in sys.argv:
        at = sys.argv.index("--batch-wait")
        batch_wait(sys.argv[at + 1], int(sys.argv[at + 2]))
        return 0
    if "--load" in sys.argv:
        MODEL = "default"
        load(int(sys.argv[sys.argv.index("--load") + 1]))
        return 0
    if "--overload" in sys.argv:
        MODEL = "default"
        overload(int(sys.argv[sys.argv.index("--overload") + 1]))
        print("overload: ok", flush=True)
        return 0
    return checks.run(CHECKS, "checks")


if __name__ == "__main__":
    sys.exit(main())
