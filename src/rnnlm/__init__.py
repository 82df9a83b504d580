"""rnnlm: recurrent language models in a reproducible DVC pipeline.

The package holds the reusable logic; the scripts in ``stages/`` are thin wrappers that read
``params.yaml``, call into this package and write the outputs declared in ``dvc.yaml``.
"""

__version__ = "0.1.0"
