"""Reading this project's params.yaml for the stage scripts (the library never opens it)."""

import yaml

from rnnlm.errors import UserError

PARAMS_FILE = "params.yaml"


def load_params(path=PARAMS_FILE):
    try:
        with open(path, encoding="utf-8") as f:
            params = yaml.safe_load(f)
    except FileNotFoundError:
        raise UserError(f"{path} not found: run the stages from the repository root (dvc repro does)") from None
    except yaml.YAMLError as err:
        raise UserError(f"{path} is not valid YAML: {err}") from None
    if not isinstance(params, dict):
        raise UserError(f"{path} must be a mapping of sections")
    return params


def section(params, cls, name, corpus=None):
    """``params[name][corpus]`` (or ``params[name]``) validated as the config model ``cls``."""
    if name not in params:
        raise UserError(f"params: missing section {name!r} in {PARAMS_FILE}")
    data, where = params[name], name
    if corpus is not None:
        if not isinstance(data, dict) or corpus not in data:
            raise UserError(f"params: missing section {name}.{corpus} in {PARAMS_FILE}")
        data, where = data[corpus], f"{name}.{corpus}"
    return cls.from_params(data, where)

