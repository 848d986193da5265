"""Rollout logic, pure: the decision (:mod:`.decision`: spec, status, check, now -> next status
and action), the policies and PromQL of an analysis (:mod:`.metrics`) and when a committed
weight counts as applied (:mod:`.applied`).

Part of the pure core: the clock and Prometheus's answers come in as arguments; the shell
that fetches them is :mod:`generator.bot`.
"""
