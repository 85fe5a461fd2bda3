"""Prefect orchestration over the DVC stages: flows, tasks and deployments, no audio logic.

`flows.pipeline` holds the flows (`vocal-pipeline`, `ingest`, `retrain`),
`flows.tasks` the one task per DVC stage, `flows.workspace` the lock and the
params overrides, `flows.fanout` the Dask fan-out of normalize, and
`flows.serve` the process that serves the deployments on their schedules.
"""
