"""Write examples/data/reviews.csv: short made-up product reviews labelled by sentiment.

Run ``python examples/data/make_reviews.py`` to regenerate it (seeded, so the same file every
time). Three classes; some reviews negate a word of the other side ("not great"), so the order
of words matters and a bag of words alone does not get everything right.
"""

from __future__ import annotations

import csv
import random
from pathlib import Path

PRODUCTS = ["phone", "blender", "lamp", "jacket", "kettle", "backpack", "monitor", "chair",
            "headset", "toaster", "keyboard", "tent"]
GOOD = ["great", "excellent", "wonderful", "solid", "reliable", "sturdy", "lovely", "superb"]
BAD = ["awful", "flimsy", "broken", "useless", "terrible", "cheap", "disappointing", "noisy"]
MEH = ["okay", "average", "fine", "acceptable", "ordinary", "decent enough", "so-so"]
OPENERS = ["I bought this {p} last month.", "Got the {p} as a gift.", "Ordered a {p} online.",
           "This {p} arrived on time.", "Been using the {p} for a week."]
VERDICT = {
    "positive": ["It is {g}.", "Really {g} and {g2}!", "Not {b} at all, quite {g}.",
                 "Would buy again, {g}.", "The build is {g}."],
    "negative": ["It is {b}.", "Totally {b} and {b2}!", "Not {g} at all, rather {b}.",
                 "Returned it, {b}.", "The build is {b}."],
    "neutral": ["It is {m}.", "Nothing special, {m}.", "Does the job, {m}.",
                "Neither {g} nor {b}, just {m}.", "Price is {m}."],
}


def review(label: str, rng: random.Random) -> str:
    good, good2 = rng.sample(GOOD, 2)
    bad, bad2 = rng.sample(BAD, 2)
    opener = rng.choice(OPENERS).format(p=rng.choice(PRODUCTS))
    verdict = rng.choice(VERDICT[label]).format(g=good, g2=good2, b=bad, b2=bad2,
                                                m=rng.choice(MEH))
    return f"{opener} {verdict}"


def main(rows: int = 600, seed: int = 0) -> Path:
    rng = random.Random(seed)
    path = Path(__file__).with_name("reviews.csv")
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["review", "sentiment"])
        for _ in range(rows):
            label = rng.choice(list(VERDICT))
            writer.writerow([review(label, rng), label])
    return path


if __name__ == "__main__":
    print(main())
