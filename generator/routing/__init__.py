"""Routing, pure: the condition language (:mod:`.conditions`), the compiler from spec routes
to exact, ordered Istio HTTP routes (:mod:`.compiler`), and Istio/Envoy request matching
(:mod:`.simulate`, on :class:`.request.Request`), which ``meshgen explain`` and the tests use.

Part of the pure core: no IO of any kind.
"""
