"""``python -m recommender.ml --sequences PATH ...``: the command line of ``cli.py``."""

from .cli import main

main()
