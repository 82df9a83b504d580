"""Averaged weights (Polyak averaging; AWD-LSTM's averaged SGD): a running mean of the weights.

From ``start_step`` on, every optimizer step adds the current weights to a uniform running
average (``torch.optim.swa_utils.AveragedModel``). The average moves far less than the weights
that the optimizer keeps updating, and its dev loss is often lower: training measures each
epoch's dev loss on the average once averaging has begun, and keeps the best such weights.
"""

import torch
from torch.optim.swa_utils import AveragedModel


class WeightAverage:
    def __init__(self, model, start_step):
        self.model, self.start_step = model, start_step
        self.averaged = AveragedModel(model)

    def after_step(self, step):
        """``step``: optimizer steps done so far in the run (1 after the first)."""
        if step > self.start_step:
            self.averaged.update_parameters(self.model)

    @property
    def started(self):
        return int(self.averaged.n_averaged) > 0

    def evaluated_model(self):
        """The model whose dev loss counts this epoch: the average once it holds a step, else the model."""
        return self.averaged.module if self.started else self.model

    def state_dict(self):
        return self.averaged.state_dict()

    def load_state_dict(self, state):
        self.averaged.load_state_dict(state)


def steps_before_averaging(cfg, total_steps):
    return None if cfg.average_start is None else int(cfg.average_start * total_steps)
