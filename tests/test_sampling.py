import torch

from rnnlm.sampling import filter_logits, generate
from rnnlm.training import train_model


def test_filter_logits_top_k_and_temperature():
    logits = torch.tensor([[1.0, 3.0, 2.0, 0.5]])
    kept = filter_logits(logits, temperature=1.0, top_k=2)
    assert torch.isinf(kept[0, [0, 3]]).all() and torch.isfinite(kept[0, [1, 2]]).all()
    torch.testing.assert_close(filter_logits(logits, temperature=0.5), logits * 2)
    torch.testing.assert_close(filter_logits(logits, top_k=10), logits)


def trained(toy_vocab, toy_splits, tiny_train_config, tmp_path):
    model, _ = train_model("gru", tiny_train_config, toy_vocab, toy_splits, 0, tmp_path / "m.pt", progress=False)
    return model


def test_top_k_one_equals_greedy(toy_vocab, toy_splits, tiny_train_config, tmp_path):
    model = trained(toy_vocab, toy_splits, tiny_train_config, tmp_path)
    greedy = generate(model, toy_vocab, 1, "a", greedy=True, max_tokens=12)
    gen = torch.Generator().manual_seed(1)
    assert generate(model, toy_vocab, 5, "a", top_k=1, max_tokens=12, generator=gen) == greedy * 5


def test_samples_stay_within_top_k(toy_vocab, toy_splits, tiny_train_config, tmp_path, monkeypatch):
    model = trained(toy_vocab, toy_splits, tiny_train_config, tmp_path)
    seen = []
    real_multinomial = torch.multinomial

    def spy(probs, n, generator=None):
        out = real_multinomial(probs, n, generator=generator)
        seen.append((probs, out))
        return out

    monkeypatch.setattr(torch, "multinomial", spy)
    generate(model, toy_vocab, 20, top_k=3, temperature=1.5, max_tokens=10, generator=torch.Generator().manual_seed(0))
    for probs, out in seen:
        assert ((probs > 0).sum(dim=-1) <= 3).all()
        assert (probs.gather(1, out) > 0).all()


def test_low_temperature_concentrates_samples(toy_vocab, toy_splits, tiny_train_config, tmp_path):
    model = trained(toy_vocab, toy_splits, tiny_train_config, tmp_path)
    with torch.no_grad():  # fixed next-token preferences 0.5 nats apart, whatever the history
        model.decoder.weight.zero_()
        model.decoder.bias.copy_(torch.arange(len(toy_vocab), dtype=torch.float) * 0.5)
    cold = generate(model, toy_vocab, 40, temperature=0.05, max_tokens=8, generator=torch.Generator().manual_seed(0))
    hot = generate(model, toy_vocab, 40, temperature=3.0, max_tokens=8, generator=torch.Generator().manual_seed(0))
    assert len(set(cold)) < len(set(hot))
    assert len(set(cold)) <= 3
    assert len(set(hot)) > 20


def test_samples_never_contain_special_tokens(toy_vocab, toy_splits, tiny_train_config, tmp_path):
    model = trained(toy_vocab, toy_splits, tiny_train_config, tmp_path)
    for text in generate(model, toy_vocab, 30, "em", temperature=2.0, max_tokens=15,
                         generator=torch.Generator().manual_seed(0)):
        assert text.startswith("em") and "<" not in text and len(text) <= 2 + 15
