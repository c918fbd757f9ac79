"""Text: quicklearn's fine-tuned MiniLM vs TF-IDF + logistic regression vs a linear probe on frozen MiniLM, in one run
(issue 8), on ../shared/data/imdb-sample/texts.csv with its is_valid split (800 train / 200 valid reviews).

- quicklearn: ql.text_learner(csv, y="label") + fine_tune with the text recipe's defaults (what
  `quicklearn train --task text` runs): 1 head-only epoch, then 2 epochs of all groups at discriminative rates
- tfidf: scikit-learn TfidfVectorizer(1-2 grams, sublinear tf, min_df 2) + LogisticRegression(C=4)
- probe: all-MiniLM-L6-v2 mean-pooled (non-padding) features of the same 256-token texts, frozen, + LogisticRegression
Then training throughput (tokens/s, padding excluded) of one unfrozen epoch with and without length bucketing.

    .venv/bin/python benchmarks/text.py      # needs the [text] extra and scikit-learn
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

HERE = Path(__file__).resolve().parent
DEFAULT = HERE.parents[1] / "shared" / "data" / "imdb-sample" / "texts.csv"


def run_quicklearn(csv: Path) -> tuple[float, float]:
    import quicklearn as ql
    from quicklearn.config.schema import parse_recipe
    from quicklearn.tasks.registry import get_task

    t0 = time.perf_counter()
    learn = ql.text_learner(csv, y="label", progress=False)
    learn.fine_tune(**get_task("text").fit_kwargs(parse_recipe({"task": "text"}), learn))
    return learn.validate()["accuracy"], time.perf_counter() - t0


def run_tfidf(frame: pd.DataFrame) -> tuple[float, float]:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    t0 = time.perf_counter()
    train, valid = frame[~frame["is_valid"]], frame[frame["is_valid"]]
    vec = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=2)
    clf = LogisticRegression(C=4.0, max_iter=2000).fit(vec.fit_transform(train["text"]), train["label"])
    acc = float((clf.predict(vec.transform(valid["text"])) == valid["label"]).mean())
    return acc, time.perf_counter() - t0


def run_probe(frame: pd.DataFrame) -> tuple[float, float]:
    from sklearn.linear_model import LogisticRegression

    from quicklearn.tasks.text.model import TextModel, load_encoder

    t0 = time.perf_counter()
    encoder, tok, _ = load_encoder("minilm")
    model = TextModel(encoder, 2, tok.pad_token_id).eval()

    @torch.inference_mode()
    def features(texts: list[str]) -> np.ndarray:
        out = []
        for k in range(0, len(texts), 64):
            enc = tok(texts[k:k + 64], truncation=True, max_length=256, padding=True, return_tensors="pt")
            ids = enc["input_ids"]
            hidden = model.encoder(input_ids=ids, attention_mask=enc["attention_mask"]).last_hidden_state
            out.append(model.pool(hidden, ids != tok.pad_token_id).numpy())
        return np.concatenate(out)

    train, valid = frame[~frame["is_valid"]], frame[frame["is_valid"]]
    clf = LogisticRegression(C=1.0, max_iter=5000).fit(features(train["text"].tolist()), train["label"])
    acc = float((clf.predict(features(valid["text"].tolist())) == valid["label"]).mean())
    return acc, time.perf_counter() - t0


def throughput(csv: Path, n: int) -> dict[bool, float]:
    """Tokens (padding excluded) per second of one unfrozen training epoch on the first `n` training texts,
    bucketed vs plain shuffled batches."""
    import quicklearn as ql
    from quicklearn.train.callbacks.base import Callback

    class StepTimer(Callback):
        def __init__(self) -> None:
            self.t, self.total = 0.0, 0.0

        def on_batch_begin(self, i, logs):
            self.t = time.perf_counter()

        def on_batch_end(self, i, logs):
            self.total += time.perf_counter() - self.t

    rates = {}
    for bucket in (True, False):
        timer = StepTimer()
        frame = pd.read_csv(csv)
        frame = pd.concat([frame[~frame["is_valid"]].head(n), frame[frame["is_valid"]].head(32)])
        learn = ql.text_learner(frame, y="label", progress=False, bucket=bucket, cbs=[timer])
        learn.unfreeze()
        learn.fit_one_cycle(1, 1e-4)
        dl = learn.dls.train
        tokens = sum(len(dl.ids[int(i)]) for b in dl.batches() for i in b)
        padded = sum(len(b) * int(dl.lengths[b].max()) for b in dl.batches())
        rates[bucket] = tokens / timer.total
        print(f"  bucketing={bucket!s:<5}  {rates[bucket]:7.0f} tokens/s   padding {100 * (1 - tokens / padded):4.1f}% of "
              f"the batch cells   steps {timer.total:.1f} s", flush=True)
    return rates


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, default=DEFAULT)
    p.add_argument("--skip-throughput", action="store_true")
    p.add_argument("--throughput-texts", type=int, default=320, help="training texts for the tokens/s comparison")
    args = p.parse_args()
    frame = pd.read_csv(args.data)
    frame["is_valid"] = frame["is_valid"].astype(str).str.lower().eq("true")
    print(f"text benchmark: {args.data} ({(~frame.is_valid).sum()} train / {frame.is_valid.sum()} valid), "
          f"{torch.get_num_threads()} threads")
    results = {"quicklearn (fine-tuned MiniLM)": run_quicklearn(args.data), "TF-IDF + logistic regression": run_tfidf(frame),
               "linear probe on frozen MiniLM": run_probe(frame)}
    for name, (acc, wall) in results.items():
        print(f"  {name:<32} accuracy {acc:.4f}   wall {wall:6.1f} s")
    q = results["quicklearn (fine-tuned MiniLM)"][0]
    best = max(acc for name, (acc, _) in results.items() if not name.startswith("quicklearn"))
    print(f"target: quicklearn beats both baselines: {q:.4f} vs best baseline {best:.4f}  {'PASS' if q > best else 'FAIL'}")
    if not args.skip_throughput:
        print(f"training throughput, one unfrozen epoch over {args.throughput_texts} training texts:")
        rates = throughput(args.data, args.throughput_texts)
        print(f"  bucketing speed-up: {rates[True] / rates[False]:.2f}x")


if __name__ == "__main__":
    main()
