"""meshgen: declarative app specs in git -> Istio Gateway, VirtualService and DestinationRule YAML.

Packages by concern, in import order (a package imports only those before it):

- :mod:`generator.errors`, :mod:`generator.resources`: the error tree and packaged data;
- :mod:`generator.spec`: YAML with places, schemas, the config repository (pure core);
- :mod:`generator.routing`: conditions, the route compiler, Istio's matching (pure core);
- :mod:`generator.rollout`: the rollout decision and its metrics (pure core);
- :mod:`generator.render`: specs -> checked, canonical objects and ``rendered/``;
- :mod:`generator.gitops`: diff, publish, scaffold;
- :mod:`generator.bot`: Prometheus, git and the rollout tick (the IO shell);
- :mod:`generator.cli`: the command line, no logic of its own.

The public surface is small: :func:`generator.render.render.render_repo` renders a config
repository, :mod:`generator.errors` holds the error tree. ``tests/test_layout.py`` enforces
the order and that there is no import cycle.
"""

__version__ = "0.1.0"
