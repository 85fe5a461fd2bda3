"""Pipeline stages: one module each, a pure function plus `main(argv=None)` for dvc.yaml."""
