"""Write a word corpus of another kind: the first paragraph of every docstring in Python's standard library.

docs/models.md ("Does the word-level recipe carry over?") runs the default news recipe on it, through
`rnnlm add-corpus`, to see whether the recipe transfers to text unlike news. Items are JSON lines
``{"text": ..., "module": ...}``: each module's, class's and function's docstring, its first paragraph
with whitespace collapsed, 4 to 60 words, each text once (the ingest stage drops repeats anyway). The
test package, idlelib, lib2to3, site-packages and any tests folder are left out. The result depends on the Python version only
(3.11.7 gave 6,616 items, 74,338 words).

    python benchmarks/docstrings_corpus.py data/raw/stdlib_docstrings.jsonl
"""

import argparse
import ast
import json
import re
import sysconfig
from pathlib import Path

SKIPPED = ("test", "idlelib", "lib2to3", "site-packages")  # top-level packages left out; and any "tests" folder
DEFINITIONS = (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)


def docstrings(root):
    """Yield ``(module, first paragraph)`` of every docstring under ``root``, files in sorted order."""
    for path in sorted(Path(root).rglob("*.py")):
        parts = path.relative_to(root).parts
        if parts[0] in SKIPPED or "tests" in parts:
            continue
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"))
        except (SyntaxError, UnicodeDecodeError, ValueError):  # a few files are deliberately broken
            continue
        for node in ast.walk(tree):
            if isinstance(node, DEFINITIONS) and (doc := ast.get_docstring(node)):
                yield parts[0].removesuffix(".py"), " ".join(re.split(r"\n\s*\n", doc.strip())[0].split())


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", type=Path, help="the JSON-lines file to write")
    args = ap.parse_args()
    seen, count, words = set(), 0, 0
    with open(args.out, "w", encoding="utf-8") as f:
        for module, text in docstrings(sysconfig.get_paths()["stdlib"]):
            if 4 <= len(text.split()) <= 60 and text not in seen:
                seen.add(text)
                f.write(json.dumps({"text": text, "module": module}) + "\n")
                count, words = count + 1, words + len(text.split())
    print(f"{args.out}: {count:,} docstrings, {words:,} words")


if __name__ == "__main__":
    main()
