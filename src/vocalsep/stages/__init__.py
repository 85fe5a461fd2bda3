"""Pipeline stages: one module each, a pure function plus `main(argv=None)` for dvc.yaml.

Stages hand each other files, never code (no stage imports another, tested); what they agree on about those
files (columns, stored paths) is `vocalsep.contracts`.
"""
