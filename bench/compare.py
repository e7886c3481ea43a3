#!/usr/bin/env python3
"""Merge llama.cpp's and textnlp's benchmark outputs into one table and one JSON file.

Inputs (all produced by bench/run.sh):
  --llama-bench    llama-bench -o json output (a JSON array; one object per test)
  --batched-bench  llama-batched-bench --output-format jsonl output (one object per line; other
                   log lines are ignored)
  --textnlp        `textnlp bench` output: JSON lines {"test":..,"tokens_per_s":..}

Standard library only.
"""

import argparse
import json
import sys


def load_llama_bench(path):
    """pp512 / tg128 from llama-bench's JSON array."""
    out = {}
    try:
        with open(path) as f:
            rows = json.load(f)
    except (OSError, ValueError) as e:
        print(f"bench: cannot read llama-bench output {path}: {e}", file=sys.stderr)
        return out, []
    for r in rows:
        n_prompt, n_gen = int(r.get("n_prompt", 0)), int(r.get("n_gen", 0))
        if n_prompt and not n_gen:
            name = f"pp{n_prompt}"
        elif n_gen and not n_prompt:
            name = f"tg{n_gen}"
        else:
            name = f"pp{n_prompt}+tg{n_gen}"
        out[name] = {"tokens_per_s": float(r["avg_ts"]), "stddev": float(r.get("stddev_ts", 0.0))}
    return out, rows


def json_lines(path):
    rows = []
    try:
        with open(path) as f:
            for line in f:
                line = line.strip()
                if not line.startswith("{"):
                    continue
                try:
                    rows.append(json.loads(line))
                except ValueError:
                    pass
    except OSError as e:
        print(f"bench: cannot read {path}: {e}", file=sys.stderr)
    return rows


def load_batched_bench(path):
    """S_TG (aggregate generated tok/s) per number of parallel sequences."""
    out = {}
    rows = [r for r in json_lines(path) if "speed_tg" in r]
    for r in rows:
        out[f"batched-{int(r['pl'])}"] = {
            "tokens_per_s": float(r["speed_tg"]),
            "prompt_tokens_per_s": float(r["speed_pp"]),
        }
    return out, rows


def load_textnlp(path):
    out = {}
    rows = [r for r in json_lines(path) if "test" in r and "tokens_per_s" in r]
    for r in rows:
        name = r["test"]
        if name == "batched":
            name = f"batched-{int(r['sequences'])}"
        out[name] = {"tokens_per_s": float(r["tokens_per_s"])}
    return out, rows


def fmt(x):
    return f"{x:10.1f}" if x is not None else f"{'-':>10}"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--llama-bench", required=True)
    ap.add_argument("--batched-bench", required=True)
    ap.add_argument("--textnlp", required=True)
    ap.add_argument("--textnlp-status", default="ok")
    ap.add_argument("--model", default="")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--llama-commit", default="")
    ap.add_argument("--llama-meta", default="")
    ap.add_argument("--load", default="")
    ap.add_argument("--stats", nargs="*", default=[], help="bench/quiet.py run --stats files")
    ap.add_argument("--out", required=True)
    a = ap.parse_args()

    lb, lb_raw = load_llama_bench(a.llama_bench)
    bb, bb_raw = load_batched_bench(a.batched_bench)
    tn, tn_raw = load_textnlp(a.textnlp)
    llama = {**lb, **bb}

    status = a.textnlp_status
    if status == "ok" and not tn:
        status = "failed: textnlp bench printed no result lines"

    order = ["pp512", "tg128"] + sorted(
        (k for k in set(llama) | set(tn) if k.startswith("batched-")), key=lambda k: int(k.split("-")[1])
    )
    order += sorted(k for k in set(llama) | set(tn) if k not in order)

    table = []
    for name in order:
        l = llama.get(name, {}).get("tokens_per_s")
        t = tn.get(name, {}).get("tokens_per_s")
        table.append({
            "test": name,
            "llama_cpp_tokens_per_s": l,
            "textnlp_tokens_per_s": t,
            "ratio": (t / l) if (l and t is not None) else None,
        })

    print(f"model:     {a.model}")
    print(f"threads:   {a.threads}   load average (1/5/15 min) at start: {a.load}")
    print(f"llama.cpp: {a.llama_commit}   results: {a.llama_meta}")
    print(f"textnlp:   {status}")
    stats = []
    for path in a.stats:
        try:
            with open(path) as f:
                stats.append(json.load(f))
        except (OSError, ValueError):
            continue
    noisy = [st for st in stats if st.get("others_cpu_pct", 0) > 5]
    for st in stats:
        print(f"  {st['command']}: {st['wall_s']} s; other processes used {st['others_cpu_pct']}% of the CPU"
              f" meanwhile (load {st['loadavg_before']})")
    print()
    print(f"{'test':<12} {'llama.cpp':>10} {'textnlp':>10} {'ratio':>7}   (tokens/s; batched = aggregate generated tok/s)")
    print(f"{'-' * 12} {'-' * 10} {'-' * 10} {'-' * 7}")
    for row in table:
        ratio = f"{row['ratio']:7.2f}" if row["ratio"] is not None else f"{'-':>7}"
        print(f"{row['test']:<12} {fmt(row['llama_cpp_tokens_per_s'])} {fmt(row['textnlp_tokens_per_s'])} {ratio}")
    if status != "ok":
        print(f"\nnote: textnlp numbers missing: {status}")
    if noisy:
        names = ", ".join(st["command"] for st in noisy)
        print(f"\nWARNING: other processes were busy during {names}: those numbers are low and noisy."
              " Re-run on a quiet machine (bench/run.sh --wait-quiet).")

    result = {
        "model": a.model,
        "threads": a.threads,
        "load_average_at_start": a.load,
        "llama_cpp": {"commit": a.llama_commit, "run": a.llama_meta, "llama_bench": lb_raw, "batched_bench": bb_raw},
        "textnlp": {"status": status, "results": tn_raw},
        "interference": stats,
        "table": table,
    }
    with open(a.out, "w") as f:
        json.dump(result, f, indent=2)
        f.write("\n")
    print(f"\nraw results: {a.out}")


if __name__ == "__main__":
    main()
