"""`python -m tfp_realnvp` runs the CLI."""

from tfp_realnvp.cli import main

main()
