"""Demonstrations of meshgen: the rollout demo and the fake mesh telemetry it, the tests and the benchmarks share."""
