"""Averaged weights: a uniform running mean of the weights after every step past the start."""

import torch

from rnnlm.averaging import WeightAverage, steps_before_averaging
from tests.configs import train_config


def test_the_average_is_the_mean_of_the_weights_after_the_start():
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 2)
    average = WeightAverage(model, start_step=2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    seen = []
    for step in range(1, 6):
        optimizer.zero_grad()
        model(torch.randn(4, 3)).pow(2).sum().backward()
        optimizer.step()
        average.after_step(step)
        if step > 2:
            seen.append(model.weight.detach().clone())
    assert average.started
    torch.testing.assert_close(average.evaluated_model().weight, torch.stack(seen).mean(0))
    assert average.evaluated_model() is not model


def test_before_the_start_the_model_itself_is_evaluated():
    model = torch.nn.Linear(3, 2)
    average = WeightAverage(model, start_step=10)
    average.after_step(1)
    assert not average.started and average.evaluated_model() is model


def test_the_start_is_a_share_of_all_steps():
    assert steps_before_averaging(train_config(average_start=0.25), 400) == 100
    assert steps_before_averaging(train_config(average_start=None), 400) is None
