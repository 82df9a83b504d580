"""Reading metrics files (``metrics/**/*.json``) back, from the workspace or from git, checked.

Every metrics file is a JSON object. Its ``dev`` and ``test`` entries, where it has them, are a
model's results (the shape ``rnnlm.results.metrics_record`` writes): each an object of numbers
with a ``loss`` among them; a model's own file (``rnnlm info``) has both. The commands that read these files (``info``, ``compare``, ``check-metrics``)
read them here, so a corrupt, truncated or foreign file is one line naming it, not a traceback.
"""

import json
from pathlib import Path

from .errors import UserError

SPLITS = ("dev", "test")


def _number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def check_record(data, source, required=SPLITS):
    """``data`` if its splits hold a model's results (module docstring), the ``required`` ones present,
    else a UserError naming ``source``."""
    if not isinstance(data, dict):
        raise UserError(f"{source}: not a model's metrics (a JSON object with dev and test results expected, "
                        f"got a {type(data).__name__})")
    for split in SPLITS:
        if split not in data and split not in required:
            continue
        result = data.get(split)
        if not isinstance(result, dict) or not _number(result.get("loss")):
            raise UserError(f"{source}: not a model's metrics ({split!r} must be an object with a numeric loss)")
        for key, value in result.items():
            if not _number(value):
                raise UserError(f"{source}: {split}.{key} must be a number, got {value!r}")
    return data


def parse_metrics(text, source):
    """The parsed metrics file ``text`` (str or bytes), checked as the module docstring says."""
    try:
        data = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise UserError(f"{source}: not valid JSON, a corrupt or truncated metrics file ({err})") from None
    if not isinstance(data, dict):
        raise UserError(f"{source}: not a metrics file (a JSON object expected, got a {type(data).__name__})")
    return check_record(data, source, required=())


def read_metrics(path):
    """The metrics file at ``path``, parsed and checked."""
    return parse_metrics(Path(path).read_bytes(), str(path))
