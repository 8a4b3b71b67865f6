"""Sending a scenario's pairs: pacing (which pair when), the engine (closed and open load
models, noise calibration) and worker processes. Kept free of imports here: a worker process
imports `replay.worker_start` before anything heavy."""
