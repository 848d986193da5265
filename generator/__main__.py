"""``python -m generator`` runs the meshgen command line."""

from generator.cli import main

main()
