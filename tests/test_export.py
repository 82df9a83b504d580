"""`rnnlm export`: every kind as an ONNX graph that onnxruntime runs like torch, on tiny random models.

(The pipeline's own models through the same path: tests/test_other_tools.py.)"""

import json

import numpy as np
import onnxruntime
import pytest
import torch

from rnnlm.checkpoint import save_checkpoint
from rnnlm.cli import main
from rnnlm.export import LoopedTanhRNN, exportable, export_onnx
from rnnlm.kinds import MODEL_CLASSES
from rnnlm.models import ModelConfig, ScratchRNN, build_model
from rnnlm.text import Normalization
from rnnlm.vocab import Vocabulary

from .conftest import TOY_NAMES

V = 24  # > the adaptive cut-offs below

# Every kind, two layers; half of them with the adaptive softmax, and the layer-by-layer recurrent stack
# (locked dropout between layers) for one: each model shape the pipeline can train.
CASES = {
    "rnn_scratch": {},
    "rnn": {"dropout_mode": "locked", "dropout": 0.3},
    "gru": {"output": "adaptive", "adaptive_cutoffs": [6, 12]},
    "lstm": {"output": "adaptive", "adaptive_cutoffs": [6, 12]},
    "mlp": {"context": 3, "output": "adaptive", "adaptive_cutoffs": [6, 12]},
    "transformer": {"heads": 2, "ff_size": 16, "max_len": 32},
}


def tiny_model(kind):
    torch.manual_seed(0)
    model = build_model(ModelConfig(kind, V, 0, 8, 16, layers=2, **CASES[kind]))
    # an adaptive softmax whose ids are ranked as training ranks them, not in id order: the graph keeps the ranking
    model.set_target_counts(torch.randperm(V, generator=torch.Generator().manual_seed(2)))
    return model.eval()


def test_every_kind_has_a_case():
    assert set(CASES) == set(MODEL_CLASSES)


def test_looped_tanh_rnn_is_the_rnn():
    """The export's stand-in for the tanh RNNs computes what nn.RNN and the hand-written cell compute."""
    torch.manual_seed(0)
    x, h0 = torch.randn(3, 9, 5), torch.randn(2, 3, 7)
    scratch, rnn = ScratchRNN(5, 7, num_layers=2), torch.nn.RNN(5, 7, num_layers=2, batch_first=True)
    for module in (scratch, rnn):
        with torch.no_grad():
            want, want_h = module(x, h0)
            got, got_h = LoopedTanhRNN.of(module)(x, h0)
        torch.testing.assert_close(got, want, atol=1e-6, rtol=0)
        torch.testing.assert_close(got_h, want_h, atol=1e-6, rtol=0)
    assert not any(isinstance(m, (ScratchRNN, torch.nn.RNN)) for m in exportable(tiny_model("rnn_scratch")).modules())
    assert not any(isinstance(m, torch.nn.RNN) for m in exportable(tiny_model("rnn")).modules())


def run_onnx(session, description, ids, state):
    feed = {"ids": ids.numpy(), **{s["input"]: t.numpy() for s, t in zip(description["state"], state)}}
    return session.run(None, feed)


def initial_state(description, batch):
    """The initial state from the JSON alone, as a runtime without torch would build it."""
    return [torch.from_numpy(np.full([batch if d == "batch" else d for d in s["initial"]["shape"]],
                                     s["initial"]["fill"], dtype=s["initial"]["dtype"])) for s in description["state"]]


@pytest.mark.parametrize("kind", sorted(CASES))
def test_onnx_runs_like_torch(kind, tmp_path, capfd):
    """Random ids from the initial state, then two more calls fed the returned state (one token, then
    four): log-probabilities and states equal torch's to 1e-5, at batch sizes other than the example's."""
    model = tiny_model(kind)
    vocab = Vocabulary([*("<pad>", "<unk>", "<s>", "</s>"), *"abcdefghijklmnopqrst"], "char")
    description = export_onnx(model, vocab, tmp_path / "m.onnx")
    session = onnxruntime.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["ids", *model.state_names]
    assert [o.name for o in session.get_outputs()] == ["log_probs", *(f"new_{n}" for n in model.state_names)]
    generator = torch.Generator().manual_seed(1)
    for batch in (1, 5):
        state = initial_state(description, batch)
        for want, got in zip(model.initial_state(batch), state):
            assert torch.equal(want, got)
        for time in (7, 1, 4):
            ids = torch.randint(4, V, (batch, time), generator=generator)
            with torch.no_grad():
                logits, hidden = model(ids, model.state_from_tensors(state))
            want = [torch.log_softmax(logits, -1), *model.state_tensors(hidden)]
            got = run_onnx(session, description, ids, state)
            assert len(got) == len(want)
            for w, g in zip(want, got):
                np.testing.assert_allclose(g, w.numpy(), atol=1e-5, rtol=0)
            np.testing.assert_allclose(np.exp(got[0]).sum(-1), 1.0, atol=1e-5)  # a full, normalized distribution
            state = [torch.from_numpy(g) for g in got[1:]]
    # no shape the graph declares disagrees with a run at another length (onnxruntime warns on stderr)
    assert "Expected shape" not in capfd.readouterr().err


def test_a_second_export_in_one_process_keeps_the_time_axis(tmp_path):
    """(The LSTM's case; the GRU's dispatch cache is cleared by the same line of rnnlm.export.)"""
    vocab = Vocabulary([*("<pad>", "<unk>", "<s>", "</s>"), *"abcdefghijklmnopqrst"], "char")
    for name in ("first", "second"):
        description = export_onnx(tiny_model("lstm"), vocab, tmp_path / f"{name}.onnx")
        assert description["inputs"][0]["shape"] == ["batch", "time"], name


def test_the_json_describes_the_graph(tmp_path):
    vocab = Vocabulary.build(TOY_NAMES, "char", normalization=Normalization("name", "abcdefghijklmnopqrstuvwxyz"))
    torch.manual_seed(0)
    model = build_model(ModelConfig("transformer", len(vocab), vocab.pad_id, 8, 8, heads=2, ff_size=16)).eval()
    save_checkpoint(tmp_path / "t.pt", model, vocab, {"seed": 0})
    with pytest.raises(SystemExit) as done:
        main(["export", "--model", str(tmp_path / "t.pt"), "--onnx", str(tmp_path / "t.onnx")])
    assert done.value.code == 0
    description = json.loads((tmp_path / "t.json").read_text())
    assert description["format"] == "rnnlm-onnx" and description["format_version"] == 1
    assert description["onnx"] == "t.onnx" and description["kind"] == "transformer"
    assert Vocabulary.from_dict(description["vocabulary"]) == vocab  # tokens and normalization rules
    assert description["special_ids"] == {"pad": 0, "unk": 1, "bos": 2, "eos": 3}
    inputs = {v["name"]: v for v in description["inputs"]}
    outputs = {v["name"]: v for v in description["outputs"]}
    assert inputs["ids"] == {"name": "ids", "dtype": "int64", "shape": ["batch", "time"]}
    assert inputs["keys"]["shape"] == [1, "batch", 2, "past", 4] and inputs["keys"]["dtype"] == "float32"
    assert outputs["log_probs"]["shape"] == ["batch", "time", len(vocab)]
    assert outputs["new_keys"]["shape"][3] != "past"  # the cache grows by the tokens read
    assert description["state"][0] == {"input": "keys", "output": "new_keys",
                                       "initial": {"shape": [1, "batch", 2, 0, 4], "dtype": "float32", "fill": 0}}
