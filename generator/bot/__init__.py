"""The rollout bot, the imperative shell around :mod:`generator.rollout`: the Prometheus
client (:mod:`.prometheus`), git (:mod:`.vcs`), one tick and the steering commands
(:mod:`.bot`), and notices (:mod:`.notify`).
"""
