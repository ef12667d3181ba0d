"""``python -m gpu_genomics`` runs the command-line interface."""

from .cli import main

main()
