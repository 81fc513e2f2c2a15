"""`python -m fedchain` is the `fedchain` command."""

from fedchain.cli import main

main()
