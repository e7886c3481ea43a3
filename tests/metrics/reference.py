"""Reference metric values and throughput from the Python packages textnlp matches.

Reads a JSON request on stdin and writes JSON on stdout:

    values: {"mode": "values", "pairs": [{"hyp": str, "refs": [str]}],
             "bleu": [{"tokenize", "smooth_method", "smooth_value", "effective_order", "lowercase"}],
             "rouge": [{"rouge_types": [str], "use_stemmer": bool}],
             "diversity": {"texts": [str], "self_bleu": [n], "distinct": [n]}}
      -> {"bleu": [{"corpus": {...}, "sentence": [score]}], "rouge": [[{type: [p, r, f]}]],
          "diversity": {"self_bleu": {n: [score]}, "distinct": {n: [a, b, c]}}}
    bench:  {"mode": "bench", "pairs": [...], "repeat": n}
      -> {"bleu_corpus_samples_per_s": x, "rougeL_samples_per_s": y}

Pinned in scripts/setup.sh: sacrebleu==2.6.0, rouge-score==0.1.2, nltk==3.10.4.
"""

import json
import sys
import time

from nltk.translate.bleu_score import SmoothingFunction, sentence_bleu
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


def self_bleu(tokens, n):
    """Texygen's get_bleu_parallel: each sentence against all the others, NLTK sentence BLEU
    with uniform weights and smoothing method1."""
    weights = tuple(1.0 / n for _ in range(n))
    smoothing = SmoothingFunction().method1
    return [
        float(sentence_bleu(tokens[:i] + tokens[i + 1:], hyp, weights, smoothing_function=smoothing))
        for i, hyp in enumerate(tokens)
    ]


def ngrams(tokens, n):
    return [tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1)]


def distinct(tokens, n):
    """The three distinct-n definitions: unique/total n-grams over the corpus, unique n-grams
    per token, and the mean of each sentence's ratio (0 for an empty sentence)."""
    grams = [g for t in tokens for g in ngrams(t, n)]
    words = sum(len(t) for t in tokens)
    per_sentence = [len(set(ngrams(t, n))) / len(t) if t else 0.0 for t in tokens]
    return [
        len(set(grams)) / len(grams) if grams else None,
        len(set(grams)) / words if words else None,
        sum(per_sentence) / len(per_sentence),
    ]


def diversity_values(request):
    tokens = [t.split() for t in request["texts"]]
    return {
        "self_bleu": {n: self_bleu(tokens, n) for n in request["self_bleu"]},
        "distinct": {n: distinct(tokens, n) for n in request["distinct"]},
    }


def best_rate(n, repeat, run):
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return n / best


def bench(pairs, repeat):
    """Each run builds its metric afresh: sacrebleu memoizes tokenized lines per tokenizer
    object (an lru_cache), which would let a repeated run skip the tokenization that the first
    run, and every run of the plugin, has to do."""
    hyps = [p["hyp"] for p in pairs]
    streams = ref_streams(pairs)
    return {
        "samples": len(pairs),
        "bleu_corpus_samples_per_s": best_rate(
            len(pairs), repeat, lambda: BLEU().corpus_score(hyps, streams)
        ),
        "rougeL_samples_per_s": best_rate(len(pairs), repeat, lambda: rouge_l_all(pairs)),
    }


def rouge_l_all(pairs):
    scorer = rouge_scorer.RougeScorer(["rougeL"])
    for p in pairs:
        scorer.score_multi(p["refs"], p["hyp"])


def main():
    request = json.load(sys.stdin)
    pairs = request["pairs"]
    if request["mode"] == "values":
        answer = {
            "bleu": [bleu_values(pairs, c) for c in request["bleu"]],
            "rouge": [rouge_values(pairs, c) for c in request["rouge"]],
            "diversity": diversity_values(request["diversity"]),
        }
    else:
        answer = bench(pairs, request.get("repeat", 5))
    json.dump(answer, sys.stdout)


if __name__ == "__main__":
    main()
