"""``python -m mltune``: what MLproject entry points call, installed or not."""

from mltune.cli import main

if __name__ == "__main__":
    main()
