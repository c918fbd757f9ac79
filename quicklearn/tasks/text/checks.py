"""What `quicklearn check` looks for in labelled texts, and the cheap part `quicklearn train` runs first.

- empty texts, and texts longer than the model reads (truncated at max_len tokens);
- exact duplicates (after folding case and whitespace; the cheap pass) and near duplicates (cosine of the frozen
  encoder's mean-pooled embeddings), within a split and across train/valid (leakage);
- class counts; likely label errors (a cross-validated linear probe on the frozen embeddings, ranked by cleanlab).

Rows are named `row N`: the 0-based row of the CSV's data (the header is not a row), as `frame.iloc[N]` reads it.
The embeddings are cached (analysis/check/store.py), keyed by the texts, the encoder and max_len.
"""

from __future__ import annotations

import hashlib
import re
from functools import cached_property
from typing import Any

import numpy as np

from quicklearn.analysis.check.classes import class_findings, count_classes
from quicklearn.analysis.check.duplicates import cosine_pairs, exact_groups, join_pairs
from quicklearn.analysis.check.findings import (
    SHARED_KINDS,
    CheckContext,
    Checker,
    DataChecks,
    Finding,
    Kind,
    labelled_rows,
    split_names,
)
from quicklearn.analysis.check.labels import out_of_fold
from quicklearn.analysis.check.leakage import group_findings
from quicklearn.core.progress import progress

__all__ = ["TEXT_KINDS", "text_checks", "embed_texts", "tfidf_probs", "nb_logistic_probs", "TEXT_SIMILARITY"]

# Near-duplicate texts: mean-pooled MiniLM embeddings at least this similar (cosine). Set on benchmarks/check.py's
# planted copies of imdb-sample reviews (a sentence dropped, words changed, punctuation and case changed).
TEXT_SIMILARITY = 0.85

# The label probe reads the whole text: each text is embedded as windows of this many words (about 85 tokens,
# within the 128 MiniLM was trained on), and its embedding is their normalized mean. On imdb-sample (reviews of
# median 230 words, a fifth of them over 256 tokens) the probe's out-of-fold accuracy went 0.72 -> 0.78 against
# the first 256 tokens alone.
WINDOW_WORDS = 64
# The probe's regularization on the standardized 384-dimensional embeddings, all of them (no PCA): chosen on
# imdb-sample over seeds 0-2, where C from 0.003 to 0.01 all put >= 70% of planted flips in the top 2x.
TEXT_PROBE_C = 0.005
# Folds of the label probes: each model learns from 90% of the texts rather than 80%. On imdb-sample (6 plantings of
# 5% flips) the planted flips in the top 2x went 32.3 -> 33.8 of 50 (embeddings + TF-IDF) for twice the fits.
TEXT_FOLDS = 10

TEXT_KINDS: dict[str, Kind] = {k.name: k for k in (
    Kind("empty", "empty texts"),
    Kind("long", "texts longer than max_len tokens (truncated)"),
)}


def _k(name: str) -> Kind:
    return TEXT_KINDS.get(name) or SHARED_KINDS[name]


def windows(texts: list[str], words: int) -> tuple[list[str], np.ndarray]:
    """Each text cut into pieces of at most `words` words (an empty text stays one empty piece), and for each
    piece the index of its text."""
    pieces, owner = [], []
    for i, text in enumerate(texts):
        w = text.split()
        for s in range(0, max(len(w), 1), words):
            pieces.append(" ".join(w[s:s + words]))
            owner.append(i)
    return pieces, np.asarray(owner, dtype=np.int64)


def embed_texts(texts: list[str], arch: str, max_len: int, *, bs: int = 32, window_words: int | None = None,
                progress_bar: bool | None = None) -> np.ndarray:
    """The frozen encoder's mean-pooled, L2-normalized last hidden states (N, D), batches sorted by length.
    With `window_words`, the whole of each text counts: it is embedded in windows of that many words and its
    embedding is their normalized mean (else the first `max_len` tokens only)."""
    if window_words is not None:
        pieces, owner = windows(texts, window_words)
        parts = embed_texts(pieces, arch, max_len, bs=bs, progress_bar=progress_bar)
        out = np.zeros((len(texts), parts.shape[1]), dtype=np.float32)
        np.add.at(out, owner, parts)
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
    import torch

    from quicklearn.tasks.text.data import tokenize
    from quicklearn.tasks.text.model import load_encoder

    encoder, tokenizer, _ = load_encoder(arch)
    encoder.eval()
    ids = tokenize(tokenizer, texts, max_len)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    order = np.argsort([len(t) for t in ids])
    out = np.zeros((len(texts), encoder.config.hidden_size), dtype=np.float32)
    with torch.inference_mode(), progress(progress_bar) as bar:
        task = bar.add_task("embedding texts", total=len(texts), info="") if bar else None
        for s in range(0, len(order), bs):
            idx = order[s:s + bs]
            width = max(len(ids[i]) for i in idx)
            x = torch.full((len(idx), width), pad, dtype=torch.long)
            mask = torch.zeros((len(idx), width), dtype=torch.long)
            for r, i in enumerate(idx):
                x[r, : len(ids[i])] = ids[i]
                mask[r, : len(ids[i])] = 1
            hidden = encoder(input_ids=x, attention_mask=mask).last_hidden_state
            pooled = (hidden * mask[..., None]).sum(1) / mask.sum(1, keepdim=True).clamp(min=1)
            out[idx] = torch.nn.functional.normalize(pooled, dim=1).numpy()
            if bar:
                bar.advance(task, len(idx))
    return out


def tfidf_probs(texts: list[str], labels: np.ndarray, *, folds: int = TEXT_FOLDS, seed: int = 0) -> np.ndarray:
    """Out-of-fold class probabilities (N, K) of a logistic regression on TF-IDF words and word pairs."""
    def fit_predict(train: list[str], y: np.ndarray, test: list[str]) -> np.ndarray:
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression

        vec = TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True)
        model = LogisticRegression(C=4.0, max_iter=1000).fit(vec.fit_transform(train), y)
        return model.predict_proba(vec.transform(test))

    return out_of_fold(fit_predict, texts, labels, folds=folds, seed=seed)


def nb_logistic_probs(texts: list[str], labels: np.ndarray, *, folds: int = TEXT_FOLDS, seed: int = 0) -> np.ndarray:
    """Out-of-fold class probabilities (N, K) of NBSVM's recipe (Wang & Manning 2012, "Baselines and Bigrams"):
    binary word and word-pair counts scaled by their naive-Bayes log-count ratio, then a logistic regression; one
    model per class against the rest, their probabilities normalized. A strong linear text classifier on small
    sets, and unlike TF-IDF it weighs each word by how much it tells the classes apart."""
    def fit_predict(train: list[str], y: np.ndarray, test: list[str]) -> np.ndarray:
        from scipy import sparse
        from sklearn.feature_extraction.text import CountVectorizer
        from sklearn.linear_model import LogisticRegression

        vec = CountVectorizer(ngram_range=(1, 2), binary=True)
        x, x_test = vec.fit_transform(train), vec.transform(test)
        classes = np.unique(y)
        binary = len(classes) == 2
        scores = np.zeros((len(test), len(classes)))
        for c in range(1 if binary else 0, len(classes)):  # two classes: one model, the second against the first
            pos = y == classes[c]
            p = 1.0 + np.asarray(x[pos].sum(0)).ravel()
            q = 1.0 + np.asarray(x[~pos].sum(0)).ravel()
            weight = sparse.diags(np.log((p / p.sum()) / (q / q.sum())))
            model = LogisticRegression(C=1.0, max_iter=2000).fit(x @ weight, pos)
            scores[:, c] = model.predict_proba(x_test @ weight)[:, 1]
        if binary:
            scores[:, 0] = 1 - scores[:, 1]
        return scores / np.maximum(scores.sum(1, keepdims=True), 1e-12)

    return out_of_fold(fit_predict, texts, labels, folds=folds, seed=seed)


def _fold(text: str) -> str:
    """A text as exact-duplicate keys compare it: case folded, runs of white space as one space."""
    return re.sub(r"\s+", " ", text).strip().casefold()


class _TextData:
    """One recipe's texts, labels and split, and their embeddings, each computed once when first asked for."""

    def __init__(self, recipe: Any):
        from quicklearn.data.frames import check_column
        from quicklearn.tasks.text.data import find_text_column

        d = recipe.data
        self.recipe = recipe
        self.frame, self.y, self.where = labelled_rows(d, "texts needs their label column")
        if d.text_col is None:
            cols = [find_text_column(self.frame, [self.y, "is_valid"], self.where)]
        else:
            cols = [d.text_col] if isinstance(d.text_col, str) else list(d.text_col)
            for c in cols:
                check_column(self.frame, c, "text", self.where)
        self.cols = cols
        parts = self.frame[cols].astype("string").fillna("")
        self.texts = [" ".join(v for v in row if v) for row in parts.itertuples(index=False, name=None)]
        self.names = [f"row {i}" for i in self.frame.index]
        self.ctx = CheckContext()

    @cached_property
    def split(self) -> tuple[list[str], Any]:
        from quicklearn.data.labels import get_targets
        from quicklearn.data.sources import table_source
        from quicklearn.data.split import resolve_tabular_splitter

        d = self.recipe.data
        frame = self.frame.reset_index(drop=True)
        source = table_source(frame, self.where)
        targets = get_targets(source, self.y, kind=d.kind, label_delim=d.label_delim)
        splitter = resolve_tabular_splitter(d.splitter, frame, targets.kind, d.valid_pct, self.recipe.training.seed,
                                            self.where)
        train, valid = splitter(source, targets)
        splits = split_names(len(frame), train, valid)
        return splits, targets

    @cached_property
    def embeddings(self) -> np.ndarray:
        """The first max_len tokens' embeddings: what near duplicates are judged on (TEXT_SIMILARITY was set on
        them; averaged over the whole text, two reviews of one film grow alike)."""
        m = self.recipe.model
        return self._embed({"max_len": m.max_len, "what": "text mean"}, None,
                           f"mean-pooled, the first {m.max_len} tokens")

    @cached_property
    def whole_embeddings(self) -> np.ndarray:
        """The whole text's embeddings, windows of WINDOW_WORDS words averaged: what the label probe reads."""
        m = self.recipe.model
        words = max(8, min(WINDOW_WORDS, m.max_len // 2))  # a window fits max_len tokens (a word: 1-2 tokens)
        return self._embed({"max_len": m.max_len, "what": f"text mean, {words}-word windows"}, words,
                           f"mean-pooled over {words}-word windows of the whole text")

    def _embed(self, key: dict, window_words: int | None, what: str) -> np.ndarray:
        from quicklearn.analysis.check.store import cached_embeddings

        arch = self.recipe.model.arch
        digest = hashlib.sha256("\0".join(self.texts).encode()).hexdigest()
        emb, hit = cached_embeddings({"texts": digest, "arch": arch, **key},
                                     lambda: embed_texts(self.texts, arch, self.recipe.model.max_len,
                                                         window_words=window_words, progress_bar=self.ctx.progress))
        self.ctx.facts.append(f"embeddings: {arch}, {what}, {'read from the cache' if hit else 'computed and cached'}")
        return emb

    def preview(self, name: str) -> str | None:
        i = self._row.get(name)
        return None if i is None else self.texts[i]

    @cached_property
    def _row(self) -> dict[str, int]:
        return {n: i for i, n in enumerate(self.names)}

    # ---- the checkers ----------------------------------------------------------------------------------------
    def lengths(self, ctx: CheckContext) -> list[Finding]:
        """Empty texts (each named), and one finding of the texts longer than max_len tokens (truncated)."""
        from quicklearn.tasks.text.model import load_encoder

        self.ctx = ctx
        splits = self.split[0]
        out = [Finding("empty", [self.names[i]], 0.0, "fill in the text or drop the row",
                       f"no text in {', '.join(self.cols)}", [splits[i]])
               for i, t in enumerate(self.texts) if not t.strip()]
        m = self.recipe.model
        _, tokenizer, _ = load_encoder(m.arch)
        enc = tokenizer(self.texts, truncation=False, verbose=False)  # no "longer than the maximum" warning
        n_tokens = [len(ids) for ids in enc["input_ids"]]
        long = sorted((i for i, n in enumerate(n_tokens) if n > m.max_len), key=lambda i: -n_tokens[i])
        ctx.facts.append(f"tokens per text: median {int(np.median(n_tokens))}, max {max(n_tokens, default=0)} "
                         f"(max_len {m.max_len})")
        if long:
            out.append(Finding("long", [self.names[i] for i in long], len(long) / len(self.texts),
                               f"the model reads the first {m.max_len} tokens: raise --max-len, or put what "
                               "matters first",
                               f"{len(long)} texts ({len(long) / len(self.texts):.0%}) over {m.max_len} tokens, up to "
                               f"{n_tokens[long[0]]}"))
        return out

    def exact(self, ctx: CheckContext) -> list[Finding]:
        """The same text (case and white space folded) more than once: within a split and across it (leakage)."""
        keys = [_fold(t) or None for t in self.texts]  # empty texts are reported as empty, not as duplicates
        return group_findings(exact_groups(keys), self.names, self.split[0], within="duplicate", across="leakage",
                              what="identical texts", score=lambda g: 1.0)

    def near(self, ctx: CheckContext) -> list[Finding]:
        """Texts whose embeddings are nearly the same (exact copies and empty texts left out), as groups."""
        self.ctx = ctx
        emb = self.embeddings
        keys = [_fold(t) for t in self.texts]
        pairs = [(i, j, s) for i, j, s in cosine_pairs(emb, TEXT_SIMILARITY)
                 if keys[i] != keys[j] and keys[i] and keys[j]]
        sim = {(i, j): s for i, j, s in pairs}

        def score(g: Any) -> float:
            return max(s for (i, j), s in sim.items() if i in g and j in g)

        return group_findings(join_pairs(len(self.texts), pairs), self.names, self.split[0], within="near_duplicate",
                              across="near_leakage", what="near-identical texts", score=score,
                              detail=lambda g: f"cosine {score(g):.3f}: {self.texts[g[0]][:60]!r}")

    def classes(self, ctx: CheckContext) -> list[Finding]:
        splits, targets = self.split
        if targets.kind != "single":
            return []
        labels = [targets.vocab.classes[int(v)] for v in targets.values]
        counts = count_classes(labels, splits, targets.vocab.classes)
        ctx.facts.append("texts per class (train/valid): " + ", ".join(f"{c} {a}/{b}" for c, (a, b) in counts.items()))
        return class_findings(counts, "texts")

    def labels(self, ctx: CheckContext) -> list[Finding]:
        """Likely label errors: 10-fold out-of-fold probabilities, the mean of three linear models that each see
        what the others miss (a logistic regression on the frozen embeddings, one on TF-IDF words and word pairs,
        NBSVM's naive-Bayes-weighted one), ranked by cleanlab. On imdb-sample (6 plantings of 5% flips) the planted
        flips in the top 2x: embeddings alone 27.3 of 50, + TF-IDF 33.8, + NBSVM 36.2."""
        from quicklearn.analysis.check.labels import label_findings, probe_probs

        self.ctx = ctx
        splits, targets = self.split
        if targets.kind != "single":
            return []
        labels = targets.values.numpy()
        seed = self.recipe.training.seed
        probs = (probe_probs(self.whole_embeddings, labels, folds=TEXT_FOLDS, seed=seed, max_dims=None, C=TEXT_PROBE_C)
                 + tfidf_probs(self.texts, labels, seed=seed) + nb_logistic_probs(self.texts, labels, seed=seed)) / 3
        return label_findings(probs, labels, targets.vocab.classes, self.names, splits)


def text_checks(recipe: Any) -> DataChecks:
    """The text checkers over the recipe's CSV (its text column(s), labels and split as training reads them)."""
    d = _TextData(recipe)
    checkers = [
        Checker("lengths", (_k("empty"), _k("long")), d.lengths),
        Checker("exact duplicates", (_k("leakage"), _k("duplicate")), d.exact, cheap=True),
        Checker("near duplicates", (_k("near_leakage"), _k("near_duplicate")), d.near),
        Checker("classes", (_k("few_items"), _k("imbalance"), _k("split_classes")), d.classes),
        Checker("label errors", (_k("label_error"),), d.labels, needs=("sklearn", "cleanlab")),
    ]
    return DataChecks("text", str(recipe.data.path), "texts", len(d.texts), checkers, None, d.preview)
