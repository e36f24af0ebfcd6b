"""``python -m llmbatch``: the same as the ``llmbatch`` command."""

from llmbatch.cli import main

if __name__ == "__main__":
    main()
