"""``generate.<corpus>``: the samples the generate stage draws; its types also check `rnnlm sample`'s flags."""

from typing import Annotated, Optional

from pydantic import Field

from .base import Device, Positive, Section

Temperature = Annotated[float, Field(gt=0)]
TopK = Optional[Annotated[int, Field(ge=1)]]            # null: the whole vocabulary


class GenerateConfig(Section):
    num_samples: Positive           # unconditional samples per model
    prompts: list[str]
    samples_per_prompt: Annotated[int, Field(ge=0)]
    temperature: Temperature
    top_k: TopK                     # null samples from the whole vocabulary
    max_tokens: Positive
    seed: int
    device: Device                  # draws stay on the CPU generator either way
