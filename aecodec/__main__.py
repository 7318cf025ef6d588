"""`python -m aecodec` is the `aecodec` command."""

from .cli import main

main(prog_name="aecodec")
