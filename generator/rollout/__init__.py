"""Rollout logic, pure: the decision (:mod:`.decision`: spec, status, check, now -> next status
and action) and the policies and PromQL of an analysis (:mod:`.metrics`).

Part of the pure core: the clock and Prometheus's answers come in as arguments; the shell
that fetches them is :mod:`generator.bot`.
"""
