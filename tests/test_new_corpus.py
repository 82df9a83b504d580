"""`rnnlm add-corpus`: docs/streams.md's WikiText recipe writes a corpus the stages read (a folder of
wiki.*.tokens through ingest, split and vocab), every per-corpus entry a copy of the corpus it is like
with the --set values, params.yaml otherwise as it was (comments, order); mistakes are one line, and
nothing is written."""

import difflib
import re
import shlex
import shutil
from pathlib import Path

import pytest
import yaml

from rnnlm.cli import main
from rnnlm.new_corpus import PER_CORPUS
from rnnlm.vocab import UNK, Vocabulary
from tests.configs import validated
from tests.test_streaming import run_stage
from tests.test_word_streams import TEST, TRAIN, VALID

ROOT = Path(__file__).resolve().parents[1]
WIKI = ("wiki.train.tokens", "wiki.valid.tokens", "wiki.test.tokens")


def recipe():
    """The `rnnlm add-corpus` command of docs/streams.md's "WikiText or PTB, end to end", as arguments."""
    text = (ROOT / "docs" / "streams.md").read_text(encoding="utf-8")
    section = text.split("## WikiText or PTB, end to end")[1].split("\n## ")[0]
    block = re.search(r"```bash\n(.*?)```", section, flags=re.S).group(1).replace("\\\n", " ")
    [line] = [line for line in block.splitlines() if line.startswith("rnnlm add-corpus")]
    return shlex.split(line, comments=True)[1:]


@pytest.fixture
def project(tmp_path, monkeypatch):
    """The repository's params.yaml, and WikiText-2's folder (tiny) where the recipe expects it."""
    shutil.copy(ROOT / "params.yaml", tmp_path / "params.yaml")
    folder = tmp_path / "data" / "raw" / "wikitext-2"
    folder.mkdir(parents=True)
    for name, text in zip(WIKI, (TRAIN, VALID, TEST)):
        (folder / name).write_text(text, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def run(args, capsys):
    with pytest.raises(SystemExit) as done:
        main(args)
    out, err = capsys.readouterr()
    return done.value.code, out, err


def test_the_docs_recipe_adds_a_corpus_the_stages_read(project, capsys, monkeypatch):
    args = recipe()
    assert args[:4] == ["add-corpus", "wikitext2", "data/raw/wikitext-2", "--like"]
    before = (project / "params.yaml").read_text(encoding="utf-8")
    code, out, err = run(args, capsys)
    assert code == 0, err
    assert "dvc add data/raw/wikitext-2" in out and "dvc repro evaluate@wikitext2" in out
    after = (project / "params.yaml").read_text(encoding="utf-8")
    # only lines added: every line of params.yaml (its comments included) is still there, in order
    opcodes = difflib.SequenceMatcher(None, before.splitlines(), after.splitlines(), autojunk=False).get_opcodes()
    assert {op for op, *_ in opcodes} == {"equal", "insert"}, [o for o in opcodes if o[0] != "equal"]
    old, new = yaml.safe_load(before), validated(yaml.safe_load(after))   # every section passes its schema
    assert new["corpora"]["wikitext2"] == "data/raw/wikitext-2"
    settings = dict(arg.split("=", 1) for arg in args[args.index("--like") + 2:] if arg != "--set")
    for section in PER_CORPUS:
        expected = {} if section == "split" else dict(old[section]["shakespeare"]) if isinstance(
            old[section]["shakespeare"], dict) else old[section]["shakespeare"]
        for key, value in settings.items():
            name, *keys = key.split(".")
            if name == section:
                expected[keys[-1]] = yaml.safe_load(value)
        assert new[section]["wikitext2"] == expected, section
        assert {k: v for k, v in new[section].items() if k != "wikitext2"} == old[section], section  # untouched
    assert new["train"]["wikitext2"]["output"] == "adaptive" and new["vocab"]["wikitext2"]["level"] == "word"

    # the stages read it as written: WikiText's files, its tokens as given, its own <unk> the vocabulary's
    data = project / "data"
    for stage, stage_args in [
        ("ingest", ["--raw", "data/raw/wikitext-2", "--rows", data / "rows.jsonl", "--rejects", data / "rejects.jsonl",
                    "--report", data / "ingest.json"]),
        ("split", ["--rows", data / "rows.jsonl", "--out-dir", data / "splits"]),
        ("vocab", ["--splits", data / "splits", "--vocab", data / "vocab.json", "--encoded", data / "encoded"]),
    ]:
        run_stage(stage, ["--corpus", "wikitext2", *stage_args], monkeypatch)
    vocab = Vocabulary.load(data / "vocab.json")
    assert vocab.level == "word" and vocab.pretokenize == "whitespace" and "'s" in vocab.index
    assert vocab.tokens.count(UNK) == 1
    assert (data / "splits" / "test.txt").read_text(encoding="utf-8") == TEST


@pytest.mark.parametrize("args, message", [
    (["add-corpus", "shakespeare", "data/raw/wikitext-2", "--like", "names"], "'shakespeare' is already in"),
    (["add-corpus", "wiki", "data/raw/wikitext-2", "--like", "poems"], "--like 'poems': not a corpus"),
    (["add-corpus", "wiki", "data/raw/nowhere", "--like", "shakespeare"], "data/raw/nowhere not found"),
    (["add-corpus", "wiki", "data/raw/wikitext-2", "--like", "shakespeare", "--set", "train.hidden_size"],
     "expected SECTION.KEY=VALUE"),
    (["add-corpus", "wiki", "data/raw/wikitext-2", "--like", "shakespeare", "--set", "evaluate.batch_size=4"],
     "'evaluate' is not a per-corpus section"),
    (["add-corpus", "wiki", "data/raw/wikitext-2", "--like", "shakespeare", "--set", "train.hidden_size=-4"],
     "train.wiki"),
    (["add-corpus", "wiki", "data/raw/wikitext-2", "--like", "shakespeare", "--set", "train.hidden_sise=4"],
     "hidden_sise"),
    (["add-corpus", "bad name", "data/raw/wikitext-2", "--like", "shakespeare"], "letters, digits, _ and - only"),
])
def test_a_mistake_is_one_line_and_nothing_is_written(project, capsys, args, message):
    before = (project / "params.yaml").read_bytes()
    code, out, err = run(args, capsys)
    assert code == 2 and len(err.splitlines()) == 1 and err.startswith("error: ") and message in err, err
    assert (project / "params.yaml").read_bytes() == before


def test_a_single_file_keeps_the_split_fractions_of_the_corpus_it_is_like(project, capsys):
    (project / "poems.txt").write_text("roses are red\nviolets are blue\n" * 50, encoding="utf-8")
    code, _, err = run(["add-corpus", "poems", "poems.txt", "--like", "shakespeare", "--set", "train.epochs=2"],
                       capsys)
    assert code == 0, err
    params = yaml.safe_load((project / "params.yaml").read_text(encoding="utf-8"))
    assert params["split"]["poems"] == params["split"]["shakespeare"]
    assert params["train"]["poems"] == params["train"]["shakespeare"] | {"epochs": 2}
