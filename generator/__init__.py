"""meshgen: declarative app specs in git -> Istio Gateway, VirtualService and DestinationRule YAML.

The public surface is small: :func:`generator.render.render_repo` renders a config
repository, :mod:`generator.errors` holds the error tree. The command line lives in
:mod:`generator.cli` and holds no logic of its own.
"""

__version__ = "0.1.0"
