"""How well a tuned text RNN does on real text found on this machine: API docstrings.

No labelled text corpus ships with the installed packages (scikit-learn's text sets need a
download), so this builds one from what is here: the first paragraph of every function and
class docstring in the sources of a few installed libraries, labelled by library. Sources are
parsed with ``ast``, nothing is imported or downloaded.

    python benchmarks/text_docstrings.py --max-evals 8 --epochs 6

prints the data set's size, the majority-class accuracy, a TF-IDF + logistic regression
reference, and the tuned RNN's accuracy on the held-out test split.
"""

from __future__ import annotations

import argparse
import ast
import importlib.util
import random
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

LIBRARIES = ("numpy", "pandas", "torch", "sklearn", "matplotlib", "scipy", "mlflow")


def first_paragraph(doc: str) -> str:
    paragraph = doc.strip().split("\n\n")[0]
    return " ".join(paragraph.split())


def docstrings(library: str) -> list[str]:
    """First paragraphs of the library's function/class docstrings (tests excluded)."""
    spec = importlib.util.find_spec(library)
    root = Path(spec.origin).parent
    found = []
    for path in sorted(root.rglob("*.py")):
        if "tests" in path.parts or "testing" in path.parts:
            continue
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"))
        except (SyntaxError, UnicodeDecodeError, ValueError):
            continue
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                doc = ast.get_docstring(node)
                if doc:
                    text = first_paragraph(doc)
                    if len(text.split()) >= 4:
                        found.append(text)
    return sorted(set(found))


def build(path: Path, per_library: int, seed: int) -> pd.DataFrame:
    rng = random.Random(seed)
    rows = []
    for library in LIBRARIES:
        texts = docstrings(library)
        rng.shuffle(texts)
        rows += [(text, library) for text in texts[:per_library]]
    frame = pd.DataFrame(rows, columns=["docstring", "library"])
    frame.to_csv(path, index=False)
    return frame


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-evals", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--per-library", type=int, default=1500)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    import mlflow
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    import mltune
    from mltune.tasks.classification import encode_labels, stratified_split

    folder = Path(tempfile.mkdtemp(prefix="mltune-docstrings-"))
    mlflow.set_tracking_uri(f"sqlite:///{folder / 'mlflow.db'}")
    source = folder / "docstrings.csv"
    frame = build(source, args.per_library, args.seed)
    counts = frame["library"].value_counts()
    print(f"data: {len(frame)} docstrings, {counts.to_dict()}")

    spec = mltune.load_spec(None, {
        "task": "text", "name": "docstrings", "data.source": str(source),
        "data.text": "docstring", "data.target": "library", "max_evals": args.max_evals,
        "epochs": args.epochs, "seed": args.seed, "registered_model": "docstrings-rnn"})
    # the same split the task makes: stratified, seeded
    codes, classes = encode_labels(frame["library"].to_numpy(dtype=object), "library")
    train, _, test = stratified_split(len(frame), codes, spec.data, args.seed)
    texts, labels = frame["docstring"].tolist(), frame["library"].to_numpy()

    majority = float(np.mean(labels[test] == pd.Series(labels[train]).mode()[0]))
    tfidf = TfidfVectorizer(sublinear_tf=True, min_df=2)
    reference = LogisticRegression(max_iter=2000).fit(
        tfidf.fit_transform([texts[i] for i in train]), labels[train])
    tfidf_accuracy = float(np.mean(
        reference.predict(tfidf.transform([texts[i] for i in test])) == labels[test]))

    result = mltune.tune(spec)
    model = mlflow.pyfunc.load_model(result.best.model_uri)
    predicted = model.predict([texts[i] for i in test])["label"].to_numpy()
    rnn_accuracy = float(np.mean(predicted == labels[test]))
    print(f"test split: {len(test)} docstrings, {len(classes)} libraries")
    print(f"majority class:          {majority:.3f}")
    print(f"tf-idf + logistic reg.:  {tfidf_accuracy:.3f}")
    print(f"tuned text RNN:          {rnn_accuracy:.3f}  (best val_accuracy "
          f"{result.best_value:.3f}, trial {result.best.number} of {len(result.trials)}, "
          f"{result.finished} finished)")
    print(f"best params: {result.best.params}")


if __name__ == "__main__":
    main()
