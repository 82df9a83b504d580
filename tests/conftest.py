"""Small fixtures made by the tests themselves: no test reads the real corpora or the network."""

import os

import pytest
import torch

from rnnlm.data import encode_split
from rnnlm.vocab import Vocabulary
from tests.configs import train_config

# Every `dvc` command the tests run would start a detached analytics sender (half a second of CPU
# each, for a network the tests never use), and the slow tests run dozens of them on two cores.
os.environ["DVC_NO_ANALYTICS"] = "1"

TOY_NAMES = ["emma", "olivia", "ava", "isabella", "sophia", "mia", "amelia", "harper", "evelyn", "abigail",
             "emily", "ella", "elizabeth", "camila", "luna", "sofia", "avery", "mila", "aria", "scarlett"]


@pytest.fixture
def toy_vocab():
    return Vocabulary.build(TOY_NAMES[:14], "char")


@pytest.fixture
def toy_splits(toy_vocab):
    return {"train": encode_split(toy_vocab, TOY_NAMES[:14]),
            "dev": encode_split(toy_vocab, TOY_NAMES[14:17]),
            "test": encode_split(toy_vocab, TOY_NAMES[17:] + ["zoe"])}


@pytest.fixture
def tiny_train_config():
    return train_config(embedding_size=8, hidden_size=8, batch_size=4, epochs=2, seeds=[0], workers=1)


@pytest.fixture(autouse=True)
def _deterministic_torch():
    torch.use_deterministic_algorithms(True)
    yield
