"""Reference metric values and throughput from the Python packages textnlp matches.

Reads a JSON request on stdin and writes JSON on stdout:

    values: {"mode": "values", "pairs": [{"hyp": str, "refs": [str]}],
             "bleu": [{"tokenize", "smooth_method", "smooth_value", "effective_order", "lowercase"}],
             "rouge": [{"rouge_types": [str], "use_stemmer": bool}]}
      -> {"bleu": [{"corpus": {...}, "sentence": [score]}], "rouge": [[{type: [p, r, f]}]]}
    bench:  {"mode": "bench", "pairs": [...], "repeat": n}
      -> {"bleu_corpus_samples_per_s": x, "rougeL_samples_per_s": y}

Pinned in scripts/setup.sh: sacrebleu==2.6.0, rouge-score==0.1.2, nltk==3.10.4.
"""

import json
import sys
import time

from rouge_score import rouge_scorer
from sacrebleu.metrics import BLEU


def ref_streams(pairs):
    """sacrebleu wants one stream per reference position; shorter lists are padded with None,
    which sacrebleu skips."""
    width = max(len(p["refs"]) for p in pairs)
    return [[p["refs"][j] if j < len(p["refs"]) else None for p in pairs] for j in range(width)]


def bleu_values(pairs, config):
    common = dict(
        tokenize=config["tokenize"],
        smooth_method=config["smooth_method"],
        smooth_value=config.get("smooth_value"),
        lowercase=config.get("lowercase", False),
    )
    corpus_metric = BLEU(effective_order=config.get("effective_order", False), **common)
    hyps = [p["hyp"] for p in pairs]
    corpus = corpus_metric.corpus_score(hyps, ref_streams(pairs))
    sentence_metric = BLEU(effective_order=True, **common)
    sentence = [sentence_metric.sentence_score(p["hyp"], p["refs"]).score for p in pairs]
    return {
        "corpus": {
            "score": corpus.score,
            "counts": corpus.counts,
            "totals": corpus.totals,
            "precisions": corpus.precisions,
            "bp": corpus.bp,
            "sys_len": corpus.sys_len,
            "ref_len": corpus.ref_len,
            "signature": str(corpus_metric.get_signature()),
        },
        "sentence": sentence,
    }


def rouge_values(pairs, config):
    scorer = rouge_scorer.RougeScorer(config["rouge_types"], use_stemmer=config["use_stemmer"])
    out = []
    for p in pairs:
        scores = scorer.score_multi(p["refs"], p["hyp"])
        out.append({k: [float(v.precision), float(v.recall), float(v.fmeasure)] for k, v in scores.items()})
    return out


def best_rate(n, repeat, run):
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return n / best


def bench(pairs, repeat):
    hyps = [p["hyp"] for p in pairs]
    streams = ref_streams(pairs)
    bleu = BLEU()
    scorer = rouge_scorer.RougeScorer(["rougeL"])
    return {
        "samples": len(pairs),
        "bleu_corpus_samples_per_s": best_rate(len(pairs), repeat, lambda: bleu.corpus_score(hyps, streams)),
        "rougeL_samples_per_s": best_rate(
            len(pairs), repeat, lambda: [scorer.score_multi(p["refs"], p["hyp"]) for p in pairs]
        ),
    }


def main():
    request = json.load(sys.stdin)
    pairs = request["pairs"]
    if request["mode"] == "values":
        answer = {
            "bleu": [bleu_values(pairs, c) for c in request["bleu"]],
            "rouge": [rouge_values(pairs, c) for c in request["rouge"]],
        }
    else:
        answer = bench(pairs, request.get("repeat", 5))
    json.dump(answer, sys.stdout)


if __name__ == "__main__":
    main()
