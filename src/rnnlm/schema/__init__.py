"""The schema of ``params.yaml``: one module per section, so a stage imports (and depends on) only its own.

``base`` holds what every section shares (the pydantic ``Section``, the one-line error messages,
common field types); ``pipeline`` the top-level ``corpora`` and ``kinds``; every other module the
section of the stage of the same name. A stage's ``dvc.yaml`` deps list exactly the modules it
imports (tests/test_stage_deps.py), so editing the generate schema or adding a model kind leaves
ingest, split and vocab up to date.
"""
