"""``python -m gpu_genomics`` runs the command-line interface."""

from .cli import main

if __name__ == "__main__":  # not when a cluster's worker processes import it
    main()
