"""``python -m tpusim`` runs the CLI."""
from .cli import main

main()
