"""The rollout bot, the imperative shell around :mod:`generator.rollout`: the Prometheus
client (:mod:`.prometheus`), git (:mod:`.vcs`), one tick and the steering commands
(:mod:`.bot`), and notices (:mod:`.notify`).
"""

#: The environment variable naming the Prometheus every environment is queried at (it wins over
#: each environment's ``spec.prometheus.url``; ``--prometheus-url`` wins over it).
PROMETHEUS_URL_ENV = "MESHGEN_PROMETHEUS_URL"
