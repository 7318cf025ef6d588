"""`python -m aecodec` is the `aecodec` command."""

from .cli import main

if __name__ == "__main__":  # worker processes re-import this module under another name
    main(prog_name="aecodec")
